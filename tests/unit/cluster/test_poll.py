"""Polls start fast and slow down to their interval."""

from __future__ import annotations

from itertools import islice

import pytest

from kubekeep.cluster.poll import pauses


def test_pauses_start_fast_and_grow_to_the_interval() -> None:
    seen = list(islice(pauses(0.5), 12))
    assert seen[0] == pytest.approx(0.05)
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False))
    assert max(seen) == pytest.approx(0.5) and seen[-1] == pytest.approx(0.5)
    # the first second holds several polls (a fixed 0.5 s interval holds two)
    total, polls = 0.0, 0
    for pause in pauses(0.5):
        if total + pause > 1.0:
            break
        total, polls = total + pause, polls + 1
    assert polls >= 5


def test_an_interval_below_the_first_pause_is_kept() -> None:
    assert list(islice(pauses(0.01), 3)) == [0.01, 0.01, 0.01]
