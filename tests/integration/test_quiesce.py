"""Quiesce by scale-down on the real control plane: Deployment/ReplicaSet/StatefulSet controllers and kwok pods.

The bracket is the one flows use (tasks.consistency.quiesced: quiesce and unquiesce are tasks of the Prefect API).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from blocks import ClusterConnection
from kubekeep.backup.quiesce import (
    ORIGINAL_REPLICAS_ANNOTATION,
    QuiesceError,
    WorkloadRef,
    find_quiesced,
    pods_of,
    quiesce,
    select_workloads,
    unquiesce,
)
from kubekeep.cluster import ApiError, Cluster
from tasks.consistency import quiesced


@pytest.fixture
def conn(test_cluster: Any, prefect_api: str) -> ClusterConnection:
    return ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig))


def _template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


def make_app(cluster: Cluster, ns: str, *, web: int = 2, db: int = 1) -> list[WorkloadRef]:
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                    "spec": {"replicas": web, "selector": {"matchLabels": {"app": "web"}},
                             "template": _template("web")}})
    cluster.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
                    "spec": {"replicas": db, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                             "template": _template("db")}})
    refs = [WorkloadRef("Deployment", ns, "web"), WorkloadRef("StatefulSet", ns, "db")]
    for ref, n in zip(refs, (web, db), strict=True):
        _wait(lambda r=ref, n=n: len(pods_of(cluster, r)) == n, f"{ref} has {n} pods")  # type: ignore[misc]
    return refs


def _wait(cond: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.2)


def _replicas(cluster: Cluster, ref: WorkloadRef) -> tuple[int, str | None]:
    obj = cluster.get("apps/v1", ref.kind, ref.name, ref.namespace)
    return obj["spec"]["replicas"], (obj["metadata"].get("annotations") or {}).get(ORIGINAL_REPLICAS_ANNOTATION)


def test_quiesced_scales_to_zero_and_restores_even_when_the_body_raises(cluster: Cluster, namespace: str,
                                                                       conn: ClusterConnection) -> None:
    web, db = make_app(cluster, namespace)
    assert select_workloads(cluster, namespace) == [web, db]  # the Deployment's ReplicaSet is not listed

    with pytest.raises(RuntimeError, match="export failed"), \
            quiesced(conn, [namespace], ["Deployment/web", f"{namespace}/StatefulSet/d*"], timeout=60) as record:
        assert record is not None and [(w.ref, w.original_replicas) for w in record.workloads] == [(web, 2), (db, 1)]
        assert _replicas(cluster, web) == (0, "2") and _replicas(cluster, db) == (0, "1")
        assert pods_of(cluster, web) == [] and pods_of(cluster, db) == []
        raise RuntimeError("export failed")

    assert _replicas(cluster, web) == (2, None) and _replicas(cluster, db) == (1, None)
    _wait(lambda: len(pods_of(cluster, web)) == 2 and len(pods_of(cluster, db)) == 1, "pods back")


def test_separate_tasks_crash_resume_and_idempotence(cluster: Cluster, namespace: str) -> None:
    web, db = make_app(cluster, namespace, web=3)
    quiesce(cluster, [web, db], timeout=60)
    # a crashed run is found from the annotations alone
    assert {(w.ref, w.original_replicas) for w in find_quiesced(cluster, namespace)} == {(web, 3), (db, 1)}
    # quiescing again (a retried task) keeps the original count, not the current 0
    again = quiesce(cluster, [web], timeout=60)
    assert again.workloads[0].original_replicas == 3

    restored = unquiesce(cluster, [w.ref for w in find_quiesced(cluster, namespace)], wait=True, timeout=60)
    assert {(w.ref, w.original_replicas) for w in restored} == {(web, 3), (db, 1)}
    assert unquiesce(cluster, [web, db]) == []  # nothing left to do
    assert _replicas(cluster, web) == (3, None) and find_quiesced(cluster, namespace) == []


def test_replicaset_and_zero_replicas(cluster: Cluster, namespace: str, conn: ClusterConnection) -> None:
    cluster.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": namespace},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs"}}, "template": _template("rs")}})
    rs = WorkloadRef("ReplicaSet", namespace, "rs")
    _wait(lambda: len(pods_of(cluster, rs)) == 1, "rs pod")
    with quiesced(conn, [namespace], ["ReplicaSet/rs"], timeout=60):
        assert pods_of(cluster, rs) == []
    assert _replicas(cluster, rs) == (1, None)


def _deny_pod_deletion(cluster: Cluster, namespace: str, pod: str) -> list[tuple[str, str]]:
    """A ValidatingAdmissionPolicy that refuses to delete one pod (kwok strips finalizers, so they cannot hold it)."""
    name = f"hold-{namespace}"[:63]
    cluster.create({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                    "metadata": {"name": name},
                    "spec": {"failurePolicy": "Fail",
                             "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                                     "operations": ["DELETE"],
                                                                     "resources": ["pods"]}]},
                             "validations": [{"expression": f"oldObject.metadata.name != '{pod}'",
                                              "message": "held by the test"}]}})
    cluster.create({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": {"name": name},
                    "spec": {"policyName": name, "validationActions": ["Deny"],
                             "matchResources": {"namespaceSelector": {"matchLabels": {
                                 "kubernetes.io/metadata.name": namespace}}}}})
    path = cluster.resource_for("v1", "Pod").path(namespace, pod)

    def denied() -> bool:
        try:
            cluster.request("DELETE", path, query={"dryRun": "All"})
        except ApiError as exc:
            return "held by the test" in str(exc)
        return False
    _wait(denied, "deletion policy in force", timeout=30)
    return [("ValidatingAdmissionPolicyBinding", name), ("ValidatingAdmissionPolicy", name)]


def test_pods_that_do_not_stop_fail_the_quiesce_and_everything_is_restored(cluster: Cluster, namespace: str,
                                                                           conn: ClusterConnection) -> None:
    web, db = make_app(cluster, namespace)
    stuck = pods_of(cluster, db)[0]
    policy = _deny_pod_deletion(cluster, namespace, stuck)
    try:
        with pytest.raises(QuiesceError, match=rf"StatefulSet {namespace}/db: 1 pod\(s\) still present .*{stuck}"), \
                quiesced(conn, [namespace], ["*"], timeout=3):
            pytest.fail("the body must not run when quiesce failed")
        assert _replicas(cluster, web) == (2, None) and _replicas(cluster, db) == (1, None)
    finally:
        for kind, name in policy:
            cluster.delete("admissionregistration.k8s.io/v1", kind, name)


def test_hpa_targets_are_refused_and_missing_workloads_are_clear_errors(cluster: Cluster, namespace: str) -> None:
    web, db = make_app(cluster, namespace, web=1)
    cluster.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "web", "namespace": namespace},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                             "minReplicas": 1, "maxReplicas": 3}})
    with pytest.raises(QuiesceError, match="HorizontalPodAutoscaler web"):
        quiesce(cluster, [db, web])
    assert _replicas(cluster, db) == (1, None)  # refused before anything was touched
    with pytest.raises(QuiesceError, match=f"Deployment {namespace}/ghost not found"):
        quiesce(cluster, [db, WorkloadRef("Deployment", namespace, "ghost")], allow_hpa=True)
    assert _replicas(cluster, db) == (1, None)  # db was scaled down, then put back
