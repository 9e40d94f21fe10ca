"""Questions asked of the catalog, answered with Arrow filters (no per-row Python).

Each function builds a ``pyarrow.compute`` expression that the dataset scan
pushes down to Parquet row-group statistics, then deduplicates and sorts the
(small) result. Functions named ``*_table`` return Arrow tables for callers
that want columns; the others return typed records.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Required, TypedDict, Unpack

import pyarrow as pa
import pyarrow.compute as pc

from .records import (
    CatalogRecordError,
    DrCopyRecord,
    RestorePoint,
    RestorePointObject,
    RestoreRecord,
    SignalAck,
    SignalRow,
    VerificationRecord,
    restore_points_from_table,
    restores_from_table,
    verifications_from_table,
)
from .schema import TABLES, RestorePointStatus, TableName, VerificationResult
from .store import Catalog

#: what "a usable restore point" means unless the caller says otherwise
DEFAULT_STATUSES: tuple[str, ...] = (RestorePointStatus.SUCCEEDED.value,)


def _aware(value: datetime, what: str) -> pa.Scalar:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogRecordError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return pa.scalar(value, type=pa.timestamp("us", tz="UTC"))


def _and(parts: list[pc.Expression]) -> pc.Expression | None:
    if not parts:
        return None
    expr = parts[0]
    for part in parts[1:]:
        expr = expr & part
    return expr


def _in(column: str, values: str | Collection[str]) -> pc.Expression:
    if isinstance(values, str):
        return pc.field(column) == values
    return pc.field(column).isin(pa.array(sorted(values), pa.string()))


def restore_points_filter(
    *,
    app: str | None = None,
    cluster: str | None = None,
    statuses: Collection[str] | None = DEFAULT_STATUSES,
    policy: str | None = None,
    finished_after: datetime | None = None,
    finished_before: datetime | None = None,
    ids: Collection[str] | None = None,
) -> pc.Expression | None:
    """The scan expression behind :func:`list_restore_points` (exposed for reuse)."""
    parts: list[pc.Expression] = []
    if app is not None:
        parts.append(pc.field("app") == app)
    if cluster is not None:
        parts.append(pc.field("cluster") == cluster)
    if statuses is not None:
        parts.append(_in("status", statuses))
    if policy is not None:
        parts.append(pc.field("policy") == policy)
    if finished_after is not None:
        parts.append(pc.field("finished_at") >= _aware(finished_after, "finished_after"))
    if finished_before is not None:
        parts.append(pc.field("finished_at") < _aware(finished_before, "finished_before"))
    if ids is not None:
        parts.append(_in("id", ids))
    return _and(parts)


def _post_filter(table: pa.Table, namespace: str | None, tags: Mapping[str, str] | None) -> pa.Table:
    """Filters on nested columns (list/map), which dataset expressions cannot push down."""
    if namespace is not None and table.num_rows:
        namespaces = table["namespaces"]
        flat = pc.list_flatten(namespaces)
        parents = pc.list_parent_indices(namespaces)
        hit_rows = pc.unique(pc.filter(parents, pc.equal(flat, namespace)))
        mask = pc.is_in(pa.array(range(table.num_rows), pa.int64()), value_set=hit_rows.cast(pa.int64()))
        table = table.filter(mask)
    for key, value in (tags or {}).items():
        if not table.num_rows:
            break
        looked_up = pc.map_lookup(table["tags"], pa.scalar(key), "first")
        table = table.filter(pc.fill_null(pc.equal(looked_up, value), False))
    return table


def list_restore_points_table(
    catalog: Catalog,
    *,
    app: str | None = None,
    cluster: str | None = None,
    namespace: str | None = None,
    statuses: Collection[str] | None = DEFAULT_STATUSES,
    policy: str | None = None,
    finished_after: datetime | None = None,
    finished_before: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    newest_first: bool = True,
    limit: int | None = None,
    columns: Sequence[str] | None = None,
    units: Collection[str] | None = None,
) -> pa.Table:
    """Restore points matching every given filter, sorted by ``finished_at``.

    ``units``: only the one-point files of these restore points are read (compacted parts always are).

    ``statuses=None`` means any status; ``namespace`` matches points that
    include that namespace; ``tags`` must all be present with equal values.
    ``columns`` projects the result: a scan that cannot be pruned by row-group
    statistics (a time window over every app) is ~4x faster with a few columns
    than with all of them.
    """
    expr = restore_points_filter(
        app=app, cluster=cluster, statuses=statuses, policy=policy,
        finished_after=finished_after, finished_before=finished_before,
    )
    wanted: list[str] | None = None
    if columns is not None:
        wanted = list(dict.fromkeys([*columns, "id", "finished_at"]))
        wanted += [c for c, needed in (("namespaces", namespace), ("tags", tags)) if needed and c not in wanted]
    table = catalog.read(TableName.RESTORE_POINTS, filter=expr, columns=wanted, units=units)
    table = _post_filter(table, namespace, tags)
    order = "descending" if newest_first else "ascending"
    table = table.sort_by([("finished_at", order), ("id", order)])
    if limit is not None:
        table = table.slice(0, limit)
    if columns is not None:
        table = table.select(list(columns))
    return table


class RestorePointFilters(TypedDict, total=False):
    """The keyword filters of :func:`list_restore_points_table` (see there)."""

    app: str | None
    cluster: str | None
    namespace: str | None
    statuses: Collection[str] | None
    policy: str | None
    finished_after: datetime | None
    finished_before: datetime | None
    tags: Mapping[str, str] | None
    newest_first: bool
    limit: int | None


def list_restore_points(catalog: Catalog, **filters: Unpack[RestorePointFilters]) -> list[RestorePoint]:
    """:func:`list_restore_points_table` as records."""
    return restore_points_from_table(list_restore_points_table(catalog, **filters))


def latest_restore_point(
    catalog: Catalog,
    app: str,
    *,
    cluster: str | None = None,
    statuses: Collection[str] | None = DEFAULT_STATUSES,
    before: datetime | None = None,
) -> RestorePoint | None:
    """The newest restore point of ``app`` (succeeded only, unless ``statuses`` says otherwise)."""
    table = list_restore_points_table(
        catalog, app=app, cluster=cluster, statuses=statuses, finished_before=before, limit=1
    )
    points = restore_points_from_table(table)
    return points[0] if points else None


def restore_points_before(
    catalog: Catalog,
    when: datetime,
    *,
    app: str | None = None,
    cluster: str | None = None,
    statuses: Collection[str] | None = DEFAULT_STATUSES,
    limit: int | None = None,
) -> list[RestorePoint]:
    """Restore points that finished strictly before ``when``, newest first."""
    return restore_points_from_table(
        list_restore_points_table(
            catalog, app=app, cluster=cluster, statuses=statuses, finished_before=when, limit=limit
        )
    )


@dataclass(frozen=True, kw_only=True)
class ObjectOccurrence(RestorePointObject):
    """One restore point holding the object asked about: the object's row (that copy's identity) and the
    restore point's app, cluster, time and status."""

    app: str
    cluster: str
    finished_at: datetime
    status: str


