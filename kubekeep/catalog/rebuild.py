"""Rebuild the catalog from snapshot manifests.

The catalog is derived data: every row can be recomputed from the snapshot
manifests of the repository. Reading those manifests is the repository's job;
this module takes the summaries it extracts and writes whatever the catalog is
missing, in large sorted part files rather than one small file per point.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow.compute as pc

from ..repo.storage.base import Storage
from .records import (
    RestorePoint,
    RestorePointObject,
    RestorePointVolume,
    objects_table,
    restore_points_table,
    volumes_table,
)
from .schema import TableName
from .store import DEFAULT_ROW_GROUP_ROWS, Catalog, CatalogCodec, CatalogError


@dataclass(frozen=True)
class RestorePointSummary:
    """Everything the catalog records about one restore point, as read from its snapshot manifest."""

    point: RestorePoint
    objects: Sequence[RestorePointObject] = field(default_factory=tuple)
    volumes: Sequence[RestorePointVolume] = field(default_factory=tuple)


@dataclass(frozen=True)
class RebuildResult:
    points_written: int
    #: already in the catalog (or repeated in the input); left as they are
    points_skipped: int
    keys_written: tuple[str, ...]


def rebuild_catalog(
    storage: Storage,
    rows_from_snapshots: Iterable[RestorePointSummary],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_points: int = 10_000,
    batch_object_rows: int = 1_000_000,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    codec: CatalogCodec | None = None,
) -> RebuildResult:
    """Write catalog rows for every summarised restore point the catalog lacks.

    Idempotent: points whose id is already in ``restore_points`` are skipped,
    so an interrupted rebuild is finished by running it again. Within a batch,
    detail rows (objects, volumes) are written before the restore point rows.
    """
    if batch_points < 1 or batch_object_rows < 1:
        raise ValueError("batch sizes must be positive")
    catalog = Catalog(storage, cache_dir=cache_dir, codec=codec)
    known = catalog_ids(catalog)
    written = 0
    skipped = 0
    keys: list[str] = []
    batch: list[RestorePointSummary] = []
    batch_rows = 0

    def flush() -> None:
        nonlocal written, batch_rows
        if not batch:
            return
        ids = "\n".join(sorted(s.point.id for s in batch))
        name = "rebuild-" + hashlib.sha256(ids.encode()).hexdigest()[:24]
        objects = [o for s in batch for o in s.objects]
        volumes = [v for s in batch for v in s.volumes]
        for table, data in (
            (TableName.RESTORE_POINT_OBJECTS, objects_table(objects) if objects else None),
            (TableName.RESTORE_POINT_VOLUMES, volumes_table(volumes) if volumes else None),
            (TableName.RESTORE_POINTS, restore_points_table([s.point for s in batch])),
        ):
            if data is None:
                continue
            key = catalog.write_part(table, data, name=name, row_group_rows=row_group_rows)
            if key is not None:
                keys.append(key)
        written += len(batch)
        batch.clear()
        batch_rows = 0

    for summary in rows_from_snapshots:
        point_id = summary.point.id
        row_ids = [o.restore_point_id for o in summary.objects]
        for row_id in row_ids + [v.restore_point_id for v in summary.volumes]:
            if row_id != point_id:
                raise CatalogError(f"summary of {point_id} holds a row of restore point {row_id}")
        if point_id in known:
            skipped += 1
            continue
        known.add(point_id)
        batch.append(summary)
        batch_rows += len(summary.objects)
        if len(batch) >= batch_points or batch_rows >= batch_object_rows:
            flush()
    flush()
    return RebuildResult(written, skipped, tuple(keys))


def catalog_ids(catalog: Catalog) -> set[str]:
    """Ids of every restore point in the catalog (any status)."""
    ids = catalog.read(TableName.RESTORE_POINTS, columns=["id"])["id"]
    return set(pc.unique(ids).to_pylist())
