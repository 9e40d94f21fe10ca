"""An in-memory Storage that supports retention, for exercising Object Lock paths in unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from kubekeep.repo.storage import (
    ObjectExistsError,
    ObjectInfo,
    ObjectLockedError,
    ObjectNotFoundError,
    RetentionMode,
    Storage,
)
from kubekeep.repo.storage.base import check_key


class MemoryStorage(Storage):
    supports_retention = True
    url = "memory://"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.retention: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: tuple[RetentionMode, datetime] | None = None) -> None:
        with self._lock:
            if check_key(key) in self.objects:
                raise ObjectExistsError(key)
            self.objects[key] = bytes(data)
            if retention is not None:
                self.retention[key] = retention[1]

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFoundError(key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.get(key)[offset:offset + length]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix) and key in self.objects:
                yield ObjectInfo(key, len(self.objects[key]), None, self.retention.get(key))

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, len(self.get(key)), None, self.retention.get(key))

    def delete(self, key: str) -> None:
        with self._lock:
            until = self.retention.get(key)
            if until is not None and until > datetime.now(UTC):
                raise ObjectLockedError(key, until)
            self.objects.pop(key, None)

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        with self._lock:
            if key not in self.objects:
                raise ObjectNotFoundError(key)
            current = self.retention.get(key)
            if current is None or retain_until > current:
                self.retention[key] = retain_until
            return self.retention[key]
