"""Quantities (exact), and the downtime clock and its catalog record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kubekeep.migrate import CutoverStage, Downtime, DowntimeClock, QuantityError, format_bytes, parse_quantity


@pytest.mark.parametrize(("text", "value"), [
    ("1Gi", 2**30), ("1.5Gi", 3 * 2**29), ("500M", 500 * 10**6), ("1e3", 1000), ("1E-2", Decimal("0.01")),
    ("250m", Decimal("0.25")), ("2k", 2000), ("0", 0), (".5Ki", 512), ("+3Mi", 3 * 2**20), ("7", 7),
])
def test_parse_quantity(text: str, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1GB", "1 Gi", "1Gi2", "abc", "--1"])
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_format_bytes() -> None:
    assert (format_bytes(2**30), format_bytes(1536), format_bytes(10), format_bytes(3 * 2**29)) == \
        ("1 GiB", "1.5 KiB", "10 B", "1.5 GiB")


class _Clock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = datetime(2025, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float, wall_jump: float = 0.0) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds + wall_jump)


def test_downtime_runs_from_quiesce_to_ready_on_the_monotonic_clock() -> None:
    t = _Clock()
    clock = DowntimeClock(monotonic=lambda: t.mono, now=lambda: t.wall)
    with pytest.raises(RuntimeError):
        clock.result()
    clock.start()
    with clock.stage(CutoverStage.QUIESCE):
        t.advance(2.0)
    with clock.stage(CutoverStage.FINAL_BACKUP):
        t.advance(1.5, wall_jump=3600)  # the wall clock steps an hour: the durations do not
    with pytest.raises(ValueError), clock.stage(CutoverStage.RESTORE):
        t.advance(0.5)
        raise ValueError("a failed stage still took its time")
    t.advance(0.25)
    clock.ready()
    downtime = clock.result()
    assert downtime.seconds == pytest.approx(4.25)
    assert downtime.stage_seconds() == {"quiesce": 2.0, "final-backup": 1.5, "restore": 0.5}
    assert downtime.ready_at == downtime.started_at + timedelta(seconds=4.25)
    assert downtime.ratio_to(42.5) == pytest.approx(0.1)
    assert Downtime.from_row(downtime.to_row()) == downtime
    assert Downtime.from_dict(downtime.to_dict()) == downtime
    assert downtime.summary().startswith("downtime 4.25s (quiesce 2.00s, final-backup 1.50s")


def test_downtime_begins_at_the_quiesce_inside_the_first_stage() -> None:
    """A cutover's final backup takes its manifests while the source still serves, then quiesces: the downtime
    is counted from the quiesce time the backup recorded, the stages keep their whole length."""
    t = _Clock()
    clock = DowntimeClock(monotonic=lambda: t.mono, now=lambda: t.wall)
    with pytest.raises(RuntimeError):
        clock.began_at(t.wall)
    clock.start()
    with clock.stage(CutoverStage.FINAL_BACKUP):
        t.advance(3.0)  # hooks and manifests: the source serves
        quiesced_at = t.wall
        t.advance(2.0)
    clock.began_at(quiesced_at)
    with clock.stage(CutoverStage.RESTORE):
        t.advance(1.0)
    clock.ready()
    downtime = clock.result()
    assert downtime.seconds == pytest.approx(3.0)
    assert downtime.started_at == quiesced_at
    assert downtime.stage_seconds() == {"final-backup": 5.0, "restore": 1.0}
    with pytest.raises(ValueError, match="before the clock"):
        clock.began_at(quiesced_at - timedelta(seconds=10))
    with pytest.raises(ValueError, match="after"):
        clock.began_at(t.wall + timedelta(seconds=10))


def test_a_target_that_never_became_ready_has_no_end() -> None:
    clock = DowntimeClock()
    clock.start()
    with pytest.raises(RuntimeError):
        clock.start()
    result = clock.result()
    assert result.seconds is None and result.ready_at is None and "never became ready" in result.summary()
    assert Downtime.from_dict(result.to_dict()) == result
    with pytest.raises(RuntimeError), DowntimeClock().stage("x"):
        pass
