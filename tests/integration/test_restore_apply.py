"""Applying restore plans on the real test bed: create, conflict policies, dry runs, CRDs, gates."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from kubekeep.cluster import Cluster, has_condition
from kubekeep.restore import (
    PlanOptions,
    SanitizeOptions,
    TransformChain,
    plan_restore,
)
from kubekeep.restore.actions import RestoreContext
from kubekeep.restore.apply import apply, dry_run, served_by_cluster
from kubekeep.restore.policy import ConflictPolicy, NodePortConflicts, RestorePolicy
from kubekeep.restore.report import Action, RestoreFailedError, RestoreReport, VolumeOutcome, VolumeStatus
from kubekeep.testbed import sample_app
from kubekeep.testbed.crds import crd_manifest
from tests.plugins.controlplane import DERIVED_BY_THE_CONTROL_PLANE

Manifest = dict[str, Any]


def namespaced_objects(cluster: Cluster, namespace: str) -> Iterator[Manifest]:
    """Every object in ``namespace`` of every listable type (preferred versions), events left out."""
    for resource in cluster.preferred_resources():
        if resource.namespaced and "list" in resource.verbs and resource.kind != "Event":
            yield from cluster.list_pages(resource, namespace=namespace)


def _backup(cluster: Cluster, namespace: str) -> list[Manifest]:
    """What a manifest backup of ``namespace`` holds: its objects and the Namespace itself."""
    return [*namespaced_objects(cluster, namespace), cluster.get("v1", "Namespace", namespace)]


def _ns_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _delete_namespace(cluster: Cluster, name: str) -> None:
    cluster.delete("v1", "Namespace", name)


def _ok(report: RestoreReport) -> None:
    assert not report.failed, report.markdown()


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _versions(cluster: Cluster, namespace: str) -> dict[tuple[str, str], str]:
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for o in namespaced_objects(cluster, namespace) if o["kind"] not in DERIVED_BY_THE_CONTROL_PLANE}


@pytest.fixture(scope="module")
def shop(cluster: Cluster) -> Iterator[tuple[str, list[Manifest]]]:
    """The sample app, Ready, in its own namespace, and a backup of it (shared: tests only read it)."""
    namespace = _ns_name("kk-shop")
    sample_app.create(cluster, namespace)
    yield namespace, _backup(cluster, namespace)
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")
    _delete_namespace(cluster, namespace)


def test_restore_into_new_namespace_in_tiers(cluster: Cluster, shop: tuple[str, list[Manifest]]) -> None:
    source, backup = shop
    target = _ns_name("kk-restored")
    transforms = TransformChain.from_dict([
        {"type": "namespace-map", "map": {source: target}},
        {"type": "annotations", "selector": {"kind": "Deployment"}, "add": {"kubekeep.io/restore-tier": "1"}},
    ])
    plan = plan_restore(backup, served=served_by_cluster(cluster), options=PlanOptions(transforms=transforms))
    hook_calls: list[tuple[datetime, RestoreContext]] = []

    def before_workloads(ctx: RestoreContext) -> None:
        # what the volume restore sees: every claim Bound, no workload created yet
        assert {p.ref.name for p in ctx.pvcs} == {"uploads", "data-db-0"}
        assert all(p.bound and p.volume_name for p in ctx.pvcs)
        assert ctx.cluster.get_or_none("apps/v1", "StatefulSet", "db", target) is None
        assert ctx.cluster.get_or_none("apps/v1", "Deployment", "web", target) is None
        hook_calls.append((datetime.now().astimezone(), ctx))

    phases_seen: list[str] = []
    try:
        report = apply(cluster, plan, RestorePolicy(ready_timeout=120),
                       on_phase=lambda p, _r: phases_seen.append(p.name), before_workloads=before_workloads)
        _ok(report)
        assert len(hook_calls) == 1
        assert phases_seen == [p.name for p in plan.phases]

        # every object of the app is there, Ready
        for kind, name in [("Deployment", "web"), ("StatefulSet", "db"), ("ConfigMap", "shop-config"),
                           ("Secret", "db-credentials"), ("PersistentVolumeClaim", "uploads"),
                           ("PersistentVolumeClaim", "data-db-0"), ("Service", "web"), ("ServiceAccount", "shop"),
                           ("Role", "shop-reader"), ("RoleBinding", "shop-reader"), ("Coupon", "welcome")]:
            assert report.outcome(kind, name, target).action is Action.CREATED, (kind, name)
        assert report.outcome("Namespace", target).action is Action.CREATED
        assert report.outcome("ConfigMap", "kube-root-ca.crt", target).action is Action.SKIPPED
        assert report.outcome("ServiceAccount", "default", target).action in (Action.SKIPPED, Action.CREATED)
        assert report.outcome("Deployment", "web", target).ready is True
        binding = cluster.get("rbac.authorization.k8s.io/v1", "RoleBinding", "shop-reader", target)
        assert binding["subjects"][0]["namespace"] == target
        assert cluster.get(f"{sample_app.CRD_GROUP}/v1", "Coupon", "welcome", target)["spec"] == {"percent": 10}

        # controller-owned objects were left out, and the controllers made new ones
        source_pods = {o["metadata"]["name"] for o in backup if o["kind"] == "Pod"}
        source_rs = {o["metadata"]["name"] for o in backup if o["kind"] == "ReplicaSet"}
        assert source_pods and source_rs
        excluded = {(o.kind, o.name) for o in report.outcomes if o.action is Action.EXCLUDED}
        assert {("Pod", n) for n in source_pods} | {("ReplicaSet", n) for n in source_rs} <= excluded
        pods = list(cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=target))
        assert pods and all(p["metadata"]["ownerReferences"][0]["kind"] in ("ReplicaSet", "StatefulSet")
                            for p in pods)
        web_pods = [p for p in pods if p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"]
        assert len(web_pods) == 2 and not {p["metadata"]["name"] for p in web_pods} & source_pods

        # fresh cluster IPs; headless stays headless; assigned node ports are not carried over
        old = {o["metadata"]["name"]: o for o in backup if o["kind"] == "Service"}
        for name in ("web", "web-public"):
            new_ip = cluster.get("v1", "Service", name, target)["spec"]["clusterIP"]
            assert new_ip not in ("", "None", old[name]["spec"]["clusterIP"])
        assert cluster.get("v1", "Service", "db", target)["spec"]["clusterIP"] == "None"
        planned = next(o.manifest for p in plan.phases for o in p.objects if o.ref.name == "web-public")
        assert "nodePort" not in planned["spec"]["ports"][0]

        # tier 1 (web) started only after tier 0 (db) was Ready; volumes were filled in between
        tier0, tier1 = report.phase(0), report.phase(1)
        assert [o.ref.name for p in plan.phases if p.tier == 0 for o in p.objects] == ["db"]
        assert tier0.ready_at is not None and tier1.started_at is not None and tier0.started_at is not None
        assert tier0.ready_at <= tier1.started_at
        gate = report.phase("before-workloads")
        assert gate.ready_at is not None and hook_calls[0][0] <= gate.ready_at <= tier0.started_at
        web = cluster.get("apps/v1", "Deployment", "web", target)
        assert _ts(web["metadata"]["creationTimestamp"]) >= tier0.ready_at.replace(microsecond=0)
        db = cluster.get("apps/v1", "StatefulSet", "db", target)
        assert _ts(db["metadata"]["creationTimestamp"]) <= _ts(web["metadata"]["creationTimestamp"])

        rendered = report.markdown()
        assert "completed" in rendered and "tier-1" in rendered
        assert RestoreReport.from_dict(json.loads(report.to_json())).to_dict() == report.to_dict()
    finally:
        _delete_namespace(cluster, target)


def test_volume_data_the_hook_reports_failed_holds_back_what_mounts_it(
        cluster: Cluster, shop: tuple[str, list[Manifest]]) -> None:
    source, backup = shop
    target = _ns_name("kk-held")
    transforms = TransformChain.from_dict([
        {"type": "namespace-map", "map": {source: target}},
        {"type": "annotations", "selector": {"kind": "Deployment"}, "add": {"kubekeep.io/restore-tier": "1"}},
    ])
    plan = plan_restore(backup, served=served_by_cluster(cluster), options=PlanOptions(transforms=transforms))

    def before_workloads(ctx: RestoreContext) -> list[VolumeOutcome]:
        return [VolumeOutcome(target, "uploads", VolumeStatus.VERIFIED),
                VolumeOutcome(target, "data-db-0", VolumeStatus.FAILED, error="IntegrityError: authentication failed")]

    try:
        report = apply(cluster, plan, RestorePolicy(ready_timeout=120), before_workloads=before_workloads)
        assert report.failed and report.aborted and f"{target}/data-db-0" in report.aborted
        # tier 0 (db) mounts the failed claim: not created; tier 1 (web) and the custom resources come later
        assert cluster.get_or_none("apps/v1", "StatefulSet", "db", target) is None
        assert cluster.get_or_none("apps/v1", "Deployment", "web", target) is None
        assert cluster.get_or_none(f"{sample_app.CRD_GROUP}/v1", "Coupon", "welcome", target) is None
        db = report.outcome("StatefulSet", "db", target)
        assert db.action is Action.NOT_ATTEMPTED and "mounts PVC" in db.reason and "authentication" in db.reason
        assert report.outcome("Deployment", "web", target).action is Action.NOT_ATTEMPTED
        assert report.outcome("PersistentVolumeClaim", "data-db-0", target).action is Action.CREATED
        assert [v.status for v in report.volumes] == [VolumeStatus.VERIFIED, VolumeStatus.FAILED]
        assert "| " + f"{target}/data-db-0 | failed |" in report.markdown()
    finally:
        _delete_namespace(cluster, target)


def test_dry_run_changes_nothing_and_reports_problems(cluster: Cluster, shop: tuple[str, list[Manifest]]) -> None:
    source, backup = shop
    changed = copy.deepcopy(backup)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in changed}
    web = by_name[("Deployment", "web")]
    web["spec"]["selector"] = {"matchLabels": {"app": "web-v2"}}
    web["spec"]["template"]["metadata"]["labels"] = {"app": "web-v2"}
    by_name[("ConfigMap", "shop-config")]["data"]["LOG_LEVEL"] = "debug"
    new_secret = "an0ther-s3cret-value"
    by_name[("Secret", "db-credentials")]["data"]["password"] = base64.b64encode(new_secret.encode()).decode()
    changed += [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra", "namespace": source},
         "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch", "namespace": source},
         "spec": {"storageClassName": "no-such-class", "accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "nope.kubekeep.io/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": source}},
    ]
    plan = plan_restore(changed, served=served_by_cluster(cluster))
    before = _versions(cluster, source)

    report = dry_run(cluster, plan, RestorePolicy(existing=ConflictPolicy.UPDATE))

    assert _versions(cluster, source) == before
    assert cluster.get_or_none("v1", "ConfigMap", "extra", source) is None
    assert report.dry_run and report.failed and report.status == "problems found"
    immutable = report.outcome("Deployment", "web", source)
    assert immutable.action is Action.IMMUTABLE_FIELD and "field is immutable" in immutable.reason
    config = report.outcome("ConfigMap", "shop-config", source)
    assert config.action is Action.WOULD_UPDATE and config.changes == ('data.LOG_LEVEL: "info" -> "debug"',)
    secret = report.outcome("Secret", "db-credentials", source)
    assert secret.action is Action.WOULD_UPDATE and secret.changes == ("data.password",)
    assert report.outcome("StatefulSet", "db", source).action is Action.UNCHANGED
    assert report.outcome("ConfigMap", "extra", source).action is Action.WOULD_CREATE
    assert "validated by the API server" in report.outcome("ConfigMap", "extra", source).reason
    storage = report.outcome("PersistentVolumeClaim", "scratch", source)
    assert storage.action is Action.MISSING_STORAGE_CLASS and "no-such-class" in storage.reason
    assert report.outcome("Gadget", "g", source).action is Action.MISSING_CRD
    assert report.outcome("Namespace", source).action is Action.UNCHANGED
    assert report.outcome("ServiceAccount", "default", source).action is not Action.WOULD_RECREATE
    with pytest.raises(RestoreFailedError, match="immutable-field"):
        report.raise_for_failure()

    # no Secret value in any rendering of the report
    text = report.to_json() + report.markdown() + json.dumps(report.table_rows())
    for value in (sample_app.SECRET_VALUE, new_secret):
        assert value not in text and base64.b64encode(value.encode()).decode() not in text

    # the same backup under policy skip: every existing object would be left alone
    skip = dry_run(cluster, plan_restore(backup, served=served_by_cluster(cluster)))
    assert not skip.failed, skip.markdown()
    assert {o.action for o in skip.outcomes} <= {Action.WOULD_SKIP, Action.SKIPPED, Action.EXCLUDED}
    assert _versions(cluster, source) == before


def _configmap(namespace: str, value: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
            "data": {"mode": value}}


def _claim(namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def test_conflict_policies_against_existing_objects(cluster: Cluster, namespace: str) -> None:
    cluster.create(_configmap(namespace, "live"))
    cluster.create(_claim(namespace))
    cluster.wait_for("v1", "PersistentVolumeClaim", "data", lambda o: bool(o) and o["status"].get("phase") == "Bound",
                     namespace=namespace, timeout=60, what="Bound")
    cluster.wait_for("v1", "ServiceAccount", "default", lambda o: o is not None, namespace=namespace, timeout=30)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}
    plan = plan_restore([_configmap(namespace, "backup"), _claim(namespace), sa])

    def uid(kind: str, name: str) -> str:
        return str(cluster.get("v1", kind, name, namespace)["metadata"]["uid"])

    cm_uid, pvc_uid, sa_uid = uid("ConfigMap", "settings"), uid("PersistentVolumeClaim", "data"), \
        uid("ServiceAccount", "default")

    skipped = apply(cluster, plan)  # default policy: skip
    _ok(skipped)
    assert {o.action for o in skipped.outcomes} == {Action.SKIPPED}
    assert cluster.get("v1", "ConfigMap", "settings", namespace)["data"] == {"mode": "live"}

    updated = apply(cluster, plan, RestorePolicy(existing=ConflictPolicy.UPDATE))
    _ok(updated)
    outcome = updated.outcome("ConfigMap", "settings", namespace)
    assert outcome.action is Action.UPDATED and outcome.changes == ('data.mode: "live" -> "backup"',)
    cm = cluster.get("v1", "ConfigMap", "settings", namespace)
    assert cm["data"] == {"mode": "backup"} and cm["metadata"]["uid"] == cm_uid
    assert any(m.get("manager") == "kubekeep" for m in cm["metadata"]["managedFields"])

    recreated = apply(cluster, plan, RestorePolicy(existing=ConflictPolicy.RECREATE))
    _ok(recreated)
    assert recreated.outcome("ConfigMap", "settings", namespace).action is Action.RECREATED
    assert uid("ConfigMap", "settings") != cm_uid
    claim = recreated.outcome("PersistentVolumeClaim", "data", namespace)
    assert claim.action is Action.SKIPPED and "holds data" in claim.reason and "recreate_pvcs" in claim.reason
    assert uid("PersistentVolumeClaim", "data") == pvc_uid
    assert recreated.outcome("ServiceAccount", "default", namespace).action is Action.SKIPPED
    assert uid("ServiceAccount", "default") == sa_uid

    forced = apply(cluster, plan, RestorePolicy(existing=ConflictPolicy.RECREATE, recreate_pvcs=True,
                                                ready_timeout=60))
    _ok(forced)
    assert forced.outcome("PersistentVolumeClaim", "data", namespace).action is Action.RECREATED
    assert uid("PersistentVolumeClaim", "data") != pvc_uid


def test_node_ports_kept_only_when_asked(cluster: Cluster, namespace: str) -> None:
    service = cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "public",
                                                                                 "namespace": namespace},
                              "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
    port = service["spec"]["ports"][0]["nodePort"]
    backup = [cluster.get("v1", "Service", "public", namespace)]
    assigned = plan_restore(backup)
    assert "nodePort" not in assigned.phases[0].objects[0].manifest["spec"]["ports"][0]
    keep = PlanOptions(sanitize=SanitizeOptions(preserve_node_ports=True))
    other = f"{namespace}-b"
    moved = plan_restore(backup, options=PlanOptions(sanitize=keep.sanitize, transforms=TransformChain.from_dict(
        [{"type": "namespace-map", "map": {namespace: other}}])))
    try:
        # the port is taken by the original: a conflict, named, in the dry run and for real
        checked = dry_run(cluster, moved)
        conflict = checked.outcome("Service", "public", other)
        assert conflict.action is Action.CONFLICT and f"{port} (Service {namespace}/public)" in conflict.reason
        reassigned = apply(cluster, moved, RestorePolicy(node_port_conflicts=NodePortConflicts.REASSIGN))
        _ok(reassigned)
        assert "reassigned" in reassigned.outcome("Service", "public", other).reason
        new_port = cluster.get("v1", "Service", "public", other)["spec"]["ports"][0]["nodePort"]
        assert new_port and new_port != port

        # once the port is free, preserve_node_ports restores it as it was
        cluster.delete("v1", "Service", "public", namespace)
        cluster.wait_for("v1", "Service", "public", lambda o: o is None, namespace=namespace, timeout=30)
        kept = apply(cluster, plan_restore(backup, options=keep))
        _ok(kept)
        assert cluster.get("v1", "Service", "public", namespace)["spec"]["ports"][0]["nodePort"] == port
    finally:
        _delete_namespace(cluster, other)


def _crd(group: str) -> Manifest:
    return crd_manifest(group, "Gizmo", spec_properties={"size": {"type": "integer"}})


def test_custom_resource_restored_after_its_crd(cluster: Cluster, namespace: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.restore.kubekeep.io"
    crd_name = f"gizmos.{group}"
    cluster.create(_crd(group))
    try:
        cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name,
                         lambda o: has_condition(o, "Established"), timeout=30)
        deadline = time.monotonic() + 30
        while not cluster.served_versions(group, "Gizmo") and time.monotonic() < deadline:
            cluster.resources(refresh=True)
            time.sleep(0.2)
        cluster.create({"apiVersion": f"{group}/v1", "kind": "Gizmo",
                        "metadata": {"name": "big", "namespace": namespace}, "spec": {"size": 7}})
        backup = [cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name),
                  *cluster.list_pages(cluster.resource_for(f"{group}/v1", "Gizmo"), namespace=namespace)]

        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)
        cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name, lambda o: o is None,
                         timeout=60, what="CRD deletion")
        served = served_by_cluster(cluster, refresh=True)
        assert "Gizmo" not in served.get(group, {})

        # without its CRD the custom resource cannot be restored, and the report says so
        alone = dry_run(cluster, plan_restore(backup[1:], served=served))
        assert alone.outcome("Gizmo", "big", namespace).action is Action.MISSING_CRD and alone.failed

        plan = plan_restore(backup, served=served)
        checked = dry_run(cluster, plan)
        assert checked.outcome("CustomResourceDefinition", crd_name).action is Action.WOULD_CREATE
        gizmo = checked.outcome("Gizmo", "big", namespace)
        assert gizmo.action is Action.WOULD_CREATE and "CustomResourceDefinition" in gizmo.reason
        assert cluster.get_or_none("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name) is None

        report = apply(cluster, plan)
        _ok(report)
        assert report.outcome("CustomResourceDefinition", crd_name).action is Action.CREATED
        assert report.outcome("Gizmo", "big", namespace).action is Action.CREATED
        crds, rest = report.phases[0], report.phase(report.outcome("Gizmo", "big", namespace).phase)
        assert crds.wait == "crds-established" and crds.ready_at is not None and rest.started_at is not None
        assert crds.ready_at <= rest.started_at
        assert cluster.get(f"{group}/v1", "Gizmo", "big", namespace)["spec"] == {"size": 7}
    finally:
        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)


def test_terminating_namespace_fails_fast(cluster: Cluster) -> None:
    name = _ns_name("kk-terminating")
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "held", "namespace": name, "finalizers": ["kubekeep.io/test-hold"]}})
    try:
        cluster.delete("v1", "Namespace", name)
        cluster.wait_for("v1", "Namespace", name, lambda o: bool(o) and o["status"].get("phase") == "Terminating",
                         timeout=30)
        plan = plan_restore([_configmap(name, "x"), _claim(name)])

        started = time.monotonic()
        report = apply(cluster, plan)
        assert time.monotonic() - started < 10
        assert report.failed and report.aborted is not None and name in report.aborted
        assert "Terminating" in report.aborted
        assert {o.action for o in report.outcomes} == {Action.NAMESPACE_TERMINATING}
        assert cluster.get_or_none("v1", "ConfigMap", "settings", name) is None
        with pytest.raises(RestoreFailedError, match="Terminating"):
            report.raise_for_failure()

        checked = dry_run(cluster, plan)
        assert {o.action for o in checked.outcomes} == {Action.NAMESPACE_TERMINATING}
    finally:
        cluster.patch("v1", "ConfigMap", "held", {"metadata": {"finalizers": None}}, namespace=name)


def _deployment(namespace: str, name: str, tier: int, **pod_spec: Any) -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {"kubekeep.io/restore-tier": str(tier)}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}], **pod_spec}}}}


def test_tier_that_is_not_ready_stops_the_restore(cluster: Cluster, namespace: str) -> None:
    plan = plan_restore([
        _deployment(namespace, "stuck", 0, nodeSelector={"kubekeep.io/no-such-node": "true"}),
        _deployment(namespace, "next", 1),
    ])
    report = apply(cluster, plan, RestorePolicy(ready_timeout=3, poll_interval=0.2))
    assert report.failed and report.aborted is not None
    assert "Deployment.apps" in report.aborted and f"{namespace}/stuck" in report.aborted
    assert "0/1 available" in report.aborted
    assert report.outcome("Deployment", "stuck", namespace).action is Action.CREATED
    assert report.outcome("Deployment", "stuck", namespace).ready is False
    assert report.outcome("Deployment", "next", namespace).action is Action.NOT_ATTEMPTED
    assert report.phase(0).ready_at is None and report.phase(0).error
    assert cluster.get_or_none("apps/v1", "Deployment", "next", namespace) is None


class _Stop(BaseException):
    """Stops a restore in the middle of a phase (as a worker's shutdown would)."""


class _StopAtSeventh:
    name = "stop-at-seventh"

    def __init__(self) -> None:
        self.seen = 0

    def applies_to(self) -> frozenset[str]:
        return frozenset({"ConfigMap"})

    def execute(self, item: Any, ctx: RestoreContext) -> Any:
        from kubekeep.restore.actions.base import PROCEED

        self.seen += 1
        if self.seen == 7:
            raise _Stop()
        return PROCEED


def test_spooled_outcomes_have_each_object_once_when_a_phase_is_cut_short(cluster: Cluster, tmp_path: Any) -> None:
    """Outcomes spooled to a file (issue 15): a phase without a gate keeps no per-object index; cut short in
    the middle, each object still has exactly one outcome (sent, or not attempted)."""
    from kubekeep.restore.actions import DEFAULT_ACTIONS

    name = _ns_name("kk-spooled")
    manifests = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                 *({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i:02d}", "namespace": name},
                    "data": {"i": str(i)}} for i in range(12))]
    plan = plan_restore(manifests)
    path = tmp_path / "outcomes.jsonl"
    actions = [_StopAtSeventh(), *DEFAULT_ACTIONS]
    from kubekeep.restore.apply import _Run

    run = _Run(cluster, plan, RestorePolicy(workers=1), dry_run=False, actions=actions, outcomes=path)
    try:
        with pytest.raises(_Stop):
            run.run()
        report = run.report
        assert report.outcomes.path == path and path.stat().st_mode & 0o777 == 0o600
        refs = [(o.kind, o.name) for o in report.outcomes]
        assert sorted(refs) == sorted([("Namespace", name), *(("ConfigMap", f"c{i:02d}") for i in range(12))])
        created = {o.name for o in report.outcomes if o.action is Action.CREATED}
        assert {f"c{i:02d}" for i in range(6)} <= created | {o.name for o in report.outcomes
                                                          if o.action is Action.NOT_ATTEMPTED}
        assert report.counts.get("not-attempted", 0) == 12 - len(created - {name})
        assert len(report.outcomes) == 13 and sum(report.counts.values()) == 13
    finally:
        _delete_namespace(cluster, name)
