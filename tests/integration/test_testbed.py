"""Proof that the test bed is a real control plane: discovery, CRDs, controllers, conflicts."""

from __future__ import annotations

import time
import uuid

import pytest

from kubekeep.cluster import ApiError, Cluster, has_condition
from kubekeep.testbed.crds import crd_manifest


def _wait(cond, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


def test_discovery_lists_builtin_groups(cluster: Cluster) -> None:
    version = cluster.server_version()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    resources = cluster.preferred_resources(refresh=True)
    groups = {r.group for r in resources}
    assert {"", "apps", "batch", "rbac.authorization.k8s.io", "storage.k8s.io",
            "apiextensions.k8s.io", "networking.k8s.io"} <= groups
    kinds = {(r.group, r.kind): r for r in resources}
    assert kinds[("apps", "Deployment")].namespaced
    assert not kinds[("", "PersistentVolume")].namespaced
    assert kinds[("", "Pod")].plural == "pods"


def test_crd_becomes_established_and_crs_list_by_label(cluster: Cluster, namespace: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.testbed.kubekeep.io"
    crd = crd_manifest(group, "Widget", spec_properties={"size": {"type": "integer"}})
    cluster.create(crd)
    try:
        cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}",
                         lambda o: has_condition(o, "Established"),
                         timeout=30, what="Established")
        _wait(lambda: any(r.group == group for r in cluster.resources(refresh=True)), 30, "discovery of CRD")
        for i, color in enumerate(["red", "blue", "red"]):
            cluster.create({"apiVersion": f"{group}/v1", "kind": "Widget",
                            "metadata": {"name": f"w{i}", "namespace": namespace, "labels": {"color": color}},
                            "spec": {"size": i}})
        res = cluster.resource_for(f"{group}/v1", "Widget")
        red = list(cluster.list_pages(res, namespace=namespace, label_selector="color=red", limit=1))
        assert sorted(o["metadata"]["name"] for o in red) == ["w0", "w2"]
        assert all(o["kind"] == "Widget" and o["apiVersion"] == f"{group}/v1" for o in red)
    finally:
        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")


def test_namespace_with_objects_is_finalized(cluster: Cluster) -> None:
    name = f"t-finalize-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": name},
                    "data": {"k": "v"}})
    cluster.delete("v1", "Namespace", name)
    ns = cluster.get("v1", "Namespace", name)
    assert ns["status"]["phase"] == "Terminating"
    cluster.wait_for("v1", "Namespace", name, lambda o: o is None, timeout=120, what="namespace deletion")
    assert cluster.get_or_none("v1", "ConfigMap", "cm", name) is None


def test_garbage_collector_removes_owned_child(cluster: Cluster, namespace: str) -> None:
    owner = cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "owner", "namespace": namespace}})
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "namespace": namespace,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner["metadata"]["uid"]}]}})
    cluster.delete("v1", "ConfigMap", "owner", namespace)
    cluster.wait_for("v1", "ConfigMap", "child", lambda o: o is None, namespace=namespace, timeout=60,
                     what="garbage collection of the child")


def test_pvc_binds_to_precreated_pv(cluster: Cluster, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pv_name = f"pv-{namespace}"
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                    "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                             "storageClassName": "manual", "persistentVolumeReclaimPolicy": "Retain",
                             "hostPath": {"path": str(tmp_path)}}})
    try:
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "claim", "namespace": namespace},
                        "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}}})
        pvc = cluster.wait_for("v1", "PersistentVolumeClaim", "claim",
                               lambda o: bool(o) and o.get("status", {}).get("phase") == "Bound",
                               namespace=namespace, timeout=60, what="Bound")
        assert pvc is not None and pvc["spec"]["volumeName"] == pv_name
        pv = cluster.get("v1", "PersistentVolume", pv_name)
        assert pv["spec"]["claimRef"]["name"] == "claim" and pv["status"]["phase"] == "Bound"
    finally:
        cluster.delete("v1", "PersistentVolumeClaim", "claim", namespace)
        cluster.delete("v1", "PersistentVolume", pv_name)


