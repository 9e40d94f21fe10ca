"""Restoring a volume the worker cannot reach: a mover Job mounts the restored claim read-write.

The test bed has no CSI driver (the PV is pre-made) and kwok completes the Job's pod without running
a container, so this checks the choreography: the Job, its arguments and mount, and its cleanup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.restore import restore
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    VOLUME_TAG,
    RestorePointRecord,
    VolumeRecord,
    manifest_stream,
    write_restore_point,
)
from kubekeep.testbed.sample_app import fill_volume
from tests.integration.test_csi import (
    CLASS,
    DRIVER,
    FakeSnapshotController,
    bound_pvc,
    make_csi_pv,
    snapshot_api,  # noqa: F401
)


def test_volume_restored_by_a_mover_job(prefect_api: str, test_cluster, cluster: Cluster, namespace: str,  # type: ignore[no-untyped-def]
                                        tmp_path: Path, snapshot_api: None) -> None:  # noqa: F811
    claim = bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "orig"}})
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="mv", cheap_kdf=True)
    now = datetime.now(UTC).isoformat()
    fill_volume(tmp_path / "files", seed="mover-restore", files=5)
    with key.open_repository(location.storage(), create=True) as repo:
        vol = repo.backup(tmp_path / "files", tags=[VOLUME_TAG], metadata={"pvc": f"{namespace}/data"})
        manifests = repo.backup(streams={MANIFESTS_STREAM: manifest_stream([claim])}, tags=[MANIFESTS_TAG])
        write_restore_point(repo, RestorePointRecord(
            id="mover-rp", app="mv", cluster="src", namespaces=[namespace], started_at=now, finished_at=now,
            status="succeeded", location=location.describe(), manifest_snapshot=manifests.snapshot_id,
            volumes=[VolumeRecord(namespace, "data", CLASS, 1 << 30, "csi-snapshot", vol.snapshot_id, files=6)]))

    target = f"{namespace[:50]}-mv"
    make_csi_pv(cluster, f"pv-{target}", target, "data")  # the target's "driver" has a volume ready for the claim
    mover = {"image": "registry.example.com/kubekeep:0.1", "repository": "s3://backups/prod/",
             "env_from_secrets": ["kubekeep-repo"]}
    try:
        with FakeSnapshotController(cluster, target) as ctl:
            report = restore(location=location, encryption_key=key, restore_point="mover-rp",
                             cluster=ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig)),
                             namespace_map={namespace: target}, mover=mover)
        assert report["failed"] is False
        assert cluster.get("v1", "PersistentVolumeClaim", "data", target)["status"]["phase"] == "Bound"
        assert len(ctl.jobs) == 1
        job = next(iter(ctl.jobs.values()))
        pod = job["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        assert args == ["restore", "--location", "s3://backups/prod/", "--snapshot", vol.snapshot_id,
                        "--target", "/data"]
        # mounted writable (the API server omits readOnly: false)
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data"
        assert not pod["volumes"][0]["persistentVolumeClaim"].get("readOnly", False)
        assert not pod["containers"][0]["volumeMounts"][0].get("readOnly", False)
        assert cluster.get_or_none("batch/v1", "Job", job["metadata"]["name"], target) is None  # cleaned up
    finally:
        cluster.delete("v1", "Namespace", target)
        cluster.delete("v1", "PersistentVolume", f"pv-{target}")
