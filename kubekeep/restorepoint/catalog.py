"""The catalog rows of a restore point, derived from the repository alone (so the catalog is rebuildable)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import blake3

from kubekeep.catalog import (
    Catalog,
    RebuildResult,
    RestorePoint,
    RestorePointObject,
    RestorePointSummary,
    RestorePointVolume,
    rebuild_catalog,
)
from kubekeep.repo.repository import Repository

from .manifests import read_manifests
from .record import RESTORE_POINT_TAG, RestorePointRecord, read_restore_point


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def catalog_rows(repo: Repository, record: RestorePointRecord, snapshot_id: str
                 ) -> tuple[RestorePoint, Iterator[RestorePointObject], list[RestorePointVolume]]:
    """The catalog rows of a restore point, derived from the repository alone (so rebuildable)."""
    logical = sum(v.logical_bytes for v in record.volumes)
    stored = sum(v.stored_bytes for v in record.volumes)
    started = _ts(record.started_at)
    finished = _ts(record.finished_at)
    assert started is not None and finished is not None
    point = RestorePoint(
        id=record.id, app=record.app, cluster=record.cluster, namespaces=tuple(record.namespaces),
        started_at=started, finished_at=finished, status=record.status, snapshot_id=snapshot_id,
        location=record.location, policy=record.policy, status_reason=record.status_reason,
        object_count=record.object_count, volume_count=len(record.volumes), logical_bytes=logical,
        stored_bytes=stored, retain_until=_ts(record.retain_until), tags=dict(record.tags))

    def objects() -> Iterator[RestorePointObject]:
        for obj, line in read_manifests(repo, record.manifest_snapshot):
            api_version = obj.get("apiVersion", "")
            group, _, version = api_version.rpartition("/")
            md = obj.get("metadata") or {}
            yield RestorePointObject(
                restore_point_id=record.id, group=group, version=version, kind=obj.get("kind", ""),
                namespace=md.get("namespace") or "", name=md.get("name", ""), uid=md.get("uid") or "",
                content_hash=blake3.blake3(line).hexdigest(), size=len(line))

    volumes = [RestorePointVolume(
        restore_point_id=record.id, namespace=v.namespace, pvc=v.pvc, storage_class=v.storage_class,
        size_bytes=v.size_bytes, files=v.files, logical_bytes=v.logical_bytes, stored_bytes=v.stored_bytes,
        method=v.method, snapshot_id=v.snapshot_id or "") for v in record.volumes if v.snapshot_id]
    return point, objects(), volumes


def restore_point_summaries(repo: Repository) -> Iterator[RestorePointSummary]:
    """The catalog rows of every restore point in the repository (what rebuild_catalog takes)."""
    for info in repo.snapshots(tags=[RESTORE_POINT_TAG]):
        record = read_restore_point(repo, info.id)
        point, objects, volumes = catalog_rows(repo, record, info.id)
        yield RestorePointSummary(point, tuple(objects), tuple(volumes))


def rebuild_repository_catalog(repo: Repository, *, cache_dir: str | None = None) -> RebuildResult:
    """Write the catalog rows of every restore point the location's catalog lacks (sealed with the key)."""
    return rebuild_catalog(repo.storage, restore_point_summaries(repo), cache_dir=cache_dir,
                           codec=repo.catalog_codec())


def add_to_catalog(repo: Repository, snapshot_id: str) -> RestorePoint:
    """Write the catalog rows of the restore point committed as ``snapshot_id``; return its row."""
    record = read_restore_point(repo, snapshot_id)
    point, objects, volumes = catalog_rows(repo, record, snapshot_id)
    Catalog(repo.storage, codec=repo.catalog_codec()).add_restore_point(point, objects, volumes)
    return point
