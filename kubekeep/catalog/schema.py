"""The catalog's tables: explicit Arrow schemas, their keys and sort orders.

docs/catalog-schema.md is the spec; this module is its executable form. A
schema change that readers of an older version cannot ignore bumps
``SCHEMA_VERSION``; adding a nullable column does not (readers fill missing
columns with nulls).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

SCHEMA_VERSION = 1
#: file-level key/value metadata written into every catalog Parquet file
META_SCHEMA_VERSION = b"kubekeep.catalog.schema_version"
META_TABLE = b"kubekeep.catalog.table"

_TS = pa.timestamp("us", tz="UTC")


class TableName(StrEnum):
    RESTORE_POINTS = "restore_points"
    RESTORE_POINT_OBJECTS = "restore_point_objects"
    RESTORE_POINT_VOLUMES = "restore_point_volumes"
    RESTORES = "restores"
    DELETED_RESTORE_POINTS = "deleted_restore_points"
    SIGNALS = "signals"
    SIGNAL_ACKS = "signal_acks"
    VERIFICATIONS = "verifications"
    DR_COPIES = "dr_copies"


class RestorePointStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class RestoreStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class VerificationResult(StrEnum):
    """The verdict of a verification: the restore point restored and passed every check, or not.
    ``error``: the verification could not run to a verdict on the point (the sandbox cluster failed);
    it says nothing about the point and is ignored by :func:`~kubekeep.catalog.verified_points`."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class VolumeMethod(StrEnum):
    CSI_SNAPSHOT = "csi-snapshot"
    DIRECT = "direct"
    SKIPPED = "skipped"


RESTORE_POINTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("namespaces", pa.list_(pa.string()), nullable=False),
        pa.field("policy", pa.string()),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_reason", pa.string()),
        pa.field("object_count", pa.int64(), nullable=False),
        pa.field("volume_count", pa.int64(), nullable=False),
        pa.field("logical_bytes", pa.int64(), nullable=False),
        pa.field("stored_bytes", pa.int64(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("retain_until", _TS),
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("tags", pa.map_(pa.string(), pa.string())),
    ]
)

RESTORE_POINT_OBJECTS_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("uid", pa.string()),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
    ]
)

RESTORE_POINT_VOLUMES_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("pvc", pa.string(), nullable=False),
        pa.field("storage_class", pa.string()),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("files", pa.int64(), nullable=False),
        pa.field("logical_bytes", pa.int64(), nullable=False),
        pa.field("stored_bytes", pa.int64(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("snapshot_id", pa.string()),
    ]
)

#: one object of a restore: what happened to it and why (kubekeep.restore.report.ObjectOutcome)
RESTORE_OUTCOME_TYPE = pa.struct(
    [
        pa.field("group", pa.string()),
        pa.field("version", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("namespace", pa.string()),
        pa.field("name", pa.string()),
        pa.field("action", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("phase", pa.string()),
        pa.field("tier", pa.int64()),
        pa.field("ready", pa.bool_()),
        pa.field("changes", pa.list_(pa.string())),
    ]
)

#: the data of one restored claim (kubekeep.restore.report.VolumeOutcome)
RESTORE_VOLUME_TYPE = pa.struct(
    [
        pa.field("namespace", pa.string()),
        pa.field("name", pa.string()),
        pa.field("status", pa.string()),
        pa.field("source", pa.string()),
        pa.field("snapshot_id", pa.string()),
        pa.field("method", pa.string()),
        pa.field("files", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("error", pa.string()),
    ]
)

#: one phase of a restore and its timings (kubekeep.restore.report.PhaseReport)
RESTORE_PHASE_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),
        pa.field("wait", pa.string()),
        pa.field("tier", pa.int64()),
        pa.field("objects", pa.int64()),
        pa.field("started_at", _TS),
        pa.field("applied_at", _TS),
        pa.field("ready_at", _TS),
        pa.field("error", pa.string()),
    ]
)

#: a migration's cutover downtime (kubekeep.catalog.records.Downtime)
RESTORE_DOWNTIME_TYPE = pa.struct(
    [
        pa.field("started_at", _TS),
        pa.field("ready_at", _TS),
        pa.field("seconds", pa.float64()),
        pa.field("stages", pa.list_(pa.struct([
            pa.field("name", pa.string()),
            pa.field("started_at", _TS),
            pa.field("finished_at", _TS),
            pa.field("seconds", pa.float64()),
        ]))),
    ]
)

