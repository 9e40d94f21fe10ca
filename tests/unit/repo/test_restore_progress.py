"""The restore's progress: throttled, and the last report is every byte written."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kubekeep.repo.protocols import PROGRESS_SECONDS
from kubekeep.repo.repository import Repository


def test_progress_is_throttled_and_ends_with_every_byte(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(30_000))  # ~8 chunks each with the tests' chunker
    sid = repo.backup(src).snapshot_id
    calls: list[int] = []
    started = time.monotonic()
    result = repo.restore(sid, tmp_path / "T", progress=lambda done, total, item: calls.append(done))
    took = time.monotonic() - started
    assert result.bytes == 30 * 30_000
    assert calls[-1] == result.bytes  # the end is reported, whatever the throttle skipped
    assert calls == sorted(calls)
    # not once per chunk (hundreds): at most every PROGRESS_SECONDS, and at the end
    assert len(calls) <= took / PROGRESS_SECONDS + 2, (len(calls), took)
