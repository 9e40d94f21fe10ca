"""The rows a DR copy records in the source's catalog (kubekeep.drcopy.copy_records)."""

from __future__ import annotations

from datetime import UTC, datetime

from kubekeep.drcopy import CopyMode, PointCopy, copy_records

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_points_held_at_the_destination_are_recorded_failed_ones_are_not() -> None:
    results = [PointCopy("shop-a", "shop", "copied", locked_until="2026-12-30T00:00:00+00:00"),
               PointCopy("shop-b", "shop", "skipped"),
               PointCopy("shop-c", "shop", "failed", error="pack damaged")]
    records = copy_records(results, "s3://dr/kubekeep", CopyMode.INDEPENDENT, now=NOW)
    assert [(r.restore_point_id, r.destination, r.mode, r.copied_at) for r in records] == [
        ("shop-a", "s3://dr/kubekeep", "independent", NOW), ("shop-b", "s3://dr/kubekeep", "independent", NOW)]
    assert records[0].retain_until == datetime(2026, 12, 30, tzinfo=UTC)
    assert records[1].retain_until is None
