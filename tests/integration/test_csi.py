"""The CSI path choreography on the real control plane.

The test bed runs no CSI driver and no snapshot controller: the VolumeSnapshot
CRDs are installed from kubekeep.testbed.crds and a thread in the test plays
the snapshot controller and the driver's provisioner (it marks snapshots
readyToUse and binds clones to PVs). kwok completes the mover Job's pod, so the
Job controller marks the Job Complete for real.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubekeep.backup.csi import (
    RUN_LABEL,
    SNAPSHOT_API,
    TEMPORARY_LABEL,
    CsiError,
    CsiNotApplicable,
    CsiTimeouts,
    MoverSpec,
    cleanup_leftovers,
    export_with_snapshot,
    volume_method,
)
from kubekeep.cluster import ApiError, Cluster
from kubekeep.testbed import crds

DRIVER = "csi.testbed.kubekeep.io"
CLASS = "kubekeep-csi-test"
MOVER = MoverSpec(image="kubekeep:test", args=("export", "--volume", "/data"), env={"KUBEKEEP_RUN": "r1"})


@pytest.fixture(scope="module")
def snapshot_api(cluster: Cluster) -> Iterator[None]:
    crds.install(cluster, crds.volume_snapshot_crds())
    objs = [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": CLASS},
             "provisioner": DRIVER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"},
            {"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshotClass",
             "metadata": {"name": CLASS, "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
             "driver": DRIVER, "deletionPolicy": "Delete"}]
    for obj in objs:
        try:
            cluster.create(obj)
        except ApiError as exc:
            if not exc.conflict:
                raise
    yield
    for obj in reversed(objs):
        cluster.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
    for crd in crds.volume_snapshot_crds():
        cluster.delete(crd["apiVersion"], crd["kind"], crd["metadata"]["name"])


class FakeSnapshotController(threading.Thread):
    """Plays external-snapshotter + the CSI driver for one namespace."""

    def __init__(self, cluster: Cluster, namespace: str, *, ready: bool = True, error: str | None = None,
                 bind_clones: bool = True) -> None:
        super().__init__(daemon=True, name="fake-snapshot-controller")
        self.cluster, self.namespace = cluster, namespace
        self.ready, self.error, self.bind_clones = ready, error, bind_clones
        self.stop_event = threading.Event()
        self.seen: dict[str, set[str]] = {"VolumeSnapshot": set(), "PersistentVolumeClaim": set(), "Job": set()}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        c, ns = self.cluster, self.namespace
        while not self.stop_event.wait(0.2):
            try:
                for vs in c.list_pages(c.resource_for(SNAPSHOT_API, "VolumeSnapshot"), namespace=ns):
                    self.seen["VolumeSnapshot"].add(vs["metadata"]["name"])
                    if not vs.get("status"):
                        self._snapshot(vs)
                for pvc in c.list_pages(c.resource_for("v1", "PersistentVolumeClaim"), namespace=ns):
                    if (pvc["spec"].get("dataSource") or {}).get("kind") == "VolumeSnapshot":
                        self.seen["PersistentVolumeClaim"].add(pvc["metadata"]["name"])
                        if self.bind_clones and not pvc["spec"].get("volumeName"):
                            make_csi_pv(c, f"clone-{pvc['metadata']['uid']}", ns, pvc["metadata"]["name"])
                for job in c.list_pages(c.resource_for("batch/v1", "Job"), namespace=ns):
                    self.seen["Job"].add(job["metadata"]["name"])
                    self.jobs[job["metadata"]["name"]] = job
            except ApiError as exc:
                self.errors.append(str(exc))

    def _snapshot(self, vs: dict[str, Any]) -> None:
        c, name = self.cluster, vs["metadata"]["name"]
        content = f"snapcontent-{vs['metadata']['uid']}"
        c.create({"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshotContent", "metadata": {"name": content},
                  "spec": {"driver": DRIVER, "deletionPolicy": "Delete",
                           "source": {"volumeHandle": "vol-1"},
                           "volumeSnapshotClassName": vs["spec"]["volumeSnapshotClassName"],
                           "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": self.namespace,
                                                 "name": name, "uid": vs["metadata"]["uid"]}}})
        status: dict[str, Any] = {"boundVolumeSnapshotContentName": content, "readyToUse": False}
        if self.ready:
            status.update(readyToUse=True, restoreSize="2Gi", creationTime="2026-01-01T00:00:00Z")
        if self.error:
            status["error"] = {"message": self.error, "time": "2026-01-01T00:00:00Z"}
        c.patch(SNAPSHOT_API, "VolumeSnapshot", name, {"status": status}, namespace=self.namespace,
                subresource="status")

    def __enter__(self) -> FakeSnapshotController:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.join(5)


def make_csi_pv(cluster: Cluster, pv: str, namespace: str, claim: str, *, driver: str = DRIVER) -> None:
    try:
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                        "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": CLASS,
                                 "csi": {"driver": driver, "volumeHandle": pv},
                                 "claimRef": {"namespace": namespace, "name": claim}}})
    except ApiError as exc:
        if not exc.conflict:
            raise


def bound_pvc(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any], *,
              storage_class: str | None = CLASS) -> dict[str, Any]:
    """A PVC bound to a pre-made PV with ``spec`` (the PV controller does the binding)."""
    pv = f"pv-{uuid.uuid4().hex[:10]}"
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class or "",
                             "claimRef": {"namespace": namespace, "name": name}, **spec}})
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class or "",
                             "volumeName": pv, "resources": {"requests": {"storage": "1Gi"}}}})
    obj = cluster.wait_for("v1", "PersistentVolumeClaim", name,
                           lambda o: bool(o) and o.get("status", {}).get("phase") == "Bound",  # type: ignore[union-attr]
                           namespace=namespace, timeout=60, what="Bound")
    assert obj is not None
    return obj


def assert_no_temporaries(cluster: Cluster, namespace: str) -> None:
    for api_version, kind in (("batch/v1", "Job"), ("v1", "PersistentVolumeClaim"), (SNAPSHOT_API, "VolumeSnapshot")):
        left = list(cluster.list_pages(cluster.resource_for(api_version, kind), namespace=namespace,
                                       label_selector=f"{TEMPORARY_LABEL}=csi"))
        assert left == [], f"{kind} left behind: {[o['metadata']['name'] for o in left]}"
    pods = list(cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=namespace))
    assert pods == [], "mover pods left behind"


def test_happy_path_creates_snapshot_clone_and_mover_then_cleans_up(
        cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    pvc = bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "vol-1"}})
    method = volume_method(cluster, pvc)
    assert str(method) == "csi-snapshot" and method.snapshot_class == CLASS and method.driver == DRIVER

    with FakeSnapshotController(cluster, namespace) as ctl:
        result = export_with_snapshot(cluster, namespace, "data", MOVER, run_id="run-1",
                                      timeouts=CsiTimeouts(snapshot_ready=30, job=60, cleanup=30), poll_interval=0.2)
    assert ctl.errors == []
    assert ctl.seen == {"VolumeSnapshot": {result.snapshot}, "PersistentVolumeClaim": {result.temp_pvc},
                        "Job": {result.job}}
    assert result.snapshot_class == CLASS and result.restore_size == "2Gi"
    assert result.snapshot_content and result.snapshot_content.startswith("snapcontent-")
    assert [s.name for s in result.steps] == ["snapshot", "mover", "cleanup"] and result.leftovers == ()
    job = ctl.jobs[result.job]
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": result.temp_pvc, "readOnly": True}
    assert pod_spec["containers"][0]["command"] == ["python", "-m", "kubekeep.mover"]
    assert pod_spec["containers"][0]["args"] == ["export", "--volume", "/data"]
    assert job["metadata"]["labels"][RUN_LABEL] == "run-1"
    assert_no_temporaries(cluster, namespace)
    assert cluster.get("v1", "PersistentVolumeClaim", "data", namespace)["status"]["phase"] == "Bound"


def test_snapshot_never_ready_times_out_and_cleans_up(cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "vol-1"}})
    with FakeSnapshotController(cluster, namespace, ready=False), \
            pytest.raises(CsiError, match=r"CSI snapshot: VolumeSnapshot .* not readyToUse within 2s") as info:
        export_with_snapshot(cluster, namespace, "data", MOVER, run_id="run-2",
                             timeouts=CsiTimeouts(snapshot_ready=2, job=60, cleanup=30), poll_interval=0.2)
    assert info.value.step == "snapshot"
    assert_no_temporaries(cluster, namespace)


def test_snapshot_error_fails_at_once(cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "vol-1"}})
    t0 = time.monotonic()
    with FakeSnapshotController(cluster, namespace, ready=False, error="quota exceeded"), \
            pytest.raises(CsiError, match="failed: quota exceeded"):
        export_with_snapshot(cluster, namespace, "data", MOVER, run_id="run-3",
                             timeouts=CsiTimeouts(snapshot_ready=60, job=60, cleanup=30), poll_interval=0.2)
    assert time.monotonic() - t0 < 30
    assert_no_temporaries(cluster, namespace)


def test_failed_mover_job_is_reported_and_cleaned_up(cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "vol-1"}})
    # the clone is never bound, so the mover pod cannot be scheduled and the Job controller
    # fails the Job at its activeDeadlineSeconds
    with FakeSnapshotController(cluster, namespace, bind_clones=False), \
            pytest.raises(CsiError, match=r"CSI mover: Job .* failed: DeadlineExceeded.*pod .*Pending") as info:
        export_with_snapshot(cluster, namespace, "data", MOVER, run_id="run-4",
                             timeouts=CsiTimeouts(snapshot_ready=30, job=60, job_deadline=3, cleanup=30),
                             poll_interval=0.2)
    assert info.value.step == "mover"
    assert_no_temporaries(cluster, namespace)


def test_no_snapshot_class_means_the_csi_path_does_not_apply(
        cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    pvc = bound_pvc(cluster, namespace, "data", {"csi": {"driver": "other.csi.example.com", "volumeHandle": "v"}})
    assert str(volume_method(cluster, pvc)) == (
        f"unsupported: PVC {namespace}/data: CSI driver other.csi.example.com has no VolumeSnapshotClass")
    with pytest.raises(CsiNotApplicable, match="has no VolumeSnapshotClass"):
        export_with_snapshot(cluster, namespace, "data", MOVER, run_id="run-5")
    assert list(cluster.list_pages(cluster.resource_for(SNAPSHOT_API, "VolumeSnapshot"), namespace=namespace)) == []


def test_volume_method_for_direct_and_unbound_volumes(cluster: Cluster, namespace: str, test_cluster: Any) -> None:
    nfs = bound_pvc(cluster, namespace, "nfs", {"nfs": {"server": "10.0.0.5", "path": "/exports/shop"}},
                    storage_class=None)
    m = volume_method(cluster, nfs)
    assert (str(m), m.nfs_server, m.path, m.volume_type) == ("direct", "10.0.0.5", "/exports/shop", "nfs")
    local = bound_pvc(cluster, namespace, "local", {"local": {"path": "/mnt/disk1"}, "nodeAffinity": {"required": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "type", "operator": "In", "values": ["kwok"]}]}]}}},
        storage_class=None)
    assert (str(volume_method(cluster, local)), volume_method(cluster, local).path) == ("direct", "/mnt/disk1")
    if test_cluster.volumes_dir is not None:  # the test bed's hostPath provisioner
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "hp", "namespace": namespace},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        hp = cluster.wait_for("v1", "PersistentVolumeClaim", "hp",
                              lambda o: bool(o) and o.get("status", {}).get("phase") == "Bound",  # type: ignore[union-attr]
                              namespace=namespace, timeout=60, what="Bound")
        assert hp is not None
        m = volume_method(cluster, hp)
        assert str(m) == "direct" and m.volume_type == "hostPath"
        assert m.path and m.path.startswith(str(test_cluster.volumes_dir))
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "pending", "namespace": namespace},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                             "resources": {"requests": {"storage": "1Gi"}}}})
    pending = cluster.get("v1", "PersistentVolumeClaim", "pending", namespace)
    assert str(volume_method(cluster, pending)) == f"unsupported: PVC {namespace}/pending is not bound (phase Pending)"


def test_cleanup_leftovers_of_a_crashed_run(cluster: Cluster, namespace: str, snapshot_api: None) -> None:
    labels = {TEMPORARY_LABEL: "csi", RUN_LABEL: "crashed"}
    cluster.create({"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
                    "metadata": {"name": "kk-data-crashed-snap", "namespace": namespace, "labels": labels},
                    "spec": {"volumeSnapshotClassName": CLASS, "source": {"persistentVolumeClaimName": "data"}}})
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "kk-data-crashed-src", "namespace": namespace, "labels": labels},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": CLASS,
                             "resources": {"requests": {"storage": "1Gi"}}}})
    assert cleanup_leftovers(cluster, namespace, run_id="other") == []
    assert len(list(cluster.list_pages(cluster.resource_for(SNAPSHOT_API, "VolumeSnapshot"), namespace=namespace))) == 1
    assert cleanup_leftovers(cluster, namespace, timeout=30) == []
    assert_no_temporaries(cluster, namespace)
