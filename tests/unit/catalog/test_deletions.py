"""Deleted restore points: the tombstone hides every row of the point, in small files and in compacted
parts, through compaction and rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubekeep.catalog import (
    Catalog,
    CatalogRecordError,
    DeletedRestorePoint,
    RestorePointSummary,
    TableName,
    latest_restore_point,
    list_restore_points,
    rebuild_catalog,
    restore_points_containing,
)
from kubekeep.repo.storage import FilesystemStorage

from .factories import make_objects, make_point, make_volumes

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(catalog: Catalog) -> None:
    for n in range(4):
        pid = f"shop-{n}"
        catalog.add_restore_point(make_point(pid, hours=n), make_objects(pid), make_volumes(pid))


def _ids(catalog: Catalog) -> list[str]:
    return [p.id for p in list_restore_points(catalog, statuses=None, newest_first=False)]


@pytest.mark.parametrize("compacted", [False, True])
def test_a_tombstone_hides_every_row_of_the_point(catalog: Catalog, compacted: bool) -> None:
    _fill(catalog)
    if compacted:
        catalog.compact()
    key = catalog.add_deletion(DeletedRestorePoint("shop-3", "shop", WHEN, "retention", ("a", "b")))
    assert key == "catalog/v1/deleted_restore_points/rp-shop-3.parquet"
    assert _ids(catalog) == ["shop-0", "shop-1", "shop-2"]
    latest = latest_restore_point(catalog, "shop")
    assert latest is not None and latest.id == "shop-2"
    hits = restore_points_containing(catalog, kind="Deployment", name="web", namespace="shop")
    assert [h.restore_point_id for h in hits] == ["shop-2", "shop-1", "shop-0"]
    volumes = catalog.read(TableName.RESTORE_POINT_VOLUMES)["restore_point_id"].to_pylist()
    assert sorted(volumes) == ["shop-0", "shop-1", "shop-2"]
    assert catalog.deleted_ids() == {"shop-3"}
    # a retried deletion is a no-op
    catalog.add_deletion(DeletedRestorePoint("shop-3", "shop", WHEN, "retention again"))
    assert catalog.deleted_ids() == {"shop-3"}


def test_point_files_go_and_compaction_drops_hidden_rows(catalog: Catalog, storage: FilesystemStorage) -> None:
    _fill(catalog)
    catalog.add_deletion(DeletedRestorePoint("shop-1", "shop", WHEN, "retention"))
    removed = catalog.remove_point_files("shop-1")
    assert sorted(removed) == [f"catalog/v1/{t}/rp-shop-1.parquet"
                               for t in ("restore_point_objects", "restore_point_volumes", "restore_points")]
    catalog.add_deletion(DeletedRestorePoint("shop-2", "shop", WHEN, "retention"))
    catalog.compact()
    # the compacted part holds no row of shop-2 at all (not just hidden)
    raw = catalog.dataset(TableName.RESTORE_POINTS).to_table()["id"].to_pylist()
    assert sorted(raw) == ["shop-0", "shop-3"]
    assert _ids(catalog) == ["shop-0", "shop-3"]
    assert catalog.remove_point_files("shop-9") == []


def test_rebuild_does_not_resurrect_and_rebuilds_the_rest(catalog: Catalog, storage: FilesystemStorage,
                                                          tmp_path: object) -> None:
    _fill(catalog)
    catalog.add_deletion(DeletedRestorePoint("shop-0", "shop", WHEN, "retention"))
    # the repository holds shop-1..3 only (shop-0's record is gone), plus a new shop-4
    summaries = [RestorePointSummary(make_point(f"shop-{n}", hours=n), tuple(make_objects(f"shop-{n}")), ())
                 for n in (1, 2, 3, 4)]
    result = rebuild_catalog(storage, summaries, cache_dir=catalog.cache_dir.parent)
    assert result.points_written == 1 and result.points_skipped == 3
    assert _ids(catalog) == ["shop-1", "shop-2", "shop-3", "shop-4"]


def test_deletion_records_are_validated() -> None:
    with pytest.raises(CatalogRecordError, match="timezone-aware"):
        DeletedRestorePoint("x", "shop", datetime(2026, 1, 1), "retention")
    with pytest.raises(CatalogRecordError, match="reason"):
        DeletedRestorePoint("x", "shop", WHEN, "")
    with pytest.raises(CatalogRecordError, match="not valid"):
        DeletedRestorePoint("../x", "shop", WHEN, "retention")


def test_the_tombstones_are_read_once_while_their_files_do_not_change(catalog: Catalog,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of a table with deletions hides the deleted points; the tombstones are read again only when
    the listing of their files changes (another process may add one at any time), and an empty table opens
    no Parquet dataset at all."""
    _fill(catalog)
    opened: list[TableName] = []
    dataset = Catalog._dataset

    def counting(self: Catalog, table: TableName, infos: object) -> object:
        opened.append(table)
        return dataset(self, table, infos)  # type: ignore[arg-type]

    monkeypatch.setattr(Catalog, "_dataset", counting)
    assert _ids(catalog) == ["shop-0", "shop-1", "shop-2", "shop-3"]
    _ids(catalog)
    assert TableName.DELETED_RESTORE_POINTS not in opened  # no tombstone file: nothing to open
    # another writer (a fresh Catalog on the same storage) adds a tombstone: the next read sees it
    Catalog(catalog.storage, cache_dir=catalog.cache_dir.parent).add_deletion(
        DeletedRestorePoint("shop-3", "shop", WHEN, "retention"))
    opened.clear()
    assert _ids(catalog) == ["shop-0", "shop-1", "shop-2"]
    assert _ids(catalog) == ["shop-0", "shop-1", "shop-2"]
    catalog.read(TableName.RESTORE_POINT_VOLUMES)
    assert opened.count(TableName.DELETED_RESTORE_POINTS) == 1
