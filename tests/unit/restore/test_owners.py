from __future__ import annotations

from typing import Any

from kubekeep.restore import RecreatedBy, filter_owned

from .helpers import deployment, load_fixture_manifests, obj


def owned(api_version: str, kind: str, name: str, owner: dict[str, Any], controller: bool = True,
          **fields: Any) -> dict[str, Any]:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": controller}
    m = obj(api_version, kind, name, **fields)
    m["metadata"].update(uid=f"uid-{kind}-{name}", ownerReferences=[ref])
    return m


def with_uid(m: dict[str, Any]) -> dict[str, Any]:
    m["metadata"]["uid"] = f"uid-{m['kind']}-{m['metadata']['name']}"
    return m


def names(manifests: list[dict[str, Any]]) -> list[str]:
    return [f"{m['kind']}/{m['metadata']['name']}" for m in manifests]


def test_deployment_chain_is_recreated() -> None:
    deploy = with_uid(deployment("web"))
    rs = owned("apps/v1", "ReplicaSet", "web-5d8", deploy)
    pod = owned("v1", "Pod", "web-5d8-abc", rs)
    result = filter_owned([pod, rs, deploy])
    assert names(result.restore) == ["Deployment/web"]
    reasons = {s.ref.name: s.reason for s in result.skipped}
    assert reasons["web-5d8"].startswith("owned by Deployment.apps shop/web, which is restored")
    assert "ReplicaSet.apps shop/web-5d8" in reasons["web-5d8-abc"]


def test_statefulset_pods_go_but_owned_claims_stay() -> None:
    sts = with_uid(obj("apps/v1", "StatefulSet", "db", spec={}))
    pod = owned("v1", "Pod", "db-0", sts)
    pvc = owned("v1", "PersistentVolumeClaim", "data-db-0", sts)  # persistentVolumeClaimRetentionPolicy
    revision = owned("apps/v1", "ControllerRevision", "db-7f9", sts)
    result = filter_owned([sts, pod, pvc, revision])
    assert names(result.restore) == ["StatefulSet/db", "PersistentVolumeClaim/data-db-0"]
    assert {s.ref.name for s in result.skipped} == {"db-0", "db-7f9"}


def test_cronjob_jobs_and_their_pods() -> None:
    cron = with_uid(obj("batch/v1", "CronJob", "report", spec={}))
    job = owned("batch/v1", "Job", "report-2890", cron)
    pod = owned("v1", "Pod", "report-2890-x", job)
    assert names(filter_owned([cron, job, pod]).restore) == ["CronJob/report"]
    # without the CronJob, the Job is restored and its Pods are not
    assert names(filter_owned([job, pod]).restore) == ["Job/report-2890"]


def test_owner_missing_or_not_a_controller() -> None:
    rs = with_uid(obj("apps/v1", "ReplicaSet", "orphan", spec={}))
    pod = owned("v1", "Pod", "p", rs)
    assert names(filter_owned([pod]).restore) == ["Pod/p"]
    not_controller = owned("v1", "Pod", "q", rs, controller=False)
    assert names(filter_owned([rs, not_controller]).restore) == ["ReplicaSet/orphan", "Pod/q"]


def test_owner_matched_by_name_when_uids_are_gone() -> None:
    deploy = deployment("web")
    rs = obj("apps/v1", "ReplicaSet", "web-1", metadata={"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}]})
    assert names(filter_owned([deploy, rs]).restore) == ["Deployment/web"]


def test_endpoints_events_and_mirror_pods() -> None:
    svc = obj("v1", "Service", "web", spec={"selector": {"app": "web"}})
    manual = obj("v1", "Service", "external-db", spec={"ports": [{"port": 5432}]})
    ep_web = obj("v1", "Endpoints", "web")
    ep_manual = obj("v1", "Endpoints", "external-db")
    slice_ = obj("discovery.k8s.io/v1", "EndpointSlice", "web-abc", metadata={"labels": {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}})
    event = obj("v1", "Event", "web.17a")
    new_event = obj("events.k8s.io/v1", "Event", "web.17b")
    mirror = obj("v1", "Pod", "etcd-node1", metadata={"annotations": {"kubernetes.io/config.mirror": "x"}})
    result = filter_owned([svc, manual, ep_web, ep_manual, slice_, event, new_event, mirror])
    assert names(result.restore) == ["Service/web", "Service/external-db", "Endpoints/external-db"]
    assert len(result.skipped) == 5 and all(s.reason for s in result.skipped)
    with_events = filter_owned([event], include_events=True)
    assert names(with_events.restore) == ["Event/web.17a"]


def test_include_owned_and_custom_rules() -> None:
    deploy = with_uid(deployment("web"))
    rs = owned("apps/v1", "ReplicaSet", "web-1", deploy)
    assert len(filter_owned([deploy, rs], include_owned=True).restore) == 2
    # an operator rule: Postgres clusters recreate their StatefulSets
    pg = with_uid(obj("acid.zalan.do/v1", "postgresql", "main", spec={}))
    sts = owned("apps/v1", "StatefulSet", "main", pg)
    assert len(filter_owned([pg, sts]).restore) == 2
    rule = RecreatedBy("postgresql.acid.zalan.do", "StatefulSet.apps", "the operator creates it")
    result = filter_owned([pg, sts], rules=[rule])
    assert names(result.restore) == ["postgresql/main"] and "the operator creates it" in result.skipped[0].reason


def test_real_world_examples_are_all_restored() -> None:
    manifests = load_fixture_manifests()
    result = filter_owned(manifests)
    assert len(result.restore) == len(manifests) and result.skipped == []
