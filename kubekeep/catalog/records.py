"""Typed rows of the catalog tables and their conversion to/from Arrow."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Self

import pyarrow as pa

from .schema import (
    RESTORE_POINT_OBJECTS_SCHEMA,
    RESTORE_POINT_VOLUMES_SCHEMA,
    RESTORE_POINTS_SCHEMA,
    RESTORES_SCHEMA,
    RestorePointStatus,
    RestoreStatus,
)

# Ids become parts of storage keys, so they follow the key alphabet.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class CatalogRecordError(ValueError):
    """A record that cannot be stored as given (bad id, naive timestamp, unknown status)."""


def check_id(value: str, what: str = "id") -> str:
    if not _ID_RE.match(value):
        raise CatalogRecordError(
            f"{what} {value!r} is not valid: use 1-200 letters, digits and '._-', "
            "starting with a letter or digit"
        )
    return value


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise CatalogRecordError(f"{what} must be timezone-aware (got naive {value.isoformat()})")


def _non_negative(record: object, names: Iterable[str]) -> None:
    for name in names:
        if getattr(record, name) < 0:
            raise CatalogRecordError(f"{type(record).__name__}.{name} must be >= 0")


@dataclass(frozen=True)
class RestorePoint:
    id: str
    app: str
    cluster: str
    namespaces: tuple[str, ...]
    started_at: datetime
    finished_at: datetime
    status: str
    snapshot_id: str
    location: str
    policy: str | None = None
    status_reason: str | None = None
    object_count: int = 0
    volume_count: int = 0
    logical_bytes: int = 0
    stored_bytes: int = 0
    retain_until: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id(self.id, "restore point id")
        if self.status not in RestorePointStatus.__members__.values():
            raise CatalogRecordError(
                f"restore point {self.id}: status {self.status!r} is not one of "
                f"{sorted(s.value for s in RestorePointStatus)}"
            )
        for name in ("started_at", "finished_at", "retain_until"):
            _aware(getattr(self, name), f"restore point {self.id}: {name}")
        if self.finished_at < self.started_at:
            raise CatalogRecordError(f"restore point {self.id}: finished_at is before started_at")
        if not self.app or not self.cluster:
            raise CatalogRecordError(f"restore point {self.id}: app and cluster must not be empty")
        _non_negative(self, ("object_count", "volume_count", "logical_bytes", "stored_bytes"))
        # normalise containers so equal records compare equal
        object.__setattr__(self, "namespaces", tuple(self.namespaces))
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["namespaces"] = list(self.namespaces)
        row["tags"] = dict(self.tags)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = dict(row)
        values["namespaces"] = tuple(values.get("namespaces") or ())
        tags = values.get("tags")
        values["tags"] = dict(tags) if tags else {}
        kwargs: dict[str, Any] = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        return cls(**kwargs)


class _FlatRow:
    """A record whose catalog row is exactly its fields."""

    def to_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)


@dataclass(frozen=True)
class RestorePointObject(_FlatRow):
    restore_point_id: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    content_hash: str
    size: int
    uid: str | None = None

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        if not self.kind or not self.name or not self.version:
            raise CatalogRecordError(
                f"object row of {self.restore_point_id}: kind, version and name are required"
            )
        _non_negative(self, ("size",))



@dataclass(frozen=True)
class RestorePointVolume(_FlatRow):
    restore_point_id: str
    namespace: str
    pvc: str
    size_bytes: int
    method: str
    storage_class: str | None = None
    files: int = 0
    logical_bytes: int = 0
    stored_bytes: int = 0
    snapshot_id: str | None = None

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        if not self.method:
            raise CatalogRecordError(f"volume {self.namespace}/{self.pvc}: method is required")
        _non_negative(self, ("size_bytes", "files", "logical_bytes", "stored_bytes"))



@dataclass(frozen=True)
class RestoreRecord:
    """One restore (or dry run): counts, and what happened to every object, volume and phase.

    ``outcomes``, ``volumes`` and ``phases`` are rows of the nested struct types of
    :mod:`.schema` (plain dicts; ``None`` in files written before the columns existed).
    """

    id: str
    restore_point_id: str
    started_at: datetime
    finished_at: datetime
    status: str
    target_cluster: str
    target_namespaces: tuple[str, ...] = ()
    reason: str | None = None
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    #: why the restore stopped before the end (None: it ran every phase)
    aborted: str | None = None
    outcomes: tuple[Mapping[str, Any], ...] | None = None
    volumes: tuple[Mapping[str, Any], ...] | None = None
    phases: tuple[Mapping[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        check_id(self.id, "restore id")
        check_id(self.restore_point_id, "restore point id")
        if self.status not in RestoreStatus.__members__.values():
            raise CatalogRecordError(
                f"restore {self.id}: status {self.status!r} is not one of "
                f"{sorted(s.value for s in RestoreStatus)}"
            )
        _aware(self.started_at, f"restore {self.id}: started_at")
        _aware(self.finished_at, f"restore {self.id}: finished_at")
        _non_negative(self, ("created", "updated", "skipped", "failed"))
        object.__setattr__(self, "target_namespaces", tuple(self.target_namespaces))
        for name in ("outcomes", "volumes", "phases"):
            rows = getattr(self, name)
            if rows is not None:
                object.__setattr__(self, name, tuple(dict(r) for r in rows))

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["target_namespaces"] = list(self.target_namespaces)
        for name in ("outcomes", "volumes", "phases"):
            row[name] = None if row[name] is None else [dict(r) for r in row[name]]
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        values["target_namespaces"] = tuple(values["target_namespaces"] or ())
        return cls(**values)


def restore_points_table(points: Sequence[RestorePoint]) -> pa.Table:
    return pa.Table.from_pylist([p.to_row() for p in points], schema=RESTORE_POINTS_SCHEMA)


def objects_table(objects: Iterable[RestorePointObject], *, batch_rows: int = 20_000) -> pa.Table:
    """Object rows as a table, built in batches: only one batch of Python rows is alive at a time
    (a restore point can hold 100k objects; columnar arrays are far smaller than row dicts)."""
    batches: list[pa.RecordBatch] = []
    rows: list[dict[str, Any]] = []
    for o in objects:
        rows.append(o.to_row())
        if len(rows) >= batch_rows:
            batches.append(pa.RecordBatch.from_pylist(rows, schema=RESTORE_POINT_OBJECTS_SCHEMA))
            rows = []
    if rows or not batches:
        batches.append(pa.RecordBatch.from_pylist(rows, schema=RESTORE_POINT_OBJECTS_SCHEMA))
    return pa.Table.from_batches(batches, schema=RESTORE_POINT_OBJECTS_SCHEMA)


def volumes_table(volumes: Sequence[RestorePointVolume]) -> pa.Table:
    return pa.Table.from_pylist([v.to_row() for v in volumes], schema=RESTORE_POINT_VOLUMES_SCHEMA)


def restores_table(restores: Sequence[RestoreRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in restores], schema=RESTORES_SCHEMA)


def restore_points_from_table(table: pa.Table) -> list[RestorePoint]:
    return [RestorePoint.from_row(row) for row in table.to_pylist()]


def restores_from_table(table: pa.Table) -> list[RestoreRecord]:
    return [RestoreRecord.from_row(row) for row in table.to_pylist()]
