"""Child processes of the test bed: started in their own process group, logged to a file,
always stopped (terminate, then kill) — also when the parent is interrupted."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 the kernel considers free right now (held open together, so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    return free_ports(1)[0]


class ManagedProcess:
    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, *,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
        _live.add(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}; "
                               f"last lines of {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        _live.discard(self)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               processes: Sequence[ManagedProcess] = (), interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for p in processes:
            p.check_alive()
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {p.name} ---\n{p.log_tail()}" for p in processes)
            raise TimeoutError(f"{what} not ready within {timeout:.0f}s{tails}")
        time.sleep(interval)


@atexit.register
def _stop_all() -> None:
    for p in list(_live):
        p.stop(timeout=3)
