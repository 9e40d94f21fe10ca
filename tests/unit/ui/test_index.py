"""The restore-point index rows and pick-list choices (kubekeep.ui.index)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kubekeep.ui import human_bytes, point_choice, point_from_choice, restore_point_rows
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


def test_rows_show_verdicts_locks_and_copies() -> None:
    good = make_point("shop-a", hours=2)
    bad = make_point("shop-b", hours=1, status="partially_failed")
    plain = replace(make_point("shop-c"), retain_until=None, stored_bytes=0)
    now = T0 + timedelta(days=30, hours=1, minutes=30)  # after shop-b's lock ended, before shop-a's
    rows = restore_point_rows([good, bad, plain], verified={"shop-a": True, "shop-b": False}, suspect={"shop-b"},
                              copies={"shop-a": ["s3://dr/kubekeep"]}, now=now)
    assert [r.id for r in rows] == ["shop-a", "shop-b", "shop-c"]
    a, b, c = rows
    assert a.time == "2025-01-01 02:05 UTC"
    assert a.size == "1000 B (400 B new)" and c.size == "1000 B"
    assert a.objects == "2 objects, 1 volume"
    assert (a.verified, b.verified, c.verified) == ("passed", "FAILED", "—")
    assert (a.suspect, b.suspect) == ("", "SUSPECT")
    assert a.locked_until == "2025-01-31 02:00 UTC"
    assert b.locked_until == "2025-01-31 01:00 UTC (expired)"
    assert c.locked_until == "—"
    assert a.dr_copies == "s3://dr/kubekeep" and b.dr_copies == "—"
    assert b.status == "partially_failed: volume export failed"
    assert set(a.to_dict()) == {"id", "time", "status", "size", "objects", "verified", "suspect", "locked_until",
                                "dr_copies"}


def test_rows_without_verdicts_show_dashes() -> None:
    (row,) = restore_point_rows([make_point("shop-a")], now=T0)
    assert (row.verified, row.suspect, row.dr_copies) == ("—", "", "—")


def test_choices_round_trip_to_the_id() -> None:
    rows = restore_point_rows([make_point("shop-20250101T000000Z-abc123"),
                               make_point("shop-b", status="partially_failed")],
                              verified={"shop-20250101T000000Z-abc123": True}, suspect={"shop-b"}, now=T0)
    choices = [point_choice(r) for r in rows]
    assert choices[0] == "shop-20250101T000000Z-abc123 (2025-01-01 00:05 UTC, verified passed)"
    assert choices[1] == "shop-b (2025-01-01 00:05 UTC, suspect, partially_failed)"
    assert [point_from_choice(c) for c in choices] == ["shop-20250101T000000Z-abc123", "shop-b"]
    assert point_from_choice("shop-b") == "shop-b"
    with pytest.raises(ValueError, match="no restore point"):
        point_from_choice("  ")