RESTORES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("dry_run", pa.bool_(), nullable=False),
        pa.field("created", pa.int64(), nullable=False),
        pa.field("updated", pa.int64(), nullable=False),
        pa.field("skipped", pa.int64(), nullable=False),
        pa.field("failed", pa.int64(), nullable=False),
        pa.field("target_cluster", pa.string(), nullable=False),
        pa.field("target_namespaces", pa.list_(pa.string()), nullable=False),
        # added in schema version 1 as nullable columns (older files read them as null)
        pa.field("aborted", pa.string()),
        pa.field("outcomes", pa.list_(RESTORE_OUTCOME_TYPE)),
        pa.field("volumes", pa.list_(RESTORE_VOLUME_TYPE)),
        pa.field("phases", pa.list_(RESTORE_PHASE_TYPE)),
        # added as a nullable column too: null for restores that are not a migration's cutover
        pa.field("downtime", RESTORE_DOWNTIME_TYPE),
    ]
)


#: one row per deleted restore point (retention expiry, or a user's forget): the tombstone that hides
#: the point's rows in the three restore-point tables, written right after its record left the repository
DELETED_RESTORE_POINTS_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("deleted_at", _TS, nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        # every snapshot of the point (record, manifests, volumes): a later run finishes what a crash left
        pa.field("snapshot_ids", pa.list_(pa.string()), nullable=False),
    ]
)


_COUNT = pa.int64()
_KIND_COUNTS = pa.map_(pa.string(), pa.int64())

#: one row per restore point (``subject`` "") and one per volume (``subject`` "namespace/pvc"); the point row
#: carries the verdict and the manifest-level signals, volume rows the data signals (docs/catalog-schema.md)
SIGNALS_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("suspect", pa.bool_(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("reasons", pa.list_(pa.string())),
        pa.field("previous_point_id", pa.string()),
        pa.field("baseline", pa.list_(pa.string())),
        pa.field("computed_at", _TS),
        pa.field("seconds", pa.float64()),
        # point rows: objects deleted since the app's previous point
        pa.field("objects", _COUNT),
        pa.field("previous_objects", _COUNT),
        pa.field("objects_deleted", _COUNT),
        pa.field("previous_by_kind", _KIND_COUNTS),
        pa.field("deleted_by_kind", _KIND_COUNTS),
        pa.field("deleted_examples", pa.list_(pa.string())),
        # volume rows: the PVC's data against its previous restore point
        pa.field("snapshot_id", pa.string()),
        pa.field("previous_snapshot_id", pa.string()),
        pa.field("files", _COUNT),
        pa.field("previous_files", _COUNT),
        pa.field("directories", _COUNT),
        pa.field("previous_directories", _COUNT),
        pa.field("logical_bytes", _COUNT),
        pa.field("files_added", _COUNT),
        pa.field("files_changed", _COUNT),
        pa.field("files_deleted", _COUNT),
        pa.field("files_moved", _COUNT),
        pa.field("bytes_added", _COUNT),
        pa.field("bytes_changed", _COUNT),
        pa.field("changed_files_bytes", _COUNT),
        pa.field("bytes_deleted", _COUNT),
        pa.field("bytes_moved", _COUNT),
        pa.field("new_unique_bytes", _COUNT),
        pa.field("new_stored_bytes", _COUNT),
        pa.field("new_chunks", _COUNT),
        pa.field("new_chunk_bytes", _COUNT),
        pa.field("incompressible_chunks", _COUNT),
        pa.field("incompressible_bytes", _COUNT),
        pa.field("high_entropy_share", pa.float64()),
        pa.field("entropy_rise_files", _COUNT),
        pa.field("extensions_changed", _COUNT),
        pa.field("new_extensions", pa.list_(pa.string())),
        pa.field("new_extension_files", _COUNT),
        pa.field("ransom_note_dirs", _COUNT),
        pa.field("ransom_note_example", pa.string()),
        pa.field("dedup_ratio", pa.float64()),
        pa.field("dedup_ratio_change", pa.float64()),
        pa.field("extensions", _KIND_COUNTS),
        # point rows: the baseline candidates the next point starts from (JSON; kubekeep.signals.carry)
        pa.field("baseline_candidates", pa.string()),
    ]
)

#: one row per acknowledged restore point (a false positive: it joins the baseline, is no longer suspect)
SIGNAL_ACKS_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("acknowledged_at", _TS, nullable=False),
        pa.field("acknowledged_by", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("snapshot_id", pa.string()),
    ]
)