def _empty(table: TableName) -> pa.Table:
    return TABLES[table].schema.empty_table()


def restore_points_containing_table(
    catalog: Catalog,
    *,
    kind: str,
    name: str,
    namespace: str = "",
    group: str | None = None,
    app: str | None = None,
    statuses: Collection[str] | None = None,
) -> pa.Table:
    """Object rows for (group, kind, namespace, name) joined with their restore points, newest first.

    ``group=None`` matches the kind in any API group; ``namespace=""`` is a
    cluster-scoped object. ``statuses`` filters the restore points (default: any).
    """
    parts = [pc.field("kind") == kind, pc.field("name") == name, pc.field("namespace") == namespace]
    if group is not None:
        parts.append(pc.field("group") == group)
    columns = ["id", "app", "cluster", "finished_at", "status"]
    if app is not None or statuses is not None:
        # the restore points table is small: choose the points first, then read only their objects files
        # (one small file per point; compacted parts are sorted by kind/namespace/name and pruned by stats)
        points = catalog.read(TableName.RESTORE_POINTS, filter=restore_points_filter(app=app, statuses=statuses),
                              columns=columns)
        ids: list[str] = points["id"].to_pylist()
        objects = catalog.read(TableName.RESTORE_POINT_OBJECTS, filter=_and([*parts, _in("restore_point_id", ids)]),
                               units=ids) if ids else _empty(TableName.RESTORE_POINT_OBJECTS)
    else:
        objects = catalog.read(TableName.RESTORE_POINT_OBJECTS, filter=_and(parts))
        ids = pc.unique(objects["restore_point_id"]).to_pylist() if objects.num_rows else []
        points = catalog.read(TableName.RESTORE_POINTS, filter=restore_points_filter(statuses=None, ids=ids),
                              columns=columns)
    points = points.rename_columns(["restore_point_id", "app", "cluster", "finished_at", "status"])
    joined = objects.join(points, keys="restore_point_id", join_type="inner")
    return joined.sort_by([("finished_at", "descending"), ("restore_point_id", "descending")])


