"""Lock objects with expiry (docs/repository-format.md, "Concurrency").

Storage never overwrites, so a refresh writes ``<owner>-<seq+1>`` and then deletes
``<owner>-<seq>``; readers group lock objects by owner.
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

import blake3

from .crypto import FLAG_RAW, BlobType, Envelope
from .errors import IntegrityError
from .format import LOCKS_PREFIX
from .storage import Storage, StorageError


@dataclass(frozen=True)
class LockInfo:
    key: str
    owner: str
    kind: str
    host: str
    pid: int
    created: datetime
    expires: datetime

    def live(self, now: datetime | None = None) -> bool:
        return self.expires > (now or datetime.now(UTC))


def _lock_ident(key: str) -> bytes:
    return blake3.blake3(key.encode("ascii")).digest()


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
            doc = json.loads(payload)
            locks.append(LockInfo(info.key, str(doc["owner"]), str(doc["kind"]), str(doc["host"]),
                                  int(doc["pid"]), datetime.fromisoformat(doc["created"]),
                                  datetime.fromisoformat(doc["expires"])))
        except (IntegrityError, ValueError, KeyError, TypeError):
            bad.append(info.key)
    return locks, bad


class RepositoryLock:
    """A held lock, refreshed by a daemon thread until released."""

    def __init__(self, storage: Storage, envelope: Envelope, kind: str, ttl: float) -> None:
        self.storage = storage
        self.envelope = envelope
        self.kind = kind
        self.ttl = ttl
        self.owner = secrets.token_hex(16)
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
        doc = {"owner": self.owner, "kind": self.kind, "host": socket.gethostname(), "pid": os.getpid(),
               "created": now.isoformat(), "expires": expires.isoformat()}
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
