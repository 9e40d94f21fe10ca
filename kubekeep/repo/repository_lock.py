"""Lock objects with expiry and process identity (docs/repository-format.md, "Concurrency").

Storage never overwrites, so a refresh writes ``<owner>-<seq+1>`` and then deletes
``<owner>-<seq>``; readers group lock objects by owner.

A lock is stale when it has expired, or when it was taken on this machine (same
host name *and* same kernel boot id), in this pid namespace, by a process that no
longer runs (its pid is gone, or is now another process: the start time differs).
Stale locks are ignored, and removed by prune and `repo unlock`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import blake3

from .crypto import FLAG_RAW, BlobType, Envelope
from .errors import IntegrityError
from .format import LOCKS_PREFIX
from .storage import ObjectNotFoundError, Storage, StorageError

# -- who is running -----------------------------------------------------------------------------


@cache
def boot_id() -> str | None:
    """This kernel boot's id (Linux): tells two machines with one host name apart, and a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


@cache
def pid_namespace() -> str | None:
    """This process's pid namespace (containers on one machine reuse pids)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    try:
        # the command name (field 2) is in parentheses and may contain spaces and ')'
        fields = stat[stat.rindex(b")") + 2:].split()
        return int(fields[19])
    except (ValueError, IndexError):
        return None


def _process_gone(pid: int, started: int | None) -> bool:
    if started is not None and boot_id() is not None:
        now_started = process_start(pid)
        return now_started is None or now_started != started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, owned by someone else
    return False


# -- lock objects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockInfo:
    key: str
    owner: str
    kind: str
    host: str
    pid: int
    #: when this lock object was written (refreshes write a new one)
    created: datetime
    expires: datetime
    #: when the operation took its first lock (kept across refreshes); None from older writers
    started: datetime | None = None
    pid_start: int | None = None
    boot_id: str | None = None
    pid_ns: str | None = None

    def stale(self, now: datetime | None = None) -> str | None:
        """Why this lock no longer protects anything, or None while it is live."""
        now = now or datetime.now(UTC)
        if self.expires <= now:
            return f"expired at {self.expires.isoformat(timespec='seconds')}"
        if self.on_this_machine() and _process_gone(self.pid, self.pid_start):
            return f"its process {self.pid} on {self.host} is gone"
        return None

    def live(self, now: datetime | None = None) -> bool:
        return self.stale(now) is None

    def on_this_machine(self) -> bool:
        """Same host name, same kernel boot and same pid namespace: its pid means a process here."""
        return (self.host == socket.gethostname() and self.boot_id is not None and self.boot_id == boot_id()
                and self.pid_ns is not None and self.pid_ns == pid_namespace())

    def describe(self) -> str:
        return (f"{self.kind} lock of process {self.pid} on {self.host}, started "
                f"{(self.started or self.created).isoformat(timespec='seconds')}")


def _lock_ident(key: str) -> bytes:
    return blake3.blake3(key.encode("ascii")).digest()


def _parse(key: str, doc: Any) -> LockInfo:
    def when(name: str) -> datetime | None:
        value = doc.get(name)
        return datetime.fromisoformat(value) if value else None

    pid_start = doc.get("pid_start")
    created, expires = when("created"), when("expires")
    if created is None or expires is None:
        raise KeyError("created/expires")
    return LockInfo(key, str(doc["owner"]), str(doc["kind"]), str(doc["host"]), int(doc["pid"]),
                    created, expires, when("started"),
                    int(pid_start) if pid_start is not None else None,
                    doc.get("boot_id"), doc.get("pid_ns"))


def read_locks(storage: Storage, envelope: Envelope) -> tuple[list[LockInfo], list[str]]:
    """All readable lock objects, and the keys of objects that failed authentication."""
    locks: list[LockInfo] = []
    bad: list[str] = []
    for info in storage.list(LOCKS_PREFIX):
        try:
            raw = storage.get(info.key)
        except StorageError:
            continue  # deleted by its owner's refresh or release
        try:
            _, payload = envelope.open(BlobType.LOCK, _lock_ident(info.key), raw, what=info.key)
            locks.append(_parse(info.key, json.loads(payload)))
        except (IntegrityError, ValueError, KeyError, TypeError, AttributeError):
            bad.append(info.key)
    return locks, bad


@dataclass
class UnlockResult:
    removed: list[str]
    kept: list[str]


def remove_locks(storage: Storage, envelope: Envelope, *, remove_all: bool = False,
                 keep_owner: str | None = None) -> UnlockResult:
    """Delete stale locks and lock objects that fail authentication (every lock with ``remove_all``).

    ``keep_owner`` is the caller's own lock, never removed. Returns one line per lock."""
    locks, bad = read_locks(storage, envelope)
    removed, kept = [], []
    now = datetime.now(UTC)
    for key in bad:
        with contextlib.suppress(ObjectNotFoundError):
            storage.delete(key)
        removed.append(f"{key}: unreadable (not a lock of this repository)")
    for lock in locks:
        if lock.owner == keep_owner:
            continue
        reason = lock.stale(now)
        if reason is None and not remove_all:
            kept.append(f"{lock.describe()}: live")
            continue
        storage.delete(lock.key)
        removed.append(f"{lock.describe()}: {reason or 'removed on request'}")
    return UnlockResult(removed, kept)


class RepositoryLock:
    """A held lock, refreshed by a daemon thread until released."""

    def __init__(self, storage: Storage, envelope: Envelope, kind: str, ttl: float) -> None:
        self.storage = storage
        self.envelope = envelope
        self.kind = kind
        self.ttl = ttl
        self.owner = secrets.token_hex(16)
        self.started = datetime.now(UTC)
        self._seq = 0
        self._key: str | None = None
        self._expires = datetime.now(UTC)
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self.refresh_error: Exception | None = None

    def _write(self) -> None:
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl)
        key = f"{LOCKS_PREFIX}{self.owner}-{self._seq:08x}"
        pid = os.getpid()
        doc = {"owner": self.owner, "kind": self.kind, "host": socket.gethostname(), "pid": pid,
               "pid_start": process_start(pid), "boot_id": boot_id(), "pid_ns": pid_namespace(),
               "started": self.started.isoformat(), "created": now.isoformat(), "expires": expires.isoformat()}
        data = self.envelope.seal(BlobType.LOCK, _lock_ident(key), FLAG_RAW, json.dumps(doc).encode())
        self.storage.put(key, data)
        old, self._key, self._expires = self._key, key, expires
        self._seq += 1
        if old is not None:
            self.storage.delete(old)

    def acquire(self) -> RepositoryLock:
        self._write()
        self._thread = threading.Thread(target=self._refresh_loop, name=f"kubekeep-lock-{self.kind}",
                                        daemon=True)
        self._thread.start()
        return self

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self._mutex:
                    if not self._stop.is_set():
                        self._write()
            except Exception as exc:  # noqa: BLE001 - recorded; the owner checks before committing
                self.refresh_error = exc

    def valid(self) -> bool:
        """True while the lock has not expired (a long refresh failure makes it stale)."""
        return datetime.now(UTC) < self._expires

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._mutex:
            if self._key is not None:
                with contextlib.suppress(StorageError):  # an undeleted lock expires by itself
                    self.storage.delete(self._key)
                self._key = None

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
