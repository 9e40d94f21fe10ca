from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kubekeep.catalog import (
    SCHEMA_VERSION,
    TABLES,
    Catalog,
    CatalogError,
    CatalogFormatError,
    CatalogRecordError,
    RestoreRecord,
    TableName,
    deduplicate,
    list_restore_points,
)
from kubekeep.catalog.store import encode_parquet
from kubekeep.repo.storage import FilesystemStorage

from .factories import T0, make_objects, make_point, make_volumes


def test_add_restore_point_writes_one_object_per_table(catalog: Catalog, storage: FilesystemStorage) -> None:
    keys = catalog.add_restore_point(make_point("rp1"), make_objects("rp1"), make_volumes("rp1"))
    assert keys == [
        "catalog/v1/restore_point_objects/rp-rp1.parquet",
        "catalog/v1/restore_point_volumes/rp-rp1.parquet",
        "catalog/v1/restore_points/rp-rp1.parquet",
    ]
    assert sorted(i.key for i in storage.list("catalog/")) == sorted(keys)


def test_files_carry_schema_version_and_explicit_schema(catalog: Catalog, storage: FilesystemStorage) -> None:
    catalog.add_restore_point(make_point("rp1"), make_objects("rp1"))
    data = storage.get("catalog/v1/restore_points/rp-rp1.parquet")
    pf = pq.ParquetFile(io.BytesIO(data))
    meta = pf.metadata.metadata
    assert meta[b"kubekeep.catalog.schema_version"] == str(SCHEMA_VERSION).encode()
    assert meta[b"kubekeep.catalog.table"] == b"restore_points"
    schema = pf.schema_arrow
    assert schema.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("namespaces").type == pa.list_(pa.string())
    assert schema.field("tags").type == pa.map_(pa.string(), pa.string())


def test_round_trip_records(catalog: Catalog) -> None:
    point = make_point("rp1", tags={"ticket": "OPS-1"}, namespaces=("shop", "shop-db"))
    catalog.add_restore_point(point, make_objects("rp1"), make_volumes("rp1"))
    assert list_restore_points(catalog) == [point]


def test_retried_write_is_idempotent(catalog: Catalog) -> None:
    catalog.add_restore_point(make_point("rp1"), make_objects("rp1"))
    catalog.add_restore_point(make_point("rp1"), make_objects("rp1"))  # a retried task
    assert catalog.read(TableName.RESTORE_POINTS).num_rows == 1
    assert catalog.read(TableName.RESTORE_POINT_OBJECTS).num_rows == 2


def test_rows_of_another_point_are_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="rp2"):
        catalog.add_restore_point(make_point("rp1"), make_objects("rp2"))


def test_record_validation() -> None:
    with pytest.raises(CatalogRecordError, match="timezone-aware"):
        make_point("rp1").__class__(**{**make_point("rp1").__dict__, "started_at": T0.replace(tzinfo=None)})
    with pytest.raises(CatalogRecordError, match="status"):
        make_point("rp1", status="done")
    with pytest.raises(CatalogRecordError, match="not valid"):
        make_point("../etc")


def test_cache_avoids_downloads(storage: FilesystemStorage, tmp_path: Path) -> None:
    writer = Catalog(storage, cache_dir=tmp_path / "writer-cache")
    for n in range(3):
        writer.add_restore_point(make_point(f"rp{n}", hours=n))

    gets: list[str] = []
    original_get = storage.get

    def counting_get(key: str) -> bytes:
        gets.append(key)
        return original_get(key)

    storage.get = counting_get  # type: ignore[method-assign]
    reader = Catalog(storage, cache_dir=tmp_path / "reader-cache")
    assert len(list_restore_points(reader)) == 3
    assert len(gets) == 3
    assert len(list_restore_points(reader)) == 3
    assert len(gets) == 3  # second query served from the cache
    writer.add_restore_point(make_point("rp9", hours=9))
    assert len(list_restore_points(reader)) == 4
    assert gets[-1].endswith("rp-rp9.parquet")
    assert len(gets) == 4


def test_cache_is_partitioned_by_location(tmp_path: Path) -> None:
    a = Catalog(FilesystemStorage(tmp_path / "a", create=True), cache_dir=tmp_path / "cache")
    b = Catalog(FilesystemStorage(tmp_path / "b", create=True), cache_dir=tmp_path / "cache")
    a.add_restore_point(make_point("rp1", app="one"))
    b.add_restore_point(make_point("rp1", app="two"))
    assert [p.app for p in list_restore_points(a)] == ["one"]
    assert [p.app for p in list_restore_points(b)] == ["two"]


