"""The restore-point index rows and pick-list choices (kubekeep.ui.index)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kubekeep.catalog import (
    POINT_SUBJECT,
    Catalog,
    DrCopyRecord,
    RestorePoint,
    SignalAck,
    SignalRow,
    VerificationRecord,
    list_dr_copies,
)
from kubekeep.ui import human_bytes, index_rows, point_choice, point_from_choice, restore_point_rows
from tests.unit.catalog.factories import T0, make_point


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (10 << 30, "10 GiB"),
    ((1 << 20) * 1000, "1000 MiB"), (5 << 50, "5 PiB"), (3 << 60, "3072 PiB"),
])
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_human_bytes_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        human_bytes(-1)


def _signal(point: RestorePoint, score: float, *, suspect: bool) -> SignalRow:
    return SignalRow(restore_point_id=point.id, subject=POINT_SUBJECT, app=point.app, finished_at=point.finished_at,
                     score=score, suspect=suspect, threshold=0.5)


def _verification(point: RestorePoint, vid: str, result: str, minutes: int) -> VerificationRecord:
    start = point.finished_at + timedelta(minutes=minutes)
    return VerificationRecord(id=vid, restore_point_id=point.id, app=point.app, started_at=start,
                              finished_at=start + timedelta(minutes=1), result=result, sandbox_cluster="sandbox")


def test_rows_show_verdicts_locks_and_copies_from_catalog_rows(catalog: Catalog) -> None:
    good = make_point("shop-a", hours=2)
    bad = make_point("shop-b", hours=1, status="partially_failed")
    plain = replace(make_point("shop-c"), retain_until=None, stored_bytes=0)
    acked = make_point("shop-d", hours=-1)
    other = make_point("cart-a", app="cart", hours=3)
    for p in (good, bad, plain, acked, other):
        catalog.add_restore_point(p, [], [])
    # shop-a: failed, then passed (newest verdict wins); shop-b: passed, then failed; shop-c: only an error
    for v in (_verification(good, "v1", "failed", 10), _verification(good, "v2", "passed", 20),
              _verification(bad, "v3", "passed", 10), _verification(bad, "v4", "failed", 20),
              _verification(plain, "v5", "error", 10), _verification(other, "v6", "passed", 10)):
        catalog.add_verification(v)
    catalog.add_signals([_signal(good, 0.12, suspect=False)])
    catalog.add_signals([_signal(bad, 0.91, suspect=True)])
    catalog.add_signals([_signal(acked, 0.77, suspect=True)])
    catalog.add_signal_ack(SignalAck(restore_point_id=acked.id, app="shop", acknowledged_at=T0 + timedelta(days=1)))
    catalog.add_dr_copy(DrCopyRecord(restore_point_id=good.id, app="shop", destination="s3://dr/kubekeep",
                                     mode="replica", copied_at=T0 + timedelta(hours=3)))
    catalog.add_dr_copy(DrCopyRecord(restore_point_id=good.id, app="shop", destination="s3://dr2/kubekeep",
                                     mode="independent", copied_at=T0 + timedelta(hours=4)))
    catalog.add_dr_copy(DrCopyRecord(restore_point_id=other.id, app="cart", destination="s3://dr/kubekeep",
                                     mode="replica", copied_at=T0 + timedelta(hours=4)))
    now = T0 + timedelta(days=30, hours=1, minutes=30)  # after shop-b's lock ended, before shop-a's

    rows = index_rows(catalog, "shop", now=now)

    assert [r.id for r in rows] == ["shop-a", "shop-b", "shop-c", "shop-d"]
    a, b, c, d = rows
    assert a.time == "2025-01-01 02:05 UTC"
    assert a.size == "1000 B (400 B new)" and c.size == "1000 B"
    assert a.objects == "2 objects, 1 volume"
    assert (a.verified, b.verified, c.verified, d.verified) == ("passed", "FAILED", "—", "—")
    assert a.suspect == "no (score 0.12)"
    assert b.suspect == "SUSPECT (score 0.91 >= 0.50)"
    assert c.suspect == "—"
    assert d.suspect == "acknowledged (score 0.77)"
    assert a.locked_until == "2025-01-31 02:00 UTC"
    assert b.locked_until == "2025-01-31 01:00 UTC (expired)"
    assert c.locked_until == "—"
    assert a.dr_copies == "s3://dr/kubekeep, s3://dr2/kubekeep" and b.dr_copies == "—"
    assert b.status == "partially_failed: volume export failed"
    assert set(a.to_dict()) == {"id", "time", "status", "size", "objects", "verified", "suspect", "locked_until",
                                "dr_copies"}
    assert [r.id for r in index_rows(catalog, "shop", limit=2, now=now)] == ["shop-a", "shop-b"]
    (cart,) = index_rows(catalog, "cart", now=now)
    assert (cart.verified, cart.dr_copies, cart.suspect) == ("passed", "s3://dr/kubekeep", "—")
    assert index_rows(catalog, "nobody") == []


def test_recording_the_same_copy_twice_keeps_one_row(catalog: Catalog) -> None:
    point = make_point("shop-a")
    catalog.add_restore_point(point, [], [])
    copy = DrCopyRecord(restore_point_id=point.id, app="shop", destination="s3://dr/kubekeep", mode="replica",
                        copied_at=T0)
    catalog.add_dr_copy(copy)
    catalog.add_dr_copy(replace(copy, copied_at=T0 + timedelta(hours=1)))  # a re-run: the point was there
    assert list_dr_copies(catalog, app="shop") == [copy]
    assert list_dr_copies(catalog, restore_point_ids=["other"]) == []


def test_rows_without_verdicts_show_dashes() -> None:
    (row,) = restore_point_rows([make_point("shop-a")], now=T0)
    assert (row.verified, row.suspect, row.dr_copies) == ("—", "—", "—")


def test_choices_round_trip_to_the_id() -> None:
    first, second = make_point("shop-20250101T000000Z-abc123"), make_point("shop-b", status="partially_failed")
    rows = restore_point_rows([first, second], verified={first.id: True},
                              signals=[_signal(first, 0.1, suspect=False), _signal(second, 0.9, suspect=True)],
                              now=T0)
    choices = [point_choice(r) for r in rows]
    assert choices[0] == "shop-20250101T000000Z-abc123 (2025-01-01 00:05 UTC, verified passed)"
    assert choices[1] == "shop-b (2025-01-01 00:05 UTC, suspect, partially_failed)"
    assert [point_from_choice(c) for c in choices] == ["shop-20250101T000000Z-abc123", "shop-b"]
    assert point_from_choice("shop-b") == "shop-b"
    with pytest.raises(ValueError, match="no restore point"):
        point_from_choice("  ")
