"""A restore point's objects file: written in memory that does not grow with its objects, with the rows, order
and row groups the in-memory sort wrote (issue 15: the backup worker's RSS grew with the object count)."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kubekeep.catalog import TABLES, Catalog, RestorePointObject, TableName
from kubekeep.catalog.records import objects_table
from kubekeep.catalog.store import encode_parquet
from kubekeep.repo.storage import FilesystemStorage

from .factories import make_point

OBJECTS_KEY = "catalog/v1/restore_point_objects/rp-rp1.parquet"
KINDS = ("Secret", "ConfigMap", "ServiceAccount", "Service")


def served_rows(count: int, point_id: str = "rp1", per_namespace: int = 100) -> Iterator[RestorePointObject]:
    """Rows in the order a backup collects them: kind by kind (not alphabetical), each across namespaces."""
    per_kind = per_namespace // len(KINDS)
    for kind in KINDS:
        for n in range(count // len(KINDS)):
            namespace, i = f"bench-{n // per_kind:04d}", n % per_kind
            yield RestorePointObject(point_id, "", "v1", kind, namespace, f"obj-{i:04d}",
                                     f"{n * 7919 + len(kind):064x}", 300 + n % 700, f"uid-{kind}-{n:08d}")


def _peak_bytes(rows: int, tmp_path: Path) -> tuple[int, int]:
    """(peak of the Python heap plus Arrow's allocations while one point's rows are written, its objects file's
    size)."""
    storage = FilesystemStorage(tmp_path / f"location-{rows}", create=True)
    catalog = Catalog(storage, cache_dir=tmp_path / f"cache-{rows}")
    previous_pool = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(previous_pool)
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        catalog.add_restore_point(make_point("rp1"), served_rows(rows))
        _, heap_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous_pool)
    return heap_peak + pool.max_memory(), storage.stat(OBJECTS_KEY).size


def test_writing_the_objects_file_does_not_hold_every_row(tmp_path: Path) -> None:
    small, _ = _peak_bytes(4_000, tmp_path)
    large, file_size = _peak_bytes(40_000, tmp_path)
    # the encoded file is put whole (the storage interface takes bytes), so it may grow, once for the buffer
    # and once for the put; the rows may not (the in-memory sort: +24 MiB for 36,000 more rows, ~700 B each)
    allowed = 2 * file_size + 6 * 2**20
    assert large - small <= allowed, (
        f"peak grew by {(large - small) / 2**20:.1f} MiB from 4,000 to 40,000 object rows "
        f"(allowed {allowed / 2**20:.1f} MiB: the {file_size / 2**20:.1f} MiB file twice and 6 MiB)")


def _old_path(rows: list[RestorePointObject]) -> bytes:
    """What add_restore_point wrote before the file was streamed: the whole table, sorted, encoded at once."""
    spec = TABLES[TableName.RESTORE_POINT_OBJECTS]
    table = objects_table(rows).sort_by([(column, "ascending") for column in spec.sort_by])
    return encode_parquet(table, spec)


def test_objects_file_holds_the_rows_order_and_row_groups_of_the_in_memory_sort(catalog: Catalog,
                                                                                  storage: FilesystemStorage) -> None:
    rows = list(served_rows(40_000))
    # the same object twice (the sort key is the table's key): the first stays first, as with a stable sort
    rows.insert(25_000, RestorePointObject("rp1", "", "v1", "ConfigMap", "bench-0003", "obj-0001", "dup-1", 1))
    rows.insert(3, RestorePointObject("rp1", "", "v1", "ConfigMap", "bench-0003", "obj-0001", "dup-0", 2, None))
    rows.append(RestorePointObject("rp1", "apps", "v1", "Deployment", "", "z\u00e9", "h", 3, "u"))
    rows.append(RestorePointObject("rp1", "apps", "v1", "Deployment", "", "z\u0301e", "h", 3, "u"))
    catalog.add_restore_point(make_point("rp1"), iter(rows))

    written = pq.ParquetFile(io.BytesIO(storage.get(OBJECTS_KEY)))
    expected = pq.ParquetFile(io.BytesIO(_old_path(rows)))
    assert written.read().equals(expected.read())
    assert [written.metadata.row_group(i).num_rows for i in range(written.metadata.num_row_groups)] == [
        expected.metadata.row_group(i).num_rows for i in range(expected.metadata.num_row_groups)]
    assert written.metadata.num_row_groups == 3  # 16 Ki rows each
    assert written.schema_arrow.metadata == expected.schema_arrow.metadata


def test_a_point_without_objects_writes_no_objects_file(catalog: Catalog, storage: FilesystemStorage) -> None:
    catalog.add_restore_point(make_point("rp1"), iter(()))
    assert not storage.exists(OBJECTS_KEY)