def test_newer_schema_version_is_refused(catalog: Catalog, storage: FilesystemStorage) -> None:
    spec = TABLES[TableName.RESTORE_POINTS]
    table = pa.Table.from_pylist([make_point("rp1").to_row()], schema=spec.schema)
    table = table.replace_schema_metadata({b"kubekeep.catalog.schema_version": b"99"})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.put("catalog/v1/restore_points/rp-rp1.parquet", buf.getvalue())
    with pytest.raises(CatalogFormatError, match="newer"):
        list_restore_points(catalog)


def test_foreign_file_is_refused(catalog: Catalog, storage: FilesystemStorage) -> None:
    storage.put("catalog/v1/restore_points/rp-x.parquet", b"not parquet")
    with pytest.raises(CatalogFormatError, match="not a readable Parquet"):
        list_restore_points(catalog)


def test_compaction_merges_sorts_and_deletes(catalog: Catalog, storage: FilesystemStorage) -> None:
    for n in range(6):
        app = "shop" if n % 2 else "blog"
        catalog.add_restore_point(make_point(f"rp{n}", app=app, hours=10 - n), make_objects(f"rp{n}"),
                                  make_volumes(f"rp{n}"))
    before = {t: _by_key(catalog, t) for t in TableName}

    results = {r.table: r for r in catalog.compact(row_group_rows=2)}

    rp = results[TableName.RESTORE_POINTS]
    assert len(rp.merged_keys) == 6 and rp.deleted_keys == rp.merged_keys and rp.rows == 6
    assert [i.key for i in storage.list("catalog/v1/restore_points/")] == list(rp.written_keys)
    assert rp.written_keys[0].startswith("catalog/v1/restore_points/part-")
    part = pq.ParquetFile(io.BytesIO(storage.get(rp.written_keys[0])))
    assert part.metadata.num_row_groups == 3
    rows = part.read().select(["app", "finished_at"]).to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["app"], r["finished_at"]))
    assert results[TableName.RESTORES].merged_keys == ()  # nothing to do
    for t in TableName:
        assert _by_key(catalog, t).equals(before[t])


