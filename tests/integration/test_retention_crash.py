"""kill -9 of retention runs in prune (10 times) and in expiry: the repository stays consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from .retention_crash import run_retention_crash_loop


@pytest.mark.slow
def test_retention_killed_in_prune_ten_times_leaves_a_consistent_repository(tmp_path: Path) -> None:
    counts = run_retention_crash_loop(tmp_path, kills=10, seed=5, log=False)
    # the loop asserts check after every run, and at the end check --read-data, catalog = records,
    # every listed point restores, no orphan snapshot, and a rebuilt catalog agrees
    assert counts["killed_in_prune"] == 10
    assert counts["restored"] >= 3
