"""Restore points: the record that ties a backup run's snapshots together, and its catalog rows.

A backup run writes, in this order: one snapshot per volume, one snapshot of
the manifests, and last a small restore-point snapshot whose stream
``restore-point.json`` names all of them. A restore point exists once that
last snapshot is written; catalog rows come after it and can be rebuilt from
these records (see :func:`catalog_rows`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import blake3

from kubekeep.catalog import (
    RebuildResult,
    RestorePoint,
    RestorePointObject,
    RestorePointSummary,
    RestorePointVolume,
    rebuild_catalog,
)
from kubekeep.repo.repository import Repository, Retention

from .manifests import read_manifests

RESTORE_POINT_STREAM = "restore-point.json"
RESTORE_POINT_TAG = "kubekeep:restore-point"
MANIFESTS_TAG = "kubekeep:manifests"
VOLUME_TAG = "kubekeep:volume"
FORMAT = 1


@dataclass
class VolumeRecord:
    namespace: str
    pvc: str
    storage_class: str | None
    size_bytes: int
    method: str
    snapshot_id: str | None
    files: int = 0
    logical_bytes: int = 0
    stored_bytes: int = 0
    error: str | None = None


@dataclass
class RestorePointRecord:
    id: str
    app: str
    cluster: str
    namespaces: list[str]
    started_at: str
    finished_at: str
    status: str  # a RestorePointStatus value
    location: str
    manifest_snapshot: str
    policy: str | None = None
    status_reason: str | None = None
    object_count: int = 0
    kind_counts: dict[str, int] = field(default_factory=dict)
    volumes: list[VolumeRecord] = field(default_factory=list)
    type_errors: list[str] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    retain_until: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: CustomResourceDefinitions in the restore point -> why each was included
    crds: dict[str, list[str]] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RestorePointRecord:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"restore point record format {doc.get('format')!r} is not supported (want {FORMAT})")
        doc["volumes"] = [VolumeRecord(**v) for v in doc.get("volumes", [])]
        # fields added later are optional (defaults); fields a newer writer added are ignored
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def write_restore_point(repo: Repository, record: RestorePointRecord, *,
                        retention: Retention | None = None) -> str:
    """Write the restore-point snapshot (the commit point of a backup run); return its snapshot id."""
    result = repo.backup(streams={RESTORE_POINT_STREAM: [record.to_json()]},
                         tags=[RESTORE_POINT_TAG, f"app:{record.app}"],
                         metadata={"restore_point": record.id, "app": record.app, "status": record.status},
                         retention=retention)
    return result.snapshot_id


def read_restore_point(repo: Repository, snapshot_id: str) -> RestorePointRecord:
    return RestorePointRecord.from_json(b"".join(repo.read_stream(snapshot_id, RESTORE_POINT_STREAM)))


def find_restore_point(repo: Repository, restore_point_id: str) -> tuple[str, RestorePointRecord]:
    for info in repo.snapshots(tags=[RESTORE_POINT_TAG]):
        if info.metadata.get("restore_point") == restore_point_id:
            return info.id, read_restore_point(repo, info.id)
    raise LookupError(f"restore point {restore_point_id} not found in {repo.storage.url}")


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
