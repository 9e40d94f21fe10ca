from __future__ import annotations

from pathlib import Path

import pytest

from kubekeep.catalog import (
    Catalog,
    CatalogError,
    RestorePointSummary,
    TableName,
    latest_restore_point,
    list_restore_points,
    rebuild_catalog,
    restore_points_containing,
)
from kubekeep.repo.storage import FilesystemStorage

from .factories import make_objects, make_point, make_volumes


def _summaries(n: int) -> list[RestorePointSummary]:
    return [
        RestorePointSummary(make_point(f"rp{i}", hours=i), make_objects(f"rp{i}"), make_volumes(f"rp{i}"))
        for i in range(n)
    ]


def test_rebuild_writes_sorted_parts(storage: FilesystemStorage, tmp_path: Path) -> None:
    result = rebuild_catalog(storage, iter(_summaries(7)), cache_dir=tmp_path / "c", batch_points=3)
    assert result.points_written == 7 and result.points_skipped == 0
    assert len(result.keys_written) == 9  # 3 batches x 3 tables
    catalog = Catalog(storage, cache_dir=tmp_path / "c2")
    assert len(list_restore_points(catalog)) == 7
    latest = latest_restore_point(catalog, "shop")
    assert latest is not None and latest.id == "rp6"
    assert len(restore_points_containing(catalog, kind="ConfigMap", namespace="shop", name="web-config")) == 7
    assert catalog.read(TableName.RESTORE_POINT_VOLUMES).num_rows == 7


def test_rebuild_is_idempotent_and_keeps_existing(storage: FilesystemStorage, tmp_path: Path) -> None:
    catalog = Catalog(storage, cache_dir=tmp_path / "c")
    catalog.add_restore_point(make_point("rp0"), make_objects("rp0"))
    first = rebuild_catalog(storage, _summaries(4), cache_dir=tmp_path / "c")
    assert (first.points_written, first.points_skipped) == (3, 1)
    second = rebuild_catalog(storage, _summaries(4), cache_dir=tmp_path / "c")
    assert (second.points_written, second.points_skipped, second.keys_written) == (0, 4, ())
    assert [p.id for p in list_restore_points(catalog, newest_first=False)] == ["rp0", "rp1", "rp2", "rp3"]


def test_rebuild_refuses_mixed_rows(storage: FilesystemStorage, tmp_path: Path) -> None:
    bad = RestorePointSummary(make_point("rp1"), make_objects("rp2"))
    with pytest.raises(CatalogError, match="rp2"):
        rebuild_catalog(storage, [bad], cache_dir=tmp_path / "c")