def test_pvc_is_provisioned_and_pods_become_ready(cluster: Cluster, namespace: str, test_cluster) -> None:  # type: ignore[no-untyped-def]
    if test_cluster.volumes_dir is None:
        pytest.skip("the hostPath provisioner exists only in the built-in test bed")
    cluster.create({"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": {"name": "db", "namespace": namespace},
                    "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                             "template": {"metadata": {"labels": {"app": "db"}},
                                          "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                                 "accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}}}]}})
    sts = cluster.wait_for("apps/v1", "StatefulSet", "db",
                           lambda o: bool(o) and o.get("status", {}).get("readyReplicas") == 2,
                           namespace=namespace, timeout=90, what="StatefulSet ready")
    assert sts is not None
    for i in range(2):
        pvc = cluster.get("v1", "PersistentVolumeClaim", f"data-db-{i}", namespace)
        assert pvc["status"]["phase"] == "Bound"
        pv = cluster.get("v1", "PersistentVolume", pvc["spec"]["volumeName"])
        assert (test_cluster.volumes_dir / pv["metadata"]["name"]).is_dir()
        pod = cluster.get("v1", "Pod", f"db-{i}", namespace)
        assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"]


def test_stale_resource_version_conflicts(cluster: Cluster, namespace: str) -> None:
    cm = cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "cm", "namespace": namespace}, "data": {"v": "1"}})
    fresh = dict(cm, data={"v": "2"})
    cluster.replace(fresh)
    stale = dict(cm, data={"v": "3"})  # still carries the first resourceVersion
    with pytest.raises(ApiError) as err:
        cluster.replace(stale)
    assert err.value.status == 409 and err.value.conflict and not err.value.transient


def test_immutable_field_change_is_rejected(cluster: Cluster, namespace: str) -> None:
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": namespace},
                    "spec": {"selector": {"matchLabels": {"app": "a"}},
                             "template": {"metadata": {"labels": {"app": "a"}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    with pytest.raises(ApiError) as err:
        cluster.patch("apps/v1", "Deployment", "d", {"spec": {"selector": {"matchLabels": {"app": "b"}},
                                                               "template": {"metadata": {"labels": {"app": "b"}}}}},
                      namespace=namespace)
    assert err.value.status == 422 and "immutable" in str(err.value)


def test_installing_a_crd_that_is_still_being_deleted_waits_and_creates_it_again(cluster: Cluster) -> None:
    """A module's fixture deleted the volume snapshot CRDs (without waiting) right before the next module's
    fixture installed them: install found them, kept the terminating ones, and they vanished under the next
    module (its setup then timed out on "CRD Established"). Install waits for a terminating CRD to be gone
    and creates it anew."""
    import threading

    from kubekeep.testbed import crds

    group = f"g{uuid.uuid4().hex[:8]}.testbed.kubekeep.io"
    crd = crd_manifest(group, "Gadget", spec_properties={"size": {"type": "integer"}})
    name = crd["metadata"]["name"]
    crds.install(cluster, [crd])
    # a finalizer of the test's own holds the deletion open until the thread below lets it go
    cluster.patch("apiextensions.k8s.io/v1", "CustomResourceDefinition", name,
                  {"metadata": {"finalizers": ["testbed.kubekeep.io/hold"]}})
    cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    held = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    assert held["metadata"].get("deletionTimestamp")

    def release() -> None:
        time.sleep(2)
        now = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        cluster.patch("apiextensions.k8s.io/v1", "CustomResourceDefinition", name,
                      {"metadata": {"finalizers": [f for f in now["metadata"]["finalizers"]
                                                   if f != "testbed.kubekeep.io/hold"],
                                    "resourceVersion": now["metadata"]["resourceVersion"]}})

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        crds.install(cluster, [crd], timeout=60)
    finally:
        releaser.join()
    try:
        again = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        assert not again["metadata"].get("deletionTimestamp")
        assert again["metadata"]["uid"] != held["metadata"]["uid"]
        assert has_condition(again, "Established")
    finally:
        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