#: one check of a verification (kubekeep.verify.checks.CheckResult)
VERIFICATION_CHECK_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),
        pa.field("type", pa.string()),
        pa.field("passed", pa.bool_()),
        pa.field("reason", pa.string()),
        pa.field("started_at", _TS),
        pa.field("duration_seconds", pa.float64()),
        pa.field("attempts", pa.int64()),
        pa.field("output_tail", pa.string()),
    ]
)

#: one measured stage of a verification (plan, objects-applied, volumes-hydrated, ready, checks, teardown)
VERIFICATION_STAGE_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("seconds", pa.float64()),
    ]
)

VERIFICATIONS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        pa.field("result", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("rto_seconds", pa.float64()),
        pa.field("rpo_seconds", pa.float64()),
        pa.field("point_finished_at", _TS),
        pa.field("stages", pa.list_(VERIFICATION_STAGE_TYPE)),
        pa.field("checks", pa.list_(VERIFICATION_CHECK_TYPE)),
        pa.field("sandbox_cluster", pa.string(), nullable=False),
        pa.field("sandbox_namespaces", pa.list_(pa.string()), nullable=False),
        pa.field("teardown", pa.string()),
    ]
)


#: one restore point copied to a second site, recorded at the source (docs/dr-copy.md)
DR_COPIES_SCHEMA = pa.schema(
    [
        pa.field("restore_point_id", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("destination", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("copied_at", _TS, nullable=False),
        pa.field("retain_until", _TS),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    name: TableName
    schema: pa.Schema
    #: columns that identify a row; duplicates (the same row in a small file and
    #: in a compacted file) are dropped on read by these
    key: tuple[str, ...]
    #: sort order of compacted files, chosen so row-group statistics prune the
    #: common filters
    sort_by: tuple[str, ...]
    #: the column holding the restore point id of each row (the write unit)
    unit_column: str
    #: rows of deleted restore points (``deleted_restore_points``) are hidden on read and dropped by
    #: compaction
    masked_by_deletions: bool = False


TABLES: dict[TableName, TableSpec] = {
    TableName.RESTORE_POINTS: TableSpec(
        TableName.RESTORE_POINTS, RESTORE_POINTS_SCHEMA, ("id",), ("app", "finished_at", "id"), "id", True
    ),
    TableName.RESTORE_POINT_OBJECTS: TableSpec(
        TableName.RESTORE_POINT_OBJECTS,
        RESTORE_POINT_OBJECTS_SCHEMA,
        ("restore_point_id", "group", "kind", "namespace", "name"),
        ("kind", "namespace", "name", "group", "restore_point_id"),
        "restore_point_id",
        True,
    ),
    TableName.RESTORE_POINT_VOLUMES: TableSpec(
        TableName.RESTORE_POINT_VOLUMES,
        RESTORE_POINT_VOLUMES_SCHEMA,
        ("restore_point_id", "namespace", "pvc"),
        ("restore_point_id", "namespace", "pvc"),
        "restore_point_id",
        True,
    ),
    TableName.RESTORES: TableSpec(
        TableName.RESTORES, RESTORES_SCHEMA, ("id",), ("restore_point_id", "finished_at", "id"), "id"
    ),
    TableName.DELETED_RESTORE_POINTS: TableSpec(
        TableName.DELETED_RESTORE_POINTS,
        DELETED_RESTORE_POINTS_SCHEMA,
        ("restore_point_id",),
        ("app", "restore_point_id"),
        "restore_point_id",
    ),
    TableName.SIGNALS: TableSpec(
        TableName.SIGNALS,
        SIGNALS_SCHEMA,
        ("restore_point_id", "subject"),
        ("app", "finished_at", "restore_point_id", "subject"),
        "restore_point_id",
    ),
    TableName.SIGNAL_ACKS: TableSpec(
        TableName.SIGNAL_ACKS,
        SIGNAL_ACKS_SCHEMA,
        ("restore_point_id",),
        ("app", "acknowledged_at", "restore_point_id"),
        "restore_point_id",
    ),
    TableName.VERIFICATIONS: TableSpec(
        TableName.VERIFICATIONS, VERIFICATIONS_SCHEMA, ("id",), ("app", "finished_at", "id"), "id"
    ),
    TableName.DR_COPIES: TableSpec(
        TableName.DR_COPIES,
        DR_COPIES_SCHEMA,
        ("restore_point_id", "destination"),
        ("app", "restore_point_id", "destination"),
        "restore_point_id",
    ),
}


def schema_with_metadata(spec: TableSpec) -> pa.Schema:
    return spec.schema.with_metadata(
        {META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(), META_TABLE: spec.name.value.encode()}
    )