class ContainingFilters(TypedDict, total=False):
    """The keyword arguments of :func:`restore_points_containing_table` (see there)."""

    kind: Required[str]
    name: Required[str]
    namespace: str
    group: str | None
    app: str | None
    statuses: Collection[str] | None


def restore_points_containing(catalog: Catalog, **which: Unpack[ContainingFilters]) -> list[ObjectOccurrence]:
    """Which restore points contain the object; see :func:`restore_points_containing_table`."""
    return [ObjectOccurrence(**row) for row in restore_points_containing_table(catalog, **which).to_pylist()]


#: the nested per-object, per-volume and per-phase columns of ``restores`` (read only when asked for)
RESTORE_DETAIL_COLUMNS = ("outcomes", "volumes", "phases")


def list_restores(
    catalog: Catalog,
    *,
    restore_point_id: str | None = None,
    app: str | None = None,
    statuses: Collection[str] | None = None,
    include_dry_runs: bool = True,
    details: bool = False,
    limit: int | None = None,
) -> list[RestoreRecord]:
    """Recorded restores, newest first. ``app``: restores of that app's restore points. The per-object
    outcomes (``details``) are read only when asked for."""
    parts: list[pc.Expression] = []
    if restore_point_id is not None:
        parts.append(pc.field("restore_point_id") == restore_point_id)
    if app is not None:
        ids = catalog.read(TableName.RESTORE_POINTS, filter=pc.field("app") == app, columns=["id"])["id"]
        parts.append(pc.field("restore_point_id").isin(pa.array(pc.unique(ids).to_pylist(), pa.string())))
    if statuses is not None:
        parts.append(_in("status", statuses))
    if not include_dry_runs:
        parts.append(~pc.field("dry_run"))
    spec = TABLES[TableName.RESTORES]
    columns = None if details else [n for n in spec.schema.names if n not in RESTORE_DETAIL_COLUMNS]
    table = catalog.read(TableName.RESTORES, filter=_and(parts), columns=columns)
    table = table.sort_by([("finished_at", "descending"), ("id", "descending")])
    if limit is not None:
        table = table.slice(0, limit)
    return restores_from_table(table)


def get_restore(catalog: Catalog, restore_id: str) -> RestoreRecord | None:
    """One recorded restore with every object's outcome (None: no such restore)."""
    table = catalog.read(TableName.RESTORES, filter=pc.field("id") == restore_id)
    rows = restores_from_table(table)
    return rows[0] if rows else None


# ---------------------------------------------------------------------------------------------- signals

#: the ``subject`` of a restore point's own row in ``signals`` (volume rows name ``namespace/pvc``)
POINT_SUBJECT = ""
#: the carried baseline candidates of a point row (kubekeep.signals.carry): read only when asked for
CANDIDATES_COLUMN = "baseline_candidates"


