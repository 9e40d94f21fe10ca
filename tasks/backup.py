"""Backup tasks: each calls one core function and returns a small reference, never object payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from kubekeep.backup.collect import CollectReport, PvcRef, collect
from kubekeep.backup.lock import LockReport, apply_retention
from kubekeep.backup.manifests import MANIFESTS_STREAM, manifest_stream
from kubekeep.backup.restore_point import (
    MANIFESTS_TAG,
    RestorePointRecord,
    VolumeRecord,
    catalog_rows,
    read_restore_point,
    write_restore_point,
)
from kubekeep.backup.selection import Application, Selection, discover_applications
from kubekeep.backup.volumes import VolumeError, direct_source, export_directory, parse_quantity
from kubekeep.catalog import Catalog

from .common import DATA_TASK


@dataclass
class ManifestResult:
    snapshot_id: str
    namespaces: list[str]
    object_count: int
    kind_counts: dict[str, int]
    pvcs: list[PvcRef]
    type_errors: list[str] = field(default_factory=list)


@task(name="discover-applications", retries=2, retry_delay_seconds=2, persist_result=False)
def discover_applications_task(cluster: ClusterConnection) -> list[Application]:
    with cluster.connect() as c:
        return discover_applications(c)


@task(name="snapshot-manifests", **DATA_TASK)
def snapshot_manifests(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                       selection: Selection, restore_point_id: str, app: str) -> ManifestResult:
    """Stream every selected object (and its cluster-scoped dependencies) into one snapshot."""
    report = CollectReport()
    with cluster.connect() as c, key.open_repository(location.storage(), create=True) as repo:
        result = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(collect(c, selection, report))},
                             tags=[MANIFESTS_TAG, f"app:{app}"],
                             metadata={"restore_point": restore_point_id, "app": app, "cluster": c.name},
                             retention=location.retention())
    get_run_logger().info("stored %d objects of %d kinds from %d namespace(s); %d type(s) failed",
                          report.objects, len(report.kind_counts), len(report.namespaces), len(report.type_errors))
    return ManifestResult(snapshot_id=result.snapshot_id, namespaces=report.namespaces,
                          object_count=report.objects, kind_counts=report.kind_counts, pvcs=report.pvcs,
                          type_errors=[e.describe() for e in report.type_errors])


@task(name="export-volume", task_run_name="export-volume-{pvc.namespace}-{pvc.name}", **DATA_TASK)
def export_volume(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection, pvc: PvcRef,
                  restore_point_id: str, nfs_mounts: dict[str, str] | None = None) -> VolumeRecord:
    """Export one PVC's files (direct path), incremental from its previous snapshot."""
    size = parse_quantity(pvc.size)
    if not pvc.volume_name:
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "skipped", None,
                            error="the PVC is not bound to a volume")
    with cluster.connect() as c:
        pv = c.get("v1", "PersistentVolume", pvc.volume_name)
    source = direct_source(pv, nfs_mounts)
    if source is None:
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "skipped", None,
                            error=f"volume {pvc.volume_name} is not reachable from this worker "
                                  "(no hostPath/local path, no NFS mount mapping)")
    try:
        with key.open_repository(location.storage()) as repo:
            return export_directory(repo, Path(source.path), namespace=pvc.namespace, pvc=pvc.name,
                                    storage_class=pvc.storage_class, size_bytes=size,
                                    restore_point_id=restore_point_id, retention=location.retention())
    except VolumeError as exc:
        return VolumeRecord(pvc.namespace, pvc.name, pvc.storage_class, size, "direct", None, error=str(exc))


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
        rows = list(objects)
        Catalog(repo.storage).add_restore_point(point, rows, volumes)
    return len(rows)


def new_restore_point_id(app: str, now: datetime | None = None) -> str:
    import secrets

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe_app = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in app)[:80].strip("-.") or "app"
    return f"{safe_app}-{stamp}-{secrets.token_hex(3)}"
