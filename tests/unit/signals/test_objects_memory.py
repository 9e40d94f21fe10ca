"""The signals step compares two points' objects without a Python object per object (issue 15: the backup
worker's RSS grew with the object count; the step held both points' keys as lists of ObjectKey)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from kubekeep.catalog import Catalog, RestorePoint, RestorePointObject
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint.ids import new_restore_point_id
from kubekeep.signals import CatalogHistory, ObjectSignals, SignalPolicy, compute_signals
from kubekeep.signals.compute import PointRef

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
KINDS = ("Secret", "ConfigMap", "ServiceAccount", "Service")


def _objects(point_id: str, count: int, *, skip_every: int = 0) -> Iterator[RestorePointObject]:
    for n in range(count):
        if skip_every and n % skip_every == 0:
            continue  # deleted since the previous point
        kind = KINDS[n % len(KINDS)]
        yield RestorePointObject(point_id, "", "v1", kind, f"bench-{n // 100:04d}", f"obj-{n % 100:04d}",
                                 f"{n:064x}", 300, f"uid-{n:08d}")


def _two_points(tmp_path: Path, count: int) -> tuple[Catalog, PointRef]:
    catalog = Catalog(FilesystemStorage(tmp_path / f"loc-{count}", create=True), cache_dir=tmp_path / f"c-{count}")
    ref = None
    for day in range(2):
        when = START + timedelta(days=day)
        rp = new_restore_point_id("shop", when)
        catalog.add_restore_point(
            RestorePoint(id=rp, app="shop", cluster="c", namespaces=("shop",), started_at=when,
                         finished_at=when + timedelta(minutes=5), status="succeeded", snapshot_id="s" * 64,
                         location="file:///x", object_count=count),
            _objects(rp, count, skip_every=1000 if day else 0))
        ref = PointRef(id=rp, app="shop", finished_at=when + timedelta(minutes=5))
    assert ref is not None
    return catalog, ref


def _step(catalog: Catalog, ref: PointRef) -> tuple[ObjectSignals, int]:
    """The objects part of the signals step, and its peak of the Python heap plus Arrow's allocations."""
    previous_pool = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(previous_pool)
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        signals = compute_signals(None, CatalogHistory(catalog), ref, SignalPolicy())  # type: ignore[arg-type]
        _, heap_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous_pool)
    assert signals.objects is not None
    return signals.objects, heap_peak + pool.max_memory()


def test_objects_signals_hold_no_python_object_per_object(tmp_path: Path) -> None:
    small_count, large_count = 3_000, 30_000
    small, small_peak = _step(*_two_points(tmp_path, small_count))
    large, large_peak = _step(*_two_points(tmp_path, large_count))
    assert (large.previous_objects, large.objects, large.deleted) == (30_000, 29_970, 30)
    assert large.deleted_by_kind == {"Secret": 30}  # objects 0, 1000, 2000, ...: n % 4 == 0
    assert large.examples == ["Secret bench-0000/obj-0000", "Secret bench-0010/obj-0000",
                              "Secret bench-0020/obj-0000", "Secret bench-0030/obj-0000",
                              "Secret bench-0040/obj-0000"]
    assert small.deleted == 3
    per_object = (large_peak - small_peak) / (large_count - small_count)
    # what may grow: the current point's 16-byte digests in a set (~85 B an object) and both points' key
    # columns (~45 B each, and their copies while read): ~240 B measured; lists of ObjectKey for both points
    # held ~690 B an object
    assert per_object <= 320, f"the step's peak grew by {per_object:.0f} B per object of the two points"