def list_signals(
    catalog: Catalog,
    *,
    app: str | None = None,
    restore_point_ids: Collection[str] | None = None,
    finished_before: datetime | None = None,
    limit_points: int | None = None,
    volumes: bool = True,
    units: Collection[str] | None = None,
    candidates: bool = False,
) -> list[SignalRow]:
    """Signal rows, newest point first (its point row, then its volume rows by subject).

    ``limit_points`` keeps the newest points only; ``volumes=False`` returns the point rows only.
    ``units``: only the one-point files of these restore points are read (``restore_point_ids`` implies
    them). One scan: volume rows carry their point's app and finished_at. ``candidates``: read the carried
    baseline candidates too (``baseline_candidates``, the largest column; left out otherwise).
    """
    parts: list[pc.Expression] = []
    if not volumes:
        parts.append(pc.field("subject") == POINT_SUBJECT)
    if app is not None:
        parts.append(pc.field("app") == app)
    if restore_point_ids is not None:
        parts.append(_in("restore_point_id", restore_point_ids))
    if finished_before is not None:
        parts.append(pc.field("finished_at") < _aware(finished_before, "finished_before"))
    if restore_point_ids is not None:
        wanted = {restore_point_ids} if isinstance(restore_point_ids, str) else set(restore_point_ids)
        units = wanted & set(units) if units is not None else wanted
    columns = None if candidates else [n for n in TABLES[TableName.SIGNALS].schema.names if n != CANDIDATES_COLUMN]
    table = catalog.read(TableName.SIGNALS, filter=_and(parts), units=units, columns=columns)
    table = table.sort_by([("finished_at", "descending"), ("restore_point_id", "descending"),
                           ("subject", "ascending")])
    rows = [SignalRow.from_row(r) for r in table.to_pylist()]
    if limit_points is None:
        return rows
    kept: set[str] = set()
    out: list[SignalRow] = []
    for row in rows:
        if row.restore_point_id not in kept:
            if len(kept) >= limit_points:
                break
            kept.add(row.restore_point_id)
        out.append(row)
    return out


def list_signal_acks(catalog: Catalog, *, app: str | None = None) -> list[SignalAck]:
    """Acknowledged restore points, newest acknowledgement first."""
    table = catalog.read(TableName.SIGNAL_ACKS, filter=None if app is None else pc.field("app") == app)
    table = table.sort_by([("acknowledged_at", "descending"), ("restore_point_id", "descending")])
    return [SignalAck.from_row(r) for r in table.to_pylist()]


def acknowledged_points(catalog: Catalog, app: str | None = None) -> set[str]:
    table = catalog.read(TableName.SIGNAL_ACKS, filter=None if app is None else pc.field("app") == app,
                         columns=["restore_point_id"])
    return set(table["restore_point_id"].to_pylist())


def suspect_points(catalog: Catalog, app: str | None = None) -> set[str]:
    """Ids of restore points marked suspect by their signals and not acknowledged."""
    parts = [pc.field("subject") == POINT_SUBJECT, pc.field("suspect")]
    if app is not None:
        parts.append(pc.field("app") == app)
    table = catalog.read(TableName.SIGNALS, filter=_and(parts), columns=["restore_point_id"])
    return set(table["restore_point_id"].to_pylist()) - acknowledged_points(catalog, app)



@dataclass(frozen=True)
class CleanPoint:
    """The last clean point of an app, and how sure that choice is."""

    restore_point_id: str
    #: its signals were computed and it is not suspect (False: never scored, so not proven clean)
    scored: bool
    verified: bool
    #: one line for the user when the point is not proven clean
    warning: str | None = None


def last_clean(catalog: Catalog, app: str) -> CleanPoint | None:
    """The newest clean restore point of ``app``: scored points first, verified points preferred.

    Clean: succeeded, not suspect, not failed verification, and older than the newest
    unacknowledged suspect point of the app. Points after a suspect point are not
    clean: encrypted or deleted data stays in every later point, whose own changes
    look normal again. Acknowledging the suspect point (a false positive) clears
    them. A point that was never scored (signals off, or its step failed) is not
    proven clean: among the clean points, the newest verified *scored* one wins, else
    the newest scored one; only when no scored point is clean is the newest unscored
    one (verified preferred) chosen, with a warning.
    """
    suspects = suspect_points(catalog, app)
    cutoff: datetime | None = None
    if suspects:
        flagged = list_restore_points_table(catalog, app=app, statuses=None, columns=["id", "finished_at"])
        times = [t for i, t in zip(flagged["id"].to_pylist(), flagged["finished_at"].to_pylist(), strict=True)
                 if i in suspects]
        cutoff = max(times) if times else None
    points = list_restore_points_table(catalog, app=app, finished_before=cutoff, columns=["id"])
    verified = verified_points(catalog, app)
    candidates = [str(i) for i in points["id"].to_pylist() if i not in suspects and verified.get(i) is not False]
    if not candidates:
        return None
    scored = {r.restore_point_id for r in list_signals(catalog, app=app, volumes=False, units=candidates)}
    for pool, is_scored in (([i for i in candidates if i in scored], True),
                            ([i for i in candidates if i not in scored], False)):
        if not pool:
            continue
        chosen = next((i for i in pool if verified.get(i)), pool[0])
        warning = None if is_scored else (
            f"restore point {chosen} of app {app} was never scored for ransomware signals: it is not proven "
            "clean (no scored point of the app is clean)")
        return CleanPoint(chosen, scored=is_scored, verified=bool(verified.get(chosen)), warning=warning)
    return None


