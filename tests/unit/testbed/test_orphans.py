"""A test-bed process whose owner died (kill -9 of a test session) is stopped by the next test bed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubekeep.process import ManagedProcess

OWNER = """
import sys, time
from pathlib import Path
from kubekeep.process import ManagedProcess
p = ManagedProcess("sleeper", ["sleep", "600"], Path(sys.argv[1]))
print(p.proc.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_children_of_a_killed_owner_are_reaped_by_the_next_test_bed(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[3])
    assert owner.stdout is not None
    child = int(owner.stdout.readline())
    assert _alive(child)
    os.kill(owner.pid, signal.SIGKILL)  # the owner dies without stopping its child
    owner.wait()
    assert _alive(child)  # orphaned: nothing stopped it

    other = ManagedProcess("next", ["sleep", "5"], tmp_path)  # the next test bed starts something
    try:
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the orphan of a dead test bed is still running"
    finally:
        other.stop()


def test_a_live_owners_children_are_left_alone(tmp_path: Path) -> None:
    first = ManagedProcess("first", ["sleep", "30"], tmp_path)
    try:
        second = ManagedProcess("second", ["sleep", "5"], tmp_path)
        second.stop()
        assert first.alive()
    finally:
        first.stop()