def test_readers_deduplicate_while_compaction_is_half_done(
    catalog: Catalog, storage: FilesystemStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        catalog.add_restore_point(make_point(f"rp{n}", hours=n), make_objects(f"rp{n}"))
    # a compaction that dies after writing its outputs, before deleting inputs
    monkeypatch.setattr(storage, "delete", lambda key: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        catalog.compact(TableName.RESTORE_POINTS)
    monkeypatch.undo()
    keys = [i.key for i in storage.list("catalog/v1/restore_points/")]
    assert len(keys) == 4  # three small files and the part holding the same rows
    assert catalog.dataset(TableName.RESTORE_POINTS).count_rows() == 6
    assert [p.id for p in list_restore_points(catalog)] == ["rp2", "rp1", "rp0"]
    # a rerun finishes the job
    catalog.compact(TableName.RESTORE_POINTS)
    assert len(list(storage.list("catalog/v1/restore_points/"))) == 1
    assert [p.id for p in list_restore_points(catalog)] == ["rp2", "rp1", "rp0"]


def test_compaction_leaves_large_files_and_splits_output(catalog: Catalog, storage: FilesystemStorage) -> None:
    for n in range(5):
        catalog.add_restore_point(make_point(f"rp{n}", hours=n))
    (result,) = catalog.compact(TableName.RESTORE_POINTS, rows_per_file=2)
    assert len(result.written_keys) == 3
    # parts are now "large" for a tiny threshold: nothing more to merge
    (again,) = catalog.compact(TableName.RESTORE_POINTS, small_file_bytes=100)
    assert again.merged_keys == ()
    assert len(list_restore_points(catalog)) == 5


def test_compaction_merges_at_most_max_input_bytes_at_a_time(catalog: Catalog, storage: FilesystemStorage,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory does not grow with the catalog: the inputs are merged in batches of bounded stored size."""
    for n in range(6):
        catalog.add_restore_point(make_point(f"rp{n}", hours=n), make_objects(f"rp{n}"))
    before = _by_key(catalog, TableName.RESTORE_POINT_OBJECTS)
    sizes = [i.size for i in storage.list("catalog/v1/restore_point_objects/")]
    merged: list[int] = []
    read = Catalog._merge_inputs

    def counting(self: Catalog, table: TableName, inputs: list) -> pa.Table:  # type: ignore[type-arg]
        merged.append(sum(i.size for i in inputs))
        return read(self, table, inputs)

    monkeypatch.setattr(Catalog, "_merge_inputs", counting)
    (result,) = catalog.compact(TableName.RESTORE_POINT_OBJECTS, max_input_bytes=2 * max(sizes))
    assert len(merged) == 3 and max(merged) <= 2 * max(sizes)
    assert len(result.merged_keys) == 6 and len(result.written_keys) == 3 and result.deleted_keys == result.merged_keys
    assert _by_key(catalog, TableName.RESTORE_POINT_OBJECTS).equals(before)
    # a second pass merges the (small) parts of the first, again in bounded batches
    (again,) = catalog.compact(TableName.RESTORE_POINT_OBJECTS, max_input_bytes=10 * max(sizes))
    assert len(again.written_keys) == 1
    assert _by_key(catalog, TableName.RESTORE_POINT_OBJECTS).equals(before)


def test_a_reader_that_listed_before_a_compaction_still_reads_every_row(storage: FilesystemStorage,
                                                                         tmp_path: Path) -> None:
    """A compaction deletes small files another process may have just listed: that reader lists again."""
    writer = Catalog(storage, cache_dir=tmp_path / "writer")
    for n in range(3):
        writer.add_restore_point(make_point(f"rp{n}", hours=n))
    reader = Catalog(storage, cache_dir=tmp_path / "reader")  # nothing cached: it must fetch every file
    listing = Catalog._list
    compacted: list[bool] = []

    def list_then_compact(self: Catalog, table: TableName):  # type: ignore[no-untyped-def]
        infos = list(listing(self, table))
        if self is reader and table is TableName.RESTORE_POINTS and not compacted:
            compacted.append(True)
            writer.compact(TableName.RESTORE_POINTS)
        return iter(infos)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Catalog, "_list", list_then_compact)
        assert [p.id for p in list_restore_points(reader)] == ["rp2", "rp1", "rp0"]
    assert compacted


def test_prune_cache(catalog: Catalog) -> None:
    for n in range(3):
        catalog.add_restore_point(make_point(f"rp{n}", hours=n))
    list_restore_points(catalog)
    catalog.compact(TableName.RESTORE_POINTS)
    list_restore_points(catalog)
    assert catalog.prune_cache() == 3
    assert len(list_restore_points(catalog)) == 3


def test_restores_table(catalog: Catalog) -> None:
    record = RestoreRecord(
        id="r1", restore_point_id="rp1", started_at=T0, finished_at=T0 + timedelta(minutes=3),
        status="partially_failed", reason="2 objects failed", dry_run=False, created=10, updated=1,
        skipped=3, failed=2, target_cluster="dr", target_namespaces=("shop-restored",),
    )
    assert catalog.add_restore(record) == "catalog/v1/restores/r-r1.parquet"
    table = catalog.read(TableName.RESTORES)
    assert RestoreRecord.from_row(table.to_pylist()[0]) == record


def test_deduplicate_keeps_first_and_order() -> None:
    table = pa.table({"id": ["b", "a", "b", "c", "a"], "v": [1, 2, 3, 4, 5]})
    assert deduplicate(table, ["id"]).to_pydict() == {"id": ["b", "a", "c"], "v": [1, 2, 4]}


def test_encode_parquet_row_groups() -> None:
    spec = TABLES[TableName.RESTORE_POINTS]
    table = pa.Table.from_pylist([make_point(f"rp{n}").to_row() for n in range(10)], schema=spec.schema)
    pf = pq.ParquetFile(io.BytesIO(encode_parquet(table, spec, row_group_rows=4)))
    assert pf.metadata.num_row_groups == 3
    assert pc.sum(pf.read()["object_count"]).as_py() == 20


def _by_key(catalog: Catalog, table: TableName) -> pa.Table:
    return catalog.read(table).sort_by([(column, "ascending") for column in TABLES[table].key])
