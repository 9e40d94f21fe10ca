"""Questions asked of the catalog, answered with Arrow filters (no per-row Python).

Each function builds a ``pyarrow.compute`` expression that the dataset scan
pushes down to Parquet row-group statistics, then deduplicates and sorts the
(small) result. Functions named ``*_table`` return Arrow tables for callers
that want columns; the others return typed records.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Required, TypedDict, Unpack

import pyarrow as pa
import pyarrow.compute as pc

from .records import (
    CatalogRecordError,
    RestorePoint,
    RestorePointObject,
    RestoreRecord,
    restore_points_from_table,
    restores_from_table,
)
from .schema import TABLES, RestorePointStatus, TableName
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
) -> pa.Table:
    """Restore points matching every given filter, sorted by ``finished_at``.

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
    table = catalog.read(TableName.RESTORE_POINTS, filter=expr, columns=wanted)
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
    objects = catalog.read(TableName.RESTORE_POINT_OBJECTS, filter=_and(parts))
    if not objects.num_rows:
        ids: list[str] = []
    else:
        ids = pc.unique(objects["restore_point_id"]).to_pylist()
    points = catalog.read(
        TableName.RESTORE_POINTS,
        filter=restore_points_filter(app=app, statuses=statuses, ids=ids),
        columns=["id", "app", "cluster", "finished_at", "status"],
    ).rename_columns(["restore_point_id", "app", "cluster", "finished_at", "status"])
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


# -- verdicts and signals of other features (placeholders until their tables land) -------------------
#
# The verification feature (issue 11) records verdicts in a table ``verifications`` and the signals
# feature (issue 13) marks suspect points in ``signals``/``signal_acks``. Retention consumes both
# through these two queries, whose names and signatures are shared between the features. Until a
# table exists in this catalog version, the query answers "nothing known": no point is verified, no
# point is suspect (retention then keeps what its rules keep, and never less).


def verified_points(catalog: Catalog, app: str | None = None) -> dict[str, bool]:
    """Restore point id -> whether its newest verification passed (points never verified are absent)."""
    if "VERIFICATIONS" not in TableName.__members__:
        return {}
    raise NotImplementedError("verified_points: the verifications table exists; the verification feature "
                              "provides this query")  # pragma: no cover - replaced when that feature merges


def suspect_points(catalog: Catalog, app: str | None = None) -> set[str]:
    """Ids of restore points marked suspect and not acknowledged."""
    if "SIGNALS" not in TableName.__members__:
        return set()
    raise NotImplementedError("suspect_points: the signals table exists; the signals feature provides this "
                              "query")  # pragma: no cover - replaced when that feature merges
