"""Port reservation for test beds: distinct across threads and processes, released on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kubekeep import process
from kubekeep.process import PortError, reserve_ports

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def small_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A private 10-port range and lock directory, so the test sees every owner of every port."""
    low = 24000 + (os.getpid() % 500) * 10
    monkeypatch.setenv(process.PORT_RANGE_ENV, f"{low}-{low + 9}")
    monkeypatch.setenv(process.PORT_LOCK_DIR_ENV, str(tmp_path / "locks"))
    return low, low + 9


def test_reservations_in_threads_are_disjoint_and_cover_the_range(small_range: tuple[int, int]) -> None:
    low, high = small_range
    with ThreadPoolExecutor(5) as pool:
        reservations = list(pool.map(lambda _: reserve_ports(2), range(5)))
    ports = [p for r in reservations for p in r.ports]
    assert sorted(ports) == list(range(low, high + 1))  # ten distinct ports: each handed out once
    with pytest.raises(PortError, match="no 1 free ports"):
        reserve_ports(1)
    reservations[0].release()
    again = reserve_ports(2)
    assert sorted(again.ports) == sorted(reservations[0].ports)
    for r in [again, *reservations[1:]]:
        r.release()


def test_ports_held_by_another_process_are_skipped_until_it_dies(small_range: tuple[int, int]) -> None:
    low, high = small_range
    code = ("import sys; from kubekeep.process import reserve_ports\n"
            "r = reserve_ports(6); print(' '.join(map(str, r.ports)), flush=True); sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ))
    try:
        assert child.stdout is not None
        theirs = {int(p) for p in child.stdout.readline().split()}
        assert len(theirs) == 6
        with pytest.raises(PortError):
            reserve_ports(5)
        mine = reserve_ports(4)
        assert set(mine.ports) == set(range(low, high + 1)) - theirs
        mine.release()
    finally:
        child.send_signal(signal.SIGKILL)  # no clean-up code runs: the kernel drops its locks
        child.wait(10)
    everything = reserve_ports(10)
    assert sorted(everything.ports) == list(range(low, high + 1))
    everything.release()


def test_a_port_something_listens_on_is_skipped(small_range: tuple[int, int]) -> None:
    low, high = small_range
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", low + 3))
        listener.listen()
        with pytest.raises(PortError):
            reserve_ports(10)
        r = reserve_ports(9)
        assert low + 3 not in r.ports
        r.release()


def test_the_ephemeral_range_is_never_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(process.PORT_RANGE_ENV, "40000-40009")  # inside Linux's default 32768-60999
    monkeypatch.setenv(process.PORT_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(process, "_ephemeral_range", lambda: (32768, 60999))
    with pytest.raises(PortError, match="ephemeral"):
        reserve_ports(1)


@pytest.mark.parametrize("raw", ["abc", "30000", "100-200", "2000-1000"])
def test_a_bad_port_range_is_one_clear_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(process.PORT_RANGE_ENV, raw)
    with pytest.raises(PortError, match=process.PORT_RANGE_ENV):
        reserve_ports(1)
