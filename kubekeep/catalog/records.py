"""Typed rows of the catalog tables and their conversion to/from Arrow."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Self

import pyarrow as pa

from .schema import (
    DELETED_RESTORE_POINTS_SCHEMA,
    DR_COPIES_SCHEMA,
    RESTORE_POINT_OBJECTS_SCHEMA,
    RESTORE_POINT_VOLUMES_SCHEMA,
    RESTORE_POINTS_SCHEMA,
    RESTORES_SCHEMA,
    SIGNAL_ACKS_SCHEMA,
    SIGNALS_SCHEMA,
    VERIFICATIONS_SCHEMA,
    RestorePointStatus,
    RestoreStatus,
    VerificationResult,
)
from .sorting import rows_batch

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
class DowntimeStage:
    """One timed stage of a cutover (kubekeep.migrate.CutoverStage names them)."""

    name: str
    started_at: datetime
    finished_at: datetime
    seconds: float

    def to_row(self) -> dict[str, Any]:
        return {"name": self.name, "started_at": self.started_at, "finished_at": self.finished_at,
                "seconds": self.seconds}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DowntimeStage:
        return cls(str(row["name"]), _utc(row["started_at"]), _utc(row["finished_at"]), float(row["seconds"]))


@dataclass(frozen=True)
class Downtime:
    """The measured downtime of one cutover."""

    #: when the source stopped serving (quiesce started)
    started_at: datetime
    #: when the target was ready (None: it never was; the downtime has no end yet)
    ready_at: datetime | None
    #: seconds from ``started_at`` to ``ready_at`` on a monotonic clock (None with ``ready_at``)
    seconds: float | None
    stages: tuple[DowntimeStage, ...] = field(default_factory=tuple)

    def stage_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.stages:
            out[s.name] = out.get(s.name, 0.0) + s.seconds
        return out

    def ratio_to(self, baseline_seconds: float) -> float | None:
        """This downtime as a share of ``baseline_seconds`` (e.g. a cold backup + restore)."""
        if self.seconds is None or baseline_seconds <= 0:
            return None
        return self.seconds / baseline_seconds

    def to_row(self) -> dict[str, Any]:
        """The catalog's ``downtime`` struct (``restores`` table)."""
        return {"started_at": self.started_at, "ready_at": self.ready_at, "seconds": self.seconds,
                "stages": [s.to_row() for s in self.stages]}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Downtime:
        ready = row.get("ready_at")
        seconds = row.get("seconds")
        return cls(_utc(row["started_at"]), _utc(ready) if ready is not None else None,
                   float(seconds) if seconds is not None else None,
                   tuple(DowntimeStage.from_row(s) for s in row.get("stages") or ()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the restore report kept in the repository)."""
        return {"started_at": self.started_at.isoformat(),
                "ready_at": self.ready_at.isoformat() if self.ready_at else None, "seconds": self.seconds,
                "stages": [{**s.to_row(), "started_at": s.started_at.isoformat(),
                            "finished_at": s.finished_at.isoformat()} for s in self.stages]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Downtime:
        return cls.from_row({**data, "started_at": datetime.fromisoformat(str(data["started_at"])),
                             "ready_at": datetime.fromisoformat(str(data["ready_at"])) if data.get("ready_at")
                             else None,
                             "stages": [{**s, "started_at": datetime.fromisoformat(str(s["started_at"])),
                                         "finished_at": datetime.fromisoformat(str(s["finished_at"]))}
                                        for s in data.get("stages") or ()]})

    def summary(self) -> str:
        if self.seconds is None:
            return f"downtime since {self.started_at.isoformat(timespec='seconds')}: the target never became ready"
        parts = ", ".join(f"{name} {sec:.2f}s" for name, sec in self.stage_seconds().items())
        return f"downtime {self.seconds:.2f}s ({parts})"


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RestoreRecord:
    """One restore (or dry run): counts, and what happened to every object, volume and phase.

    ``outcomes``, ``volumes`` and ``phases`` are rows of the nested struct types of
    :mod:`.schema` (plain dicts; ``None`` in files written before the columns existed);
    ``downtime`` is set for a migration's cutover.
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
    outcomes: Sequence[Mapping[str, Any]] | None = None
    volumes: tuple[Mapping[str, Any], ...] | None = None
    phases: tuple[Mapping[str, Any], ...] | None = None
    #: a migration's cutover: quiesce of the source until the target was ready (None for other restores)
    downtime: Downtime | None = None

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
            if rows is not None and (name != "outcomes" or isinstance(rows, list | tuple)):
                object.__setattr__(self, name, tuple(dict(r) for r in rows))
            # other outcome sequences are kept as given: a report's spooled outcomes, read one by one when
            # the table is built (restores_table)

    def to_row(self, *, outcomes: bool = True) -> dict[str, Any]:
        """The table row (``outcomes=False``: without the outcomes, which restores_table adds as columns)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["target_namespaces"] = list(self.target_namespaces)
        for name in ("outcomes", "volumes", "phases"):
            row[name] = None if row[name] is None or (name == "outcomes" and not outcomes) else [
                dict(r) for r in row[name]]
        row["downtime"] = None if self.downtime is None else self.downtime.to_row()
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        values["target_namespaces"] = tuple(values["target_namespaces"] or ())
        if values.get("downtime") is not None:
            values["downtime"] = Downtime.from_row(values["downtime"])
        return cls(**values)


@dataclass(frozen=True)
class DeletedRestorePoint:
    """The tombstone of a restore point that was deleted (its record is gone from the repository)."""

    restore_point_id: str
    app: str
    deleted_at: datetime
    reason: str
    #: every snapshot of the point (record, manifests, volumes) at the time of the deletion
    snapshot_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        _aware(self.deleted_at, f"deletion of {self.restore_point_id}: deleted_at")
        if not self.reason:
            raise CatalogRecordError(f"deletion of {self.restore_point_id}: a reason is required")
        object.__setattr__(self, "snapshot_ids", tuple(self.snapshot_ids))

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["snapshot_ids"] = list(self.snapshot_ids)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        values["snapshot_ids"] = tuple(values["snapshot_ids"] or ())
        return cls(**values)


def deletions_table(deletions: Sequence[DeletedRestorePoint]) -> pa.Table:
    return pa.Table.from_pylist([d.to_row() for d in deletions], schema=DELETED_RESTORE_POINTS_SCHEMA)


def deletions_from_table(table: pa.Table) -> list[DeletedRestorePoint]:
    return [DeletedRestorePoint.from_row(row) for row in table.to_pylist()]


@dataclass(frozen=True)
class SignalRow:
    """One row of ``signals``: a restore point's verdict (``subject`` "") or one volume's signals
    (``subject`` "namespace/pvc"). Columns that do not apply to the row's subject are None.
    Built from kubekeep.signals.PointSignals (``signal_rows``)."""

    restore_point_id: str
    subject: str
    app: str
    finished_at: datetime
    score: float
    suspect: bool
    threshold: float
    reasons: tuple[str, ...] = ()
    previous_point_id: str | None = None
    baseline: tuple[str, ...] | None = None
    computed_at: datetime | None = None
    seconds: float | None = None
    objects: int | None = None
    previous_objects: int | None = None
    objects_deleted: int | None = None
    previous_by_kind: Mapping[str, int] | None = None
    deleted_by_kind: Mapping[str, int] | None = None
    deleted_examples: tuple[str, ...] | None = None
    snapshot_id: str | None = None
    previous_snapshot_id: str | None = None
    files: int | None = None
    previous_files: int | None = None
    directories: int | None = None
    previous_directories: int | None = None
    logical_bytes: int | None = None
    files_added: int | None = None
    files_changed: int | None = None
    files_deleted: int | None = None
    files_moved: int | None = None
    bytes_added: int | None = None
    bytes_changed: int | None = None
    changed_files_bytes: int | None = None
    bytes_deleted: int | None = None
    bytes_moved: int | None = None
    new_unique_bytes: int | None = None
    new_stored_bytes: int | None = None
    new_chunks: int | None = None
    new_chunk_bytes: int | None = None
    incompressible_chunks: int | None = None
    incompressible_bytes: int | None = None
    high_entropy_share: float | None = None
    entropy_rise_files: int | None = None
    extensions_changed: int | None = None
    new_extensions: tuple[str, ...] | None = None
    new_extension_files: int | None = None
    ransom_note_dirs: int | None = None
    ransom_note_example: str | None = None
    dedup_ratio: float | None = None
    dedup_ratio_change: float | None = None
    extensions: Mapping[str, int] | None = None
    #: point rows: the baseline candidates the next point of the app starts from (kubekeep.signals.carry)
    baseline_candidates: str | None = None

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        _aware(self.finished_at, f"signals of {self.restore_point_id}: finished_at")
        _aware(self.computed_at, f"signals of {self.restore_point_id}: computed_at")
        if not self.app:
            raise CatalogRecordError(f"signals of {self.restore_point_id}: app must not be empty")

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("reasons", "baseline", "deleted_examples", "new_extensions"):
            row[name] = None if row[name] is None else list(row[name])
        for name in ("previous_by_kind", "deleted_by_kind", "extensions"):
            row[name] = None if row[name] is None else dict(row[name])
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        for name in ("reasons", "baseline", "deleted_examples", "new_extensions"):
            if values[name] is not None:
                values[name] = tuple(values[name])
        values["reasons"] = values["reasons"] or ()
        for name in ("previous_by_kind", "deleted_by_kind", "extensions"):
            if values[name] is not None:
                values[name] = dict(values[name])
        return cls(**values)


@dataclass(frozen=True)
class SignalAck(_FlatRow):
    """A suspect restore point acknowledged as a false positive (it joins the baseline)."""

    restore_point_id: str
    app: str
    acknowledged_at: datetime
    acknowledged_by: str | None = None
    reason: str | None = None
    #: the acknowledgement's record in the repository (the catalog row is derived from it)
    snapshot_id: str | None = None

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        _aware(self.acknowledged_at, f"acknowledgement of {self.restore_point_id}: acknowledged_at")
        if not self.app:
            raise CatalogRecordError(f"acknowledgement of {self.restore_point_id}: app must not be empty")


def signals_table(rows: Sequence[SignalRow]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in rows], schema=SIGNALS_SCHEMA)


def signal_acks_table(acks: Sequence[SignalAck]) -> pa.Table:
    return pa.Table.from_pylist([a.to_row() for a in acks], schema=SIGNAL_ACKS_SCHEMA)


@dataclass(frozen=True)
class VerificationRecord:
    """One verification of a restore point: its verdict, per-check results and per-stage times.

    ``checks`` and ``stages`` are rows of :data:`~.schema.VERIFICATION_CHECK_TYPE` and
    :data:`~.schema.VERIFICATION_STAGE_TYPE` (plain dicts).
    """

    id: str
    restore_point_id: str
    app: str
    started_at: datetime
    finished_at: datetime
    result: str
    sandbox_cluster: str
    sandbox_namespaces: tuple[str, ...] = ()
    reason: str | None = None
    #: seconds from the start of the verification until its checks were done (the measured RTO)
    rto_seconds: float | None = None
    #: seconds between the previous succeeded point of the app and this one (None: the first point)
    rpo_seconds: float | None = None
    point_finished_at: datetime | None = None
    stages: tuple[Mapping[str, Any], ...] = ()
    checks: tuple[Mapping[str, Any], ...] = ()
    #: what teardown did ("complete", or what it left and why)
    teardown: str | None = None

    def __post_init__(self) -> None:
        check_id(self.id, "verification id")
        check_id(self.restore_point_id, "restore point id")
        if self.result not in VerificationResult.__members__.values():
            raise CatalogRecordError(
                f"verification {self.id}: result {self.result!r} is not one of "
                f"{sorted(r.value for r in VerificationResult)}"
            )
        for name in ("started_at", "finished_at", "point_finished_at"):
            _aware(getattr(self, name), f"verification {self.id}: {name}")
        if self.finished_at < self.started_at:
            raise CatalogRecordError(f"verification {self.id}: finished_at is before started_at")
        if not self.app or not self.sandbox_cluster:
            raise CatalogRecordError(f"verification {self.id}: app and sandbox_cluster must not be empty")
        for name in ("rto_seconds", "rpo_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise CatalogRecordError(f"verification {self.id}: {name} must be >= 0")
        object.__setattr__(self, "sandbox_namespaces", tuple(self.sandbox_namespaces))
        object.__setattr__(self, "stages", tuple(dict(r) for r in self.stages or ()))
        object.__setattr__(self, "checks", tuple(dict(r) for r in self.checks or ()))

    @property
    def passed(self) -> bool:
        return self.result == VerificationResult.PASSED.value

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["sandbox_namespaces"] = list(self.sandbox_namespaces)
        row["stages"] = [dict(r) for r in self.stages]
        row["checks"] = [dict(r) for r in self.checks]
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls) if f.name in row}
        for name in ("sandbox_namespaces", "stages", "checks"):
            if name in values:
                values[name] = tuple(values[name] or ())
        return cls(**values)


def restore_points_table(points: Sequence[RestorePoint]) -> pa.Table:
    return pa.Table.from_pylist([p.to_row() for p in points], schema=RESTORE_POINTS_SCHEMA)


def object_batches(objects: Iterable[RestorePointObject], *, batch_rows: int = 4096) -> Iterator[pa.RecordBatch]:
    """Object rows as record batches of ``batch_rows`` rows: only one batch of Python rows is alive at a time
    (a restore point can hold 100k objects; columnar arrays are far smaller than Python rows)."""
    values = attrgetter(*RESTORE_POINT_OBJECTS_SCHEMA.names)
    rows: list[tuple[Any, ...]] = []
    for o in objects:
        rows.append(values(o))
        if len(rows) >= batch_rows:
            yield rows_batch(rows, RESTORE_POINT_OBJECTS_SCHEMA)
            rows = []
    if rows:
        yield rows_batch(rows, RESTORE_POINT_OBJECTS_SCHEMA)


def objects_table(objects: Iterable[RestorePointObject], *, batch_rows: int = 20_000) -> pa.Table:
    """Object rows as one table, built batch by batch (:func:`object_batches`)."""
    return pa.Table.from_batches(list(object_batches(objects, batch_rows=batch_rows)),
                                 schema=RESTORE_POINT_OBJECTS_SCHEMA)


def volumes_table(volumes: Sequence[RestorePointVolume]) -> pa.Table:
    return pa.Table.from_pylist([v.to_row() for v in volumes], schema=RESTORE_POINT_VOLUMES_SCHEMA)


def restores_table(restores: Sequence[RestoreRecord], *, batch_rows: int = 20_000) -> pa.Table:
    """Restore rows as a table; each restore's outcomes (100k for a big restore) become columns a batch of
    rows at a time, never all as Python dicts at once."""
    rows = [r.to_row(outcomes=False) for r in restores]
    table = pa.Table.from_pylist(rows, schema=RESTORES_SCHEMA)
    outcome_type = RESTORES_SCHEMA.field("outcomes").type
    chunks: list[pa.Array] = []
    offsets = [0]
    for r in restores:
        batch: list[dict[str, Any]] = []
        for o in r.outcomes or ():
            batch.append(dict(o))
            if len(batch) >= batch_rows:
                chunks.append(pa.array(batch, type=outcome_type.value_type))
                batch = []
        if batch:
            chunks.append(pa.array(batch, type=outcome_type.value_type))
        offsets.append(offsets[-1] + len(r.outcomes or ()))
    values = pa.concat_arrays(chunks) if chunks else pa.array([], type=outcome_type.value_type)
    if len(values) != offsets[-1]:
        raise CatalogRecordError(f"restore outcomes changed while the table was built ({len(values)} != {offsets[-1]})")
    mask = pa.array([r.outcomes is None for r in restores], type=pa.bool_())
    column = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values, type=outcome_type, mask=mask)
    return table.set_column(table.schema.get_field_index("outcomes"), RESTORES_SCHEMA.field("outcomes"), column)


def verifications_table(verifications: Sequence[VerificationRecord]) -> pa.Table:
    return pa.Table.from_pylist([v.to_row() for v in verifications], schema=VERIFICATIONS_SCHEMA)


def verifications_from_table(table: pa.Table) -> list[VerificationRecord]:
    return [VerificationRecord.from_row(row) for row in table.to_pylist()]


@dataclass(frozen=True)
class DrCopyRecord(_FlatRow):
    """A restore point that a DR copy put at a second site, recorded in the source's catalog so the
    source's restore-point index can say where its copies are (``destination`` is the location as
    its block describes it, never a credential)."""

    restore_point_id: str
    app: str
    destination: str
    mode: str
    copied_at: datetime
    #: the destination's Object Lock on the copy (None: not locked)
    retain_until: datetime | None = None

    def __post_init__(self) -> None:
        check_id(self.restore_point_id, "restore point id")
        _aware(self.copied_at, f"DR copy of {self.restore_point_id}: copied_at")
        _aware(self.retain_until, f"DR copy of {self.restore_point_id}: retain_until")
        if not self.app or not self.destination or not self.mode:
            raise CatalogRecordError(f"DR copy of {self.restore_point_id}: app, destination and mode must be given")


def dr_copies_table(copies: Sequence[DrCopyRecord]) -> pa.Table:
    return pa.Table.from_pylist([c.to_row() for c in copies], schema=DR_COPIES_SCHEMA)


def restore_points_from_table(table: pa.Table) -> list[RestorePoint]:
    return [RestorePoint.from_row(row) for row in table.to_pylist()]


def restores_from_table(table: pa.Table) -> list[RestoreRecord]:
    return [RestoreRecord.from_row(row) for row in table.to_pylist()]
