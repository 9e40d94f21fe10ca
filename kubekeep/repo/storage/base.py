"""The one interface every storage backend implements.

Semantics (the contract suite in tests/ checks each of them on every backend):

- Keys are '/'-separated relative paths of ASCII letters, digits and ``._-``;
  no empty segment, no ``..``, no leading '/'.
- ``put`` is put-if-absent: it never overwrites. Writing a key that exists
  raises :class:`ObjectExistsError` and leaves the stored object untouched.
  A reader never sees a partial object: an object is either fully there or
  absent (temp + fsync + rename on a filesystem, single PUT/complete multipart
  upload on S3).
- ``get``/``get_range`` raise :class:`ObjectNotFoundError` for a missing key;
  ``get_range`` past the end returns the bytes that exist (possibly empty).
- ``list`` yields every object under a prefix (a prefix is a plain string
  prefix of the key), in no guaranteed order, without loading the listing
  into memory at once.
- ``delete`` of a missing key is not an error; deleting an object under an
  unexpired retention raises :class:`ObjectLockedError`.
- ``set_retention`` can only extend: asking for an earlier date than the one
  in force is a no-op that returns the date in force. Backends that cannot
  lock (the filesystem) report ``supports_retention == False`` and raise
  :class:`RetentionNotSupportedError`.
- Errors are classified once, here: :class:`TransientStorageError` is worth a
  retry (throttling, 5xx, timeouts, connection resets); everything else that
  derives from :class:`StorageError` is permanent.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "DeadlineExceededError",
    "InvalidKeyError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectLockedError",
    "ObjectNotFoundError",
    "ObjectVersion",
    "Retention",
    "RetentionMode",
    "RetentionNotSupportedError",
    "Storage",
    "StorageError",
    "TransientStorageError",
    "VersionsNotSupportedError",
    "check_key",
]

_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StorageError(Exception):
    """Base of every storage failure. Permanent unless it is a TransientStorageError."""


class TransientStorageError(StorageError):
    """A failure that may succeed when retried (throttling, 5xx, timeout)."""


class DeadlineExceededError(TransientStorageError):
    """A request (with its retries) did not complete within its deadline.

    Transient (the endpoint may answer later, so a scheduled retry makes sense), but a
    retry wrapper does not start another round of attempts: the deadline is the bound."""


class ObjectNotFoundError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}")
        self.key = key


class ObjectExistsError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object already exists (backends never overwrite): {key}")
        self.key = key


class ObjectLockedError(StorageError):
    def __init__(self, key: str, retain_until: datetime | None = None) -> None:
        until = f" until {retain_until.isoformat()}" if retain_until else ""
        super().__init__(f"object is under retention{until}: {key}")
        self.key = key
        self.retain_until = retain_until


class RetentionNotSupportedError(StorageError):
    pass


class VersionsNotSupportedError(StorageError):
    """The location keeps no object versions (a directory, an S3 bucket without versioning)."""


class InvalidKeyError(StorageError, ValueError):
    pass


class RetentionMode(StrEnum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


#: an Object Lock retention: its mode and the date it holds until
Retention = tuple[RetentionMode, datetime]


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None
    retain_until: datetime | None = None


@dataclass(frozen=True)
class ObjectVersion:
    """One version of a key in a versioned location (S3 with versioning / Object Lock)."""

    key: str
    version_id: str
    modified: datetime | None
    #: the version a plain GET returns (or, for a delete marker, the one that hides the key)
    latest: bool
    delete_marker: bool
    size: int = 0


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"invalid storage key: {key!r}")
    return key


class Storage(ABC):
    """A location's objects. Implementations must be safe to call from several threads."""

    #: a short human description, e.g. "file:///backups" or "s3://bucket/prefix"
    url: str = ""
    supports_retention: bool = False
    #: each request is a network round trip (readers should fetch in large pieces)
    remote: bool = False
    #: what to check when the location is missing or holds no repository (shown to users)
    missing_hint: str = ""

    @abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        """Store ``data`` under ``key`` unless the key exists (then ObjectExistsError)."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    #: get_range_into reads into the caller's buffer without an intermediate copy (a local file)
    reads_into: bool = False

    def get_range_into(self, key: str, offset: int, buffer: memoryview) -> int:
        """Read ``len(buffer)`` bytes at ``offset`` of ``key`` into ``buffer``; returns how many there were
        (fewer at the object's end). Storage without :attr:`reads_into` copies from get_range."""
        data = self.get_range(key, offset, len(buffer))
        buffer[:len(data)] = data
        return len(data)

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        """Extend the retention of ``key``; return the date in force afterwards."""
        raise RetentionNotSupportedError(f"{self.url}: this backend cannot lock objects")

    # -- the location itself (only `init` creates one) -------------------------------------

    def location_exists(self) -> bool:
        """Whether the container of the objects (directory, bucket) exists. Never creates it."""
        return True

    def create_location(self, *, object_lock: bool = False) -> None:
        """Create the directory or bucket (with Object Lock when asked). Only `init` calls this."""
        if object_lock:
            raise RetentionNotSupportedError(f"{self.url}: this backend cannot lock objects")

    # -- versions (S3 buckets with versioning; Kubekeep itself never writes a key twice) -----------

    def versioned(self) -> bool:
        """Whether older versions and delete markers can exist here."""
        return False

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under ``prefix``; a key's entries come together, newest first."""
        raise VersionsNotSupportedError(f"{self.url} keeps no object versions")

    def get_version(self, key: str, version_id: str) -> bytes:
        raise VersionsNotSupportedError(f"{self.url} keeps no object versions")

    def version_retained_until(self, key: str, version_id: str) -> datetime | None:
        """The date a version is locked until (None when it is not locked now)."""
        raise VersionsNotSupportedError(f"{self.url} keeps no object versions")

    def delete_version(self, key: str, version_id: str) -> None:
        """Remove one version or delete marker; ObjectLockedError when the version is locked."""
        raise VersionsNotSupportedError(f"{self.url} keeps no object versions")

    def restore_version(self, key: str, version_id: str) -> None:
        """Make an older version current again by copying it over the key (a new version)."""
        raise VersionsNotSupportedError(f"{self.url} keeps no object versions")

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        """Remove what interrupted writers left behind and no reader ever sees (temporary files,
        unfinished multipart uploads) that is older than ``older_than``; return (count, bytes)."""
        return 0, 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""
