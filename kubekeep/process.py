"""Child processes (the test bed's servers, the CLI's temporary Prefect server): started in their own
process group, logged to a file, always stopped (terminate, then kill) — also when the parent is interrupted.

Ports come from :func:`reserve_ports`: any number of test beds may run at once, in
one process and in several, without two of them ever being handed the same port.

A test session killed with kill -9 cannot stop its children, and they would run on
for hours (etcd, apiservers, SeaweedFS). Every child is therefore registered with
its owner's pid and start time; whenever a test bed starts a process it first stops
the process groups of registered children whose owner is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()

#: where the test bed picks its ports: ``KUBEKEEP_TESTBED_PORTS=LOW-HIGH`` (inclusive)
PORT_RANGE_ENV = "KUBEKEEP_TESTBED_PORTS"
#: below Linux's default ephemeral range (32768-60999), so no outgoing connection of any
#: program on the machine is given one of these ports between our pick and the server's bind
DEFAULT_PORT_RANGE = (20000, 29999)
#: where the per-port lock files live (shared by every process of this user)
PORT_LOCK_DIR_ENV = "KUBEKEEP_TESTBED_PORT_LOCKS"


class PortError(RuntimeError):
    pass


def port_range() -> tuple[int, int]:
    raw = os.environ.get(PORT_RANGE_ENV)
    if not raw:
        return DEFAULT_PORT_RANGE
    try:
        low, high = (int(part) for part in raw.split("-", 1))
    except ValueError:
        raise PortError(f"{PORT_RANGE_ENV} must look like 20000-29999, not {raw!r}") from None
    if not 1024 <= low <= high <= 65535:
        raise PortError(f"{PORT_RANGE_ENV}: {raw!r} is not a range within 1024-65535")
    return low, high


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _lock_dir() -> Path:
    explicit = os.environ.get(PORT_LOCK_DIR_ENV)
    directory = Path(explicit) if explicit else Path(tempfile.gettempdir()) / f"kubekeep-ports-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _bindable(port: int) -> bool:
    """True if nothing listens on (or is bound to) 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like the servers themselves (Go and uvicorn set SO_REUSEADDR): TIME_WAIT is no obstacle
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortReservation:
    """Ports held for one owner until :meth:`release` (or until the owning process dies).

    Each port is claimed by an exclusive ``flock`` on ``<lock dir>/<port>``. flock locks
    belong to an open file, so they exclude other threads of this process as well as
    other processes, and the kernel drops them when the holder exits, however it exits:
    a crashed test bed never leaves ports reserved.
    """

    def __init__(self, ports: list[int], files: list[int]) -> None:
        self.ports = ports
        self._fds = files
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        return iter(self.ports)

    def __len__(self) -> int:
        return len(self.ports)

    def release(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the file drops its flock

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def reserve_ports(count: int) -> PortReservation:
    """Reserve ``count`` distinct free ports on 127.0.0.1 for as long as the caller holds them.

    A port is handed out only if no other reservation (in any process) holds it and
    nothing is bound to it. Release with ``reservation.release()`` after the servers
    using them have stopped.
    """
    low, high = port_range()
    eph_low, eph_high = _ephemeral_range()
    candidates = [p for p in range(low, high + 1) if not eph_low <= p <= eph_high]
    if len(candidates) < count:
        raise PortError(f"port range {low}-{high} has {len(candidates)} ports outside the ephemeral "
                        f"range {eph_low}-{eph_high}; {count} needed (set {PORT_RANGE_ENV})")
    directory = _lock_dir()
    start = random.randrange(len(candidates))  # noqa: S311 - spreads owners over the range, not security
    ports: list[int] = []
    fds: list[int] = []
    for i in range(len(candidates)):
        port = candidates[(start + i) % len(candidates)]
        fd = os.open(directory / str(port), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue  # another owner holds it
            raise
        if not _bindable(port):
            os.close(fd)
            continue
        ports.append(port)
        fds.append(fd)
        if len(ports) == count:
            return PortReservation(ports, fds)
    for fd in fds:
        os.close(fd)
    raise PortError(f"no {count} free ports left in {low}-{high} (set {PORT_RANGE_ENV})")


_held_for_process: list[PortReservation] = []


def free_ports(count: int) -> list[int]:
    """``count`` reserved ports, held until this process exits (prefer :func:`reserve_ports`,
    whose owner releases them when its servers stop)."""
    reservation = reserve_ports(count)
    _held_for_process.append(reservation)
    return list(reservation.ports)


def free_port() -> int:
    return free_ports(1)[0]


#: where children are registered with their owner (shared by every process of this user)
REGISTRY_DIR_ENV = "KUBEKEEP_TESTBED_REGISTRY"


def _registry_dir() -> Path:
    explicit = os.environ.get(REGISTRY_DIR_ENV)
    directory = Path(explicit) if explicit else Path(tempfile.gettempdir()) / f"kubekeep-procs-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a live process (None when it is gone or a zombie): pid plus start
    time names one process, whatever pid reuse happens later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def reap_orphans() -> int:
    """Stop the process groups of registered children whose owner is gone; return how many."""
    reaped = 0
    for record in _registry_dir().glob("*.child"):
        try:
            owner, owner_start, child, child_start = record.read_text().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(owner)) == owner_start:
            continue  # the owner lives and stops its children itself
        if _start_time(int(child)) == child_start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(child), signal.SIGKILL)
            reaped += 1
        record.unlink(missing_ok=True)
    return reaped


class ManagedProcess:
    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, *,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        reap_orphans()
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
        self._record = _registry_dir() / f"{self.proc.pid}.child"
        me = os.getpid()
        self._record.write_text(f"{me} {_start_time(me)} {self.proc.pid} {_start_time(self.proc.pid)}\n")
        self._stop_lock = threading.Lock()
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

    @property
    def pgid(self) -> int:
        """The process group of this child and everything it starts (the child leads it)."""
        return self.proc.pid

    def group_alive(self) -> bool:
        """True while any process of the group is left (the leader or something it started)."""
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the whole process group, kill it after ``timeout``; also reap stragglers
        (processes the child started, such as kwok's exec'd commands) once the leader is gone."""
        with self._stop_lock:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pgid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pgid, signal.SIGKILL)
                    # a killed process always ends, but not before its I/O in flight does (seen: SeaweedFS
                    # with ~2 GiB written, still there 5 s after SIGKILL, which then failed a benchmark's run)
                    self.proc.wait(KILLED_EXIT_SECONDS)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            self._log.close()
            self._record.unlink(missing_ok=True)
            _live.discard(self)


#: how long a process has to end after SIGKILL before stop() gives up on it
KILLED_EXIT_SECONDS = 60.0


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
