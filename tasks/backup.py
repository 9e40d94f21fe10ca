"""Backup tasks: each calls one core function and returns a small reference, never object payloads.

The building blocks of every flow that writes restore points (backup, and migrate's final
incremental): :func:`snapshot_manifests`, :func:`export_volumes` (one :func:`export_volume` task
per claim, bounded), :func:`restore_point_record`, then :func:`commit_restore_point`,
:func:`lock_restore_point` and :func:`record_catalog` in that order (the write order that makes
retries safe). Every task shares the run's open repository (blocks.repositories).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile, repository
from kubekeep.backup.collect import CollectReport, PvcRef, collect
from kubekeep.backup.csi import CsiError, export_with_snapshot, volume_method
from kubekeep.backup.hooks import HookRun
from kubekeep.backup.scope import BackupScope
from kubekeep.backup.volumes import VolumeError, export_directory, find_volume_snapshot, local_path, parse_quantity
from kubekeep.catalog import RestorePointStatus
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    VolumeRecord,
    add_to_catalog,
    find_restore_point,
    manifest_stream,
    write_restore_point,
)
from kubekeep.restorepoint.object_lock import LockReport, apply_retention

from .common import DATA_TASK, run_bounded
from .parameters import MoverOptions


@dataclass
class ManifestResult:
    """What :func:`snapshot_manifests` hands on: the manifests' snapshot and small summaries."""

    snapshot_id: str
    namespaces: list[str]
    object_count: int
    kind_counts: dict[str, int]
    pvcs: list[PvcRef]
    type_errors: list[str] = field(default_factory=list)
    #: CustomResourceDefinitions stored -> why each was included
    crds: dict[str, list[str]] = field(default_factory=dict)


@task(name="snapshot-manifests", **DATA_TASK)
def snapshot_manifests(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                       scope: BackupScope, restore_point_id: str, app: str, init: bool = False) -> ManifestResult:
    """Stream every object of the scope (and its cluster-scoped dependencies) into one snapshot.

    The location must hold a repository; ``init`` creates one (the first backup only)."""
    report = CollectReport()
    with cluster.connect() as c, repository(location, key, create=init) as repo:
        result = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(collect(c, scope, report))},
                             tags=[MANIFESTS_TAG, f"app:{app}"],
                             metadata={"restore_point": restore_point_id, "app": app, "cluster": c.name},
                             retention=location.retention())
    get_run_logger().info("stored %d objects of %d kinds from %d namespace(s); %d type(s) failed",
                          report.objects, len(report.kind_counts), len(report.namespaces), len(report.type_errors))
    return ManifestResult(snapshot_id=result.snapshot_id, namespaces=report.namespaces,
                          object_count=report.objects, kind_counts=report.kind_counts, pvcs=report.pvcs,
                          type_errors=[e.describe() for e in report.type_errors], crds=report.crds)


@task(name="export-volume", task_run_name="export-volume-{pvc.namespace}-{pvc.name}", **DATA_TASK)
def export_volume(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection, pvc: PvcRef,
                  restore_point_id: str, nfs_mounts: dict[str, str] | None = None,
                  mover: MoverOptions | None = None) -> VolumeRecord:
    """Export one PVC's files: direct path when the worker reaches them, else the CSI snapshot path
    (VolumeSnapshot, temporary PVC, mover Job), incremental from the PVC's previous snapshot."""
    size = parse_quantity(pvc.size)

    def failed(method: str, error: str) -> VolumeRecord:
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, method, None, error=error)

    with cluster.connect() as c:
        claim = c.get_or_none("v1", "PersistentVolumeClaim", pvc.name, pvc.namespace)
        if claim is None:
            return failed("skipped", "the PVC disappeared during the backup")
        method = volume_method(c, claim)
        if method.method == "csi-snapshot":
            return _export_csi(c, location, key, pvc, size, restore_point_id, mover)
    if method.method == "unsupported":
        return failed("skipped", method.reason)
    source = local_path(method, nfs_mounts)
    if source is None:
        return failed("direct", f"NFS export {method.nfs_server}:{method.path} is not mounted on this worker "
                                "(give nfs_mounts: {'server:/export': '/local/mount'})")
    try:
        with repository(location, key) as repo:
            return export_directory(repo, source, namespace=pvc.namespace, pvc=pvc.name,
                                    storage_class=pvc.storage_class, size_bytes=size,
                                    restore_point_id=restore_point_id, retention=location.retention())
    except VolumeError as exc:
        return failed("direct", str(exc))