def last_clean_point(catalog: Catalog, app: str) -> str | None:
    """The id of :func:`last_clean` (None when no point is clean)."""
    choice = last_clean(catalog, app)
    return choice.restore_point_id if choice else None


def protected_apps(catalog: Catalog) -> list[str]:
    """The apps with at least one succeeded restore point, sorted (what ``verify-latest`` verifies)."""
    table = catalog.read(TableName.RESTORE_POINTS, filter=pc.field("status") == RestorePointStatus.SUCCEEDED.value,
                         columns=["app"])
    return sorted(str(a) for a in pc.unique(table["app"]).to_pylist()) if table.num_rows else []


def list_dr_copies(catalog: Catalog, *, app: str | None = None,
                   restore_point_ids: Collection[str] | None = None) -> list[DrCopyRecord]:
    """Where DR copies of the restore points are (recorded at the source by each copy), by point then
    destination."""
    parts: list[pc.Expression] = []
    if app is not None:
        parts.append(pc.field("app") == app)
    if restore_point_ids is not None:
        parts.append(_in("restore_point_id", restore_point_ids))
    table = catalog.read(TableName.DR_COPIES, filter=_and(parts))
    table = table.sort_by([("restore_point_id", "ascending"), ("destination", "ascending")])
    return [DrCopyRecord.from_row(r) for r in table.to_pylist()]


# ------------------------------------------------------------- verifications

#: the nested per-check and per-stage columns of ``verifications`` (read only when asked for)
VERIFICATION_DETAIL_COLUMNS = ("checks", "stages")


def list_verifications(
    catalog: Catalog,
    *,
    app: str | None = None,
    restore_point_id: str | None = None,
    results: Collection[str] | None = None,
    details: bool = False,
    limit: int | None = None,
) -> list[VerificationRecord]:
    """Recorded verifications, newest first; per-check results and stage times only with ``details``."""
    parts: list[pc.Expression] = []
    if app is not None:
        parts.append(pc.field("app") == app)
    if restore_point_id is not None:
        parts.append(pc.field("restore_point_id") == restore_point_id)
    if results is not None:
        parts.append(_in("result", results))
    spec = TABLES[TableName.VERIFICATIONS]
    columns = None if details else [n for n in spec.schema.names if n not in VERIFICATION_DETAIL_COLUMNS]
    table = catalog.read(TableName.VERIFICATIONS, filter=_and(parts), columns=columns)
    table = table.sort_by([("finished_at", "descending"), ("id", "descending")])
    if limit is not None:
        table = table.slice(0, limit)
    return verifications_from_table(table)


def get_verification(catalog: Catalog, verification_id: str) -> VerificationRecord | None:
    """One verification with every check and stage (None: no such verification)."""
    rows = verifications_from_table(catalog.read(TableName.VERIFICATIONS, filter=pc.field("id") == verification_id))
    return rows[0] if rows else None


