"""kill -9 of backups and prunes at random moments (slow: ~1 minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .crash_loop import run_crash_loop


@pytest.mark.slow
def test_kill_9_backups_and_prunes(tmp_path: Path) -> None:
    counts = run_crash_loop(tmp_path, iterations=32, seed=3, log=False)
    assert counts["killed"] >= 10
    assert counts["restored"] >= 2
    # a killed prune's lock is stale at once (its process is gone on this host): no prune is refused
    assert counts.get("refused", 0) == 0, counts