def _export_csi(c: Cluster, location: LocationProfile, key: EncryptionKey, pvc: PvcRef, size: int,
                restore_point_id: str, mover: MoverOptions | None) -> VolumeRecord:
    def record(error: str | None = None, snapshot_id: str | None = None, stats: dict[str, Any] | None = None
               ) -> VolumeRecord:
        stats = stats or {}
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "csi-snapshot", snapshot_id,
                            files=int(stats.get("files", 0)), logical_bytes=int(stats.get("bytes", 0)),
                            stored_bytes=int(stats.get("new_stored_bytes", 0)), error=error)

    if mover is None:
        return record("the CSI snapshot path needs a mover: give the flow parameter mover = {image, location "
                      "(the location as the cluster sees it), env_from_secrets (Secret with KUBEKEEP_PASSWORD "
                      "and storage credentials)}")
    spec = mover.spec("backup", "--source", "/data", "--pvc", f"{pvc.namespace}/{pvc.name}",
                      "--restore-point", restore_point_id, "--size", pvc.size or "0", "--method", "csi-snapshot")
    try:
        export_with_snapshot(c, pvc.namespace, pvc.name, spec, run_id=restore_point_id[-6:])
    except CsiError as exc:
        return record(f"CSI export failed at step {exc.step}: {exc}")
    with repository(location, key) as repo:
        sid = find_volume_snapshot(repo, pvc.namespace, pvc.name, restore_point_id)
        if sid is None:
            return record("the mover Job completed but wrote no snapshot for this PVC")
        return record(snapshot_id=sid, stats=repo.load_snapshot(sid).get("stats", {}))


def export_volumes(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                   pvcs: Sequence[PvcRef], restore_point_id: str, *, nfs_mounts: dict[str, str] | None = None,
                   mover: MoverOptions | None = None, concurrency: int = 2) -> list[VolumeRecord]:
    """Export every claim (one ``export-volume`` task each, at most ``concurrency`` at once: each reads a
    whole volume); a claim whose task failed after its retries is recorded with the error, never dropped.
    Call it from a flow."""
    if not pvcs:
        return []
    progress: Any = create_progress_artifact(progress=0.0, description=f"volumes of {restore_point_id}")
    return run_bounded(
        pvcs, lambda pvc: export_volume.submit(location, key, cluster, pvc, restore_point_id, nfs_mounts, mover),
        concurrency,
        on_error=lambda pvc, exc: VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, 0, "direct", None,
                                               error=f"{type(exc).__name__}: {exc}"),
        on_done=lambda n: update_progress_artifact(artifact_id=progress, progress=n / len(pvcs) * 100))


def restore_point_record(*, restore_point_id: str, app: str, cluster: str, location: str, started: datetime,
                         manifests: ManifestResult, volumes: Sequence[VolumeRecord], hooks: HookRun,
                         scope: BackupScope, failures: Sequence[str], policy: str | None = None,
                         retain_until: datetime | None = None, quiesced_at: str | None = None) -> RestorePointRecord:
    """The record of a backup run: what it stored, and every failure (status ``partially_failed`` if any)."""
    status = RestorePointStatus.PARTIALLY_FAILED if failures else RestorePointStatus.SUCCEEDED
    return RestorePointRecord(
        id=restore_point_id, app=app, cluster=cluster, namespaces=manifests.namespaces,
        started_at=started.isoformat(), finished_at=datetime.now(UTC).isoformat(), status=status.value,
        location=location, manifest_snapshot=manifests.snapshot_id, policy=policy,
        status_reason="; ".join(failures)[:4000] or None, object_count=manifests.object_count,
        kind_counts=manifests.kind_counts, volumes=list(volumes), type_errors=manifests.type_errors,
        selection=scope.to_dict(), retain_until=retain_until.isoformat() if retain_until else None,
        hooks=[e.to_dict() for e in hooks.executions], crds=manifests.crds, quiesced_at=quiesced_at)


@task(name="commit-restore-point", **DATA_TASK)
def commit_restore_point(location: LocationProfile, key: EncryptionKey, record: RestorePointRecord) -> str:
    """Write the restore-point record: from here on the restore point exists. Returns its snapshot id."""
    with repository(location, key) as repo:
        return write_restore_point(repo, record, retention=location.retention())


@task(name="lock-restore-point", **DATA_TASK)
def lock_restore_point(location: LocationProfile, key: EncryptionKey, snapshot_ids: list[str]) -> LockReport | None:
    """Give every object the restore point needs (reused packs included) the location's retention."""
    retention = location.retention()
    if retention is None:
        return None
    with repository(location, key) as repo:
        report = apply_retention(repo, snapshot_ids, retention)
    if report.errors:
        raise RuntimeError(f"{len(report.errors)} object(s) could not be locked: " + "; ".join(report.errors[:5]))
    return report


@task(name="read-restore-point", **DATA_TASK)
def read_restore_point_record(location: LocationProfile, key: EncryptionKey, restore_point_id: str
                              ) -> tuple[str, RestorePointRecord]:
    """The snapshot id and the record of restore point ``restore_point_id``."""
    with repository(location, key) as repo:
        return find_restore_point(repo, restore_point_id)


@task(name="record-catalog", **DATA_TASK)
def record_catalog(location: LocationProfile, key: EncryptionKey, snapshot_id: str) -> int:
    """Write the restore point's catalog rows (derived from the repository, so rebuildable); return how many
    objects it holds."""
    with repository(location, key) as repo:
        return add_to_catalog(repo, snapshot_id).object_count