def _verdicts_table(catalog: Catalog, app: str | None) -> pa.Table:
    """(restore_point_id, passed) of the newest conclusive verdict of each point, as a table."""
    parts = [pc.field("result") != VerificationResult.ERROR.value]
    if app is not None:
        parts.append(pc.field("app") == app)
    table = catalog.read(TableName.VERIFICATIONS, filter=_and(parts),
                         columns=["restore_point_id", "finished_at", "id", "result"])
    if not table.num_rows:
        return table
    table = table.sort_by([("restore_point_id", "ascending"), ("finished_at", "descending"), ("id", "descending")])
    points = table["restore_point_id"]
    # the first row of each point is its newest verdict (rows are sorted by point, newest first)
    first = pc.not_equal(points.slice(1), points.slice(0, table.num_rows - 1))
    mask = pa.concat_arrays([pa.array([True]), pc.fill_null(first, True).combine_chunks()])
    return table.filter(mask)


def verified_points(catalog: Catalog, app: str | None = None) -> dict[str, bool]:
    """Restore point id -> whether its newest conclusive verification passed (points never verified, or
    whose verifications all ended in ``error``, are absent)."""
    table = _verdicts_table(catalog, app)
    return {str(point): result == VerificationResult.PASSED.value
            for point, result in zip(table["restore_point_id"].to_pylist(), table["result"].to_pylist(), strict=True)}


def newest_verified_point(catalog: Catalog, app: str) -> str | None:
    """The newest restore point of ``app`` (by when the point was taken) whose newest verification passed,
    among points still in the catalog; None if there is none."""
    newest = _newest_verified(catalog, app)
    return newest[0] if newest else None


def newest_verified_time(catalog: Catalog, app: str) -> datetime | None:
    """When :func:`newest_verified_point` finished (None: no point of ``app`` is verified)."""
    newest = _newest_verified(catalog, app)
    return newest[1] if newest else None


def _newest_verified(catalog: Catalog, app: str) -> tuple[str, datetime] | None:
    passed = [point for point, ok in verified_points(catalog, app).items() if ok]
    if not passed:
        return None
    table = catalog.read(TableName.RESTORE_POINTS,
                         filter=restore_points_filter(app=app, statuses=None, ids=passed),
                         columns=["id", "finished_at"])
    if not table.num_rows:
        return None
    table = table.sort_by([("finished_at", "descending"), ("id", "descending")])
    return str(table["id"][0].as_py()), table["finished_at"][0].as_py()


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0 < q <= 100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class VerificationStats:
    """How the verifications of one app went."""

    app: str
    runs: int
    passed: int
    failed: int
    #: verifications that could not reach a verdict (the sandbox failed)
    errors: int
    #: passed / (passed + failed); None when no verification reached a verdict
    pass_rate: float | None
    #: 95th percentile (nearest rank) of the RTO of the passed verifications
    p95_rto_seconds: float | None
    last_result: str
    last_finished_at: datetime
    last_restore_point_id: str


def verification_stats(catalog: Catalog, app: str | None = None) -> list[VerificationStats]:
    """Pass rate and p95 RTO per app (sorted by app)."""
    filter_ = pc.field("app") == app if app is not None else None
    table = catalog.read(TableName.VERIFICATIONS, filter=filter_,
                         columns=["id", "app", "restore_point_id", "finished_at", "result", "rto_seconds"])
    if not table.num_rows:
        return []
    table = table.sort_by([("app", "ascending"), ("finished_at", "ascending"), ("id", "ascending")])
    per_app: dict[str, list[dict[str, object]]] = {}
    for row in table.to_pylist():
        per_app.setdefault(str(row["app"]), []).append(row)
    out: list[VerificationStats] = []
    for name, rows in per_app.items():
        passed = [r for r in rows if r["result"] == VerificationResult.PASSED.value]
        failed = sum(1 for r in rows if r["result"] == VerificationResult.FAILED.value)
        conclusive = len(passed) + failed
        rtos = [float(r["rto_seconds"]) for r in passed if isinstance(r["rto_seconds"], int | float)]
        last = rows[-1]
        finished = last["finished_at"]
        assert isinstance(finished, datetime)
        out.append(VerificationStats(
            app=name, runs=len(rows), passed=len(passed), failed=failed, errors=len(rows) - conclusive,
            pass_rate=len(passed) / conclusive if conclusive else None, p95_rto_seconds=percentile(rtos, 95),
            last_result=str(last["result"]), last_finished_at=finished,
            last_restore_point_id=str(last["restore_point_id"])))
    return out
