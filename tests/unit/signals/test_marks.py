"""How scored points are shown: suspect, acknowledged, after-suspect, clean (kubekeep.signals.marks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubekeep.catalog import SignalRow
from kubekeep.signals import ACKNOWLEDGED, AFTER_SUSPECT, CLEAN, SUSPECT, point_marks

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _row(point: str, day: int, suspect: bool = False, app: str = "shop", subject: str = "") -> SignalRow:
    return SignalRow(point, subject, app, T0 + timedelta(days=day), 9.0 if suspect else 1.0, suspect, 6.0)


def test_points_after_an_unacknowledged_suspect_point_are_not_clean() -> None:
    rows = [_row("p1", 1), _row("p2", 2, suspect=True), _row("p2", 2, subject="ns/data"), _row("p3", 3),
            _row("q1", 4, app="other")]
    assert point_marks(rows, set()) == {"p1": CLEAN, "p2": SUSPECT, "p3": AFTER_SUSPECT, "q1": CLEAN}


def test_an_acknowledged_point_taints_nothing_and_the_newest_suspect_point_counts() -> None:
    rows = [_row("p1", 1, suspect=True), _row("p2", 2), _row("p3", 3, suspect=True), _row("p4", 4)]
    assert point_marks(rows, {"p1"}) == {"p1": ACKNOWLEDGED, "p2": CLEAN, "p3": SUSPECT, "p4": AFTER_SUSPECT}
    assert point_marks(rows, {"p1", "p3"}) == {"p1": ACKNOWLEDGED, "p2": CLEAN, "p3": ACKNOWLEDGED, "p4": CLEAN}
    # an older unacknowledged suspect point still taints what follows it
    assert point_marks(rows, {"p3"})["p2"] == AFTER_SUSPECT
