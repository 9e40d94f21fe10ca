"""Backup tasks: each calls one core function and returns a small reference, never object payloads."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from kubekeep.backup.collect import CollectReport, PvcRef, collect
from kubekeep.backup.csi import CsiError, MoverSpec, export_with_snapshot, volume_method
from kubekeep.backup.scope import Application, BackupScope, discover_applications
from kubekeep.backup.volumes import (
    VolumeError,
    export_directory,
    find_volume_snapshot,
    local_path,
    parse_quantity,
)
from kubekeep.catalog import Catalog
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    VolumeRecord,
    catalog_rows,
    manifest_stream,
    read_restore_point,
    write_restore_point,
)
from kubekeep.restorepoint.object_lock import LockReport, apply_retention

from .common import DATA_TASK


@dataclass
class ManifestResult:
    snapshot_id: str
    namespaces: list[str]
    object_count: int
    kind_counts: dict[str, int]
    pvcs: list[PvcRef]
    type_errors: list[str] = field(default_factory=list)
    #: CustomResourceDefinitions stored -> why each was included
    crds: dict[str, list[str]] = field(default_factory=dict)


@task(name="discover-applications", retries=2, retry_delay_seconds=2, persist_result=False)
def discover_applications_task(cluster: ClusterConnection) -> list[Application]:
    with cluster.connect() as c:
        return discover_applications(c)


@task(name="snapshot-manifests", **DATA_TASK)
def snapshot_manifests(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                       selection: BackupScope, restore_point_id: str, app: str, init: bool = False) -> ManifestResult:
    """Stream every selected object (and its cluster-scoped dependencies) into one snapshot.

    The location must hold a repository; ``init`` creates one (the first backup only)."""
    report = CollectReport()
    with cluster.connect() as c, key.open_repository(location.storage(), create=init,
                                                     object_lock=location.object_lock_mode is not None) as repo:
        result = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(collect(c, selection, report))},
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
                  mover: dict[str, Any] | None = None) -> VolumeRecord:
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
        with key.open_repository(location.storage()) as repo:
            return export_directory(repo, source, namespace=pvc.namespace, pvc=pvc.name,
                                    storage_class=pvc.storage_class, size_bytes=size,
                                    restore_point_id=restore_point_id, retention=location.retention())
    except VolumeError as exc:
        return failed("direct", str(exc))


def _export_csi(c: Cluster, location: LocationProfile, key: EncryptionKey, pvc: PvcRef, size: int,
                restore_point_id: str, mover: dict[str, Any] | None) -> VolumeRecord:
    if not mover or not mover.get("image") or not mover.get("repository"):
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "csi-snapshot", None,
                            error="the CSI snapshot path needs a mover: give the flow parameter mover = {image, "
                                  "repository (location URL as the cluster sees it), env_from_secrets "
                                  "(Secret with KUBEKEEP_PASSWORD and storage credentials)}")
    spec = MoverSpec(image=str(mover["image"]), env_from_secrets=tuple(mover.get("env_from_secrets") or ()),
                     service_account=mover.get("service_account"),
                     args=("backup", "--repo", str(mover["repository"]), "--source", "/data",
                           "--pvc", f"{pvc.namespace}/{pvc.name}", "--restore-point", restore_point_id,
                           "--size", pvc.size or "0", "--method", "csi-snapshot"))
    try:
        export_with_snapshot(c, pvc.namespace, pvc.name, spec, run_id=restore_point_id[-6:])
    except CsiError as exc:
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "csi-snapshot", None,
                            error=f"CSI export failed at step {exc.step}: {exc}")
    with key.open_repository(location.storage()) as repo:
        sid = find_volume_snapshot(repo, pvc.namespace, pvc.name, restore_point_id)
        if sid is None:
            return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "csi-snapshot", None,
                                error="the mover Job completed but wrote no snapshot for this PVC")
        stats = repo.load_snapshot(sid).get("stats", {})
    return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "csi-snapshot", sid,
                        files=int(stats.get("files", 0)), logical_bytes=int(stats.get("bytes", 0)),
                        stored_bytes=int(stats.get("new_stored_bytes", 0)))


@task(name="commit-restore-point", **DATA_TASK)
def commit_restore_point(location: LocationProfile, key: EncryptionKey, record: RestorePointRecord) -> str:
    """Write the restore-point record: from here on the restore point exists."""
    with key.open_repository(location.storage()) as repo:
        return write_restore_point(repo, record, retention=location.retention())


@task(name="lock-restore-point", **DATA_TASK)
def lock_restore_point(location: LocationProfile, key: EncryptionKey, snapshot_ids: list[str]) -> LockReport | None:
    """Give every object the restore point needs (reused packs included) the location's retention."""
    retention = location.retention()
    if retention is None:
        return None
    with key.open_repository(location.storage()) as repo:
        report = apply_retention(repo, snapshot_ids, retention)
    if report.errors:
        raise RuntimeError(f"{len(report.errors)} object(s) could not be locked: " + "; ".join(report.errors[:5]))
    return report


@task(name="record-catalog", **DATA_TASK)
def record_catalog(location: LocationProfile, key: EncryptionKey, snapshot_id: str) -> int:
    """Write the restore point's catalog rows (derived from the repository, so rebuildable)."""
    storage = location.storage()
    with key.open_repository(storage) as repo:
        record = read_restore_point(repo, snapshot_id)
        point, objects, volumes = catalog_rows(repo, record, snapshot_id)
        Catalog(repo.storage, codec=repo.catalog_codec()).add_restore_point(point, objects, volumes)
    return point.object_count


def new_restore_point_id(app: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe_app = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in app)[:80].strip("-.") or "app"
    return f"{safe_app}-{stamp}-{secrets.token_hex(3)}"
