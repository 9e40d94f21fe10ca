"""The signals and signal_acks tables: rows, queries (suspect_points, last_clean_point), compaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kubekeep.catalog import (
    Catalog,
    SignalAck,
    SignalRow,
    TableName,
    acknowledged_points,
    last_clean_point,
    list_signals,
    suspect_points,
    verified_points,
)
from kubekeep.catalog.records import CatalogRecordError
from kubekeep.signals import ObjectSignals, PointSignals, VolumeSignals, points_from_rows, signal_rows

from .factories import T0, make_point, make_volumes


def add_point(catalog: Catalog, n: int, *, app: str = "shop", status: str = "succeeded",
              suspect: bool | None = False) -> str:
    """A restore point at hour ``n``; with signals unless ``suspect`` is None."""
    point_id = f"{app}-{n:03d}"
    catalog.add_restore_point(make_point(point_id, app=app, hours=n, status=status), (), make_volumes(point_id))
    if suspect is not None:
        finished = (T0 + timedelta(hours=n, minutes=5)).isoformat()
        vol = VolumeSignals(namespace="shop", pvc="data", snapshot_id=f"s{n}", previous_snapshot_id=f"s{n - 1}",
                            files=100, previous_files=100, files_deleted=60 if suspect else 1,
                            new_extensions=["locked"], extensions={"txt": 40, "locked": 60})
        objs = ObjectSignals(previous_point_id=f"{app}-{n - 1:03d}", objects=10, previous_objects=12, deleted=2,
                             previous_by_kind={"Secret": 2}, deleted_by_kind={"Secret": 2}, examples=["Secret a/b"])
        signals = PointSignals(restore_point_id=point_id, app=app, finished_at=finished,
                               previous_point_id=f"{app}-{n - 1:03d}", volumes=[vol], objects=objs,
                               score=30.0 if suspect else 0.5, suspect=suspect, threshold=6.0,
                               reasons=["volume shop/data: files deleted 60.0 %"] if suspect else [],
                               subject_scores={"shop/data": 30.0 if suspect else 0.5}, baseline=["x", "y"],
                               computed_at=finished, seconds=0.1)
        catalog.add_signals(signal_rows(signals))
    return point_id


def ack(catalog: Catalog, point_id: str, app: str = "shop") -> bool:
    return catalog.add_signal_ack(SignalAck(point_id, app, T0 + timedelta(days=30), "alice", "a migration"))


def test_rows_round_trip_through_the_catalog(catalog: Catalog) -> None:
    add_point(catalog, 1, suspect=True)
    rows = list_signals(catalog, app="shop")
    assert [(r.subject, r.suspect) for r in rows] == [("", True), ("shop/data", True)]
    (back,) = points_from_rows(rows)
    assert back.suspect and back.score == 30.0 and back.baseline == ["x", "y"]
    assert back.objects is not None and back.objects.deleted_by_kind == {"Secret": 2}
    assert back.volumes[0].files_deleted == 60 and back.volumes[0].extensions == {"txt": 40, "locked": 60}
    assert back.volumes[0].new_extensions == ["locked"]


def test_suspect_points_and_acknowledgements(catalog: Catalog) -> None:
    add_point(catalog, 1)
    bad = add_point(catalog, 2, suspect=True)
    other = add_point(catalog, 3, app="blog", suspect=True)
    assert suspect_points(catalog) == {bad, other}
    assert suspect_points(catalog, "shop") == {bad}
    assert ack(catalog, bad) is True
    assert ack(catalog, bad) is False  # immutable: acknowledged once
    assert suspect_points(catalog, "shop") == set() and acknowledged_points(catalog) == {bad}
    assert suspect_points(catalog) == {other}


def test_last_clean_point_is_before_the_newest_suspect_point(catalog: Catalog) -> None:
    assert last_clean_point(catalog, "shop") is None
    add_point(catalog, 1)
    p2 = add_point(catalog, 2)
    add_point(catalog, 3, status="failed")
    assert last_clean_point(catalog, "shop") == p2
    add_point(catalog, 4, suspect=None)  # not scored: not suspect, and not proven clean either
    assert last_clean_point(catalog, "shop") == p2
    bad = add_point(catalog, 5, suspect=True)
    add_point(catalog, 6)  # after the attack: its own changes look normal, its data does not
    add_point(catalog, 7)
    assert last_clean_point(catalog, "shop") == p2
    ack(catalog, bad)  # a false positive after all
    assert last_clean_point(catalog, "shop") == "shop-007"
    assert last_clean_point(catalog, "blog") is None


def test_no_verifications_table_means_nothing_is_verified(catalog: Catalog) -> None:
    add_point(catalog, 1)
    assert verified_points(catalog) == {} and verified_points(catalog, "shop") == {}


def test_compaction_merges_signal_files(catalog: Catalog) -> None:
    for n in range(1, 5):
        add_point(catalog, n, suspect=n == 3)
    ack(catalog, "shop-003")
    results = {r.table: r for r in catalog.compact()}
    assert len(results[TableName.SIGNALS].merged_keys) == 4
    assert [r.restore_point_id for r in list_signals(catalog, volumes=False)] == [
        "shop-004", "shop-003", "shop-002", "shop-001"]
    assert list_signals(catalog, limit_points=2)[-1].restore_point_id == "shop-003"
    assert acknowledged_points(catalog) == {"shop-003"}


def test_rows_are_validated() -> None:
    with pytest.raises(CatalogRecordError, match="timezone-aware"):
        SignalRow("p1", "", "shop", T0.replace(tzinfo=None), 0.0, False, 6.0)
    with pytest.raises(CatalogRecordError, match="not valid"):
        SignalAck("bad id!", "shop", T0)
