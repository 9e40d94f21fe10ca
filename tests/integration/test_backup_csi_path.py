"""The backup flow chooses the CSI snapshot path for CSI volumes and drives the mover Job.

The test bed has no CSI driver: the VolumeSnapshot CRDs are installed and a test
thread plays the snapshot controller (see test_csi.py); kwok completes the mover
Job's pod without running a container, so no data arrives - the flow must say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import BackupFailed, backup
from kubekeep.catalog import latest_restore_point
from kubekeep.cluster import Cluster
from tests.integration.test_csi import DRIVER, FakeSnapshotController, bound_pvc, snapshot_api  # noqa: F401


def _run(test_cluster, namespace: str, tmp_path: Path, mover: dict | None) -> BackupFailed:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(BackupFailed) as err:
        backup(app="csi-app", namespaces=[namespace],
               location=LocationProfile(kind="filesystem", path=str(tmp_path / "loc")),
               encryption_key=EncryptionKey(passphrase="pw", cheap_kdf=True),
               cluster=ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig)), mover=mover, init=True)
    return err.value


def test_csi_volume_without_mover_is_reported(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                             namespace: str, tmp_path: Path, snapshot_api: None) -> None:  # noqa: F811
    bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "h1"}})
    error = _run(test_cluster, namespace, tmp_path, None)
    assert f"volume {namespace}/data: the CSI snapshot path needs a mover" in str(error)
    with EncryptionKey(passphrase="pw", cheap_kdf=True).catalog(
            LocationProfile(kind="filesystem", path=str(tmp_path / "loc")), cache_dir=tmp_path / "c") as catalog:
        point = latest_restore_point(catalog, "csi-app", statuses=("partially_failed",))
    assert point is not None and point.volume_count == 1


def test_csi_volume_runs_the_mover_job(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                      namespace: str, tmp_path: Path, snapshot_api: None) -> None:  # noqa: F811
    bound_pvc(cluster, namespace, "data", {"csi": {"driver": DRIVER, "volumeHandle": "h2"}})
    mover = {"image": "registry.example.com/kubekeep:0.1", "repository": "s3://backups/prod/",
             "env_from_secrets": ["kubekeep-repo-credentials"]}
    with FakeSnapshotController(cluster, namespace) as ctl:
        error = _run(test_cluster, namespace, tmp_path, mover)
    assert ctl.errors == []
    # the choreography ran: snapshot, clone and a mover Job with this project's entrypoint and arguments
    assert len(ctl.seen["VolumeSnapshot"]) == 1 and len(ctl.seen["Job"]) == 1
    job = next(iter(ctl.jobs.values()))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == mover["image"] and container["command"] == ["python", "-m", "kubekeep.mover"]
    args = container["args"]
    assert args[:3] == ["backup", "--location", "s3://backups/prod/"] and f"{namespace}/data" in args
    assert container["envFrom"] == [{"secretRef": {"name": "kubekeep-repo-credentials"}}]
    # kwok ran no container, so the repository got no snapshot: reported, never silently "succeeded"
    assert "the mover Job completed but wrote no snapshot" in str(error)
