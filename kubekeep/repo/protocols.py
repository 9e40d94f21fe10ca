"""What the repository's operations need from an open repository: narrow Protocols.

The archiver, the restorer, the reachability walk and each maintenance operation
are written against the Protocol of what they use (restic's archiver takes a
``Saver interface { SaveBlob; Index }``, not the whole repository), never against
the ``Repository`` class: they cannot reach into the rest of it, they can be
driven by anything that provides those few methods, and ``kubekeep.repo`` has no
import cycle (import-linter checks both, see pyproject.toml). The ``Repository``
facade (repository.py) satisfies every Protocol here; mypy checks it where the
facade hands itself to an operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

from .crypto import Compressor, Envelope
from .errors import RepositoryError
from .format import BlobEntry
from .index import Index, Location, PackLimitedIndex
from .keys import CatalogCodec
from .recent import RecentTrees
from .repository_lock import RepositoryLock
from .storage import ObjectInfo, Retention, Storage, StorageError

#: progress callback: (bytes done, bytes total or None, current item)
ProgressFn = Callable[[int, int | None, str], None]
#: a backup or restore calls its ProgressFn at most this often (and once at the end)
PROGRESS_SECONDS = 0.1


class ThrottledProgress:
    """A ProgressFn (or None) called at most every PROGRESS_SECONDS, and always when ``last``: a backup
    or restore reports after every chunk or file, which cost the CLI's progress bar more than zstd."""

    __slots__ = ("fn", "reported")

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.reported = -1.0

    def __call__(self, done: int, item: str, *, last: bool = False) -> None:
        if self.fn is None:
            return
        now = time.monotonic()
        if last or now - self.reported >= PROGRESS_SECONDS:
            self.reported = now
            self.fn(done, None, item)
#: what a named stream is read from: an iterable of byte strings or a binary file
StreamSource = Iterable[bytes] | IO[bytes]


class IndexView(Protocol):
    """Blob lookups (an Index, an Index limited to some packs, several indexes combined)."""

    def lookup(self, blob_id: bytes) -> Location | None: ...

    def pack_of(self, blob_id: bytes) -> bytes | None:
        """The id of the pack holding the blob (lookup's pack_id, without building the Location)."""
        ...

    def __contains__(self, blob_id: object) -> bool: ...


# -- building blocks -------------------------------------------------------------------------------


class StorageUser(Protocol):
    @property
    def storage(self) -> Storage: ...

    def storage_error(self, exc: StorageError) -> RepositoryError:
        """The RepositoryError a user sees for a storage failure."""
        ...


class BlobReader(Protocol):
    def read_blob(self, blob_id: bytes, *, index: IndexView | None = None) -> bytes:
        """A blob's plaintext, verified against its id (``index``: where to look it up; default the current)."""
        ...


class SnapshotReader(StorageUser, BlobReader, Protocol):
    """Snapshots and everything they reference: what the reachability walk needs."""

    def load_index(self, *, reload: bool = False) -> Index: ...

    def snapshot_ids(self) -> list[str]: ...

    def load_snapshot(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]: ...


class ContentReader(Protocol):
    def load_tree(self, tree_id: str | bytes) -> list[dict[str, Any]]: ...

    def load_tree_blob(self, tree_id: str | bytes) -> tuple[bytes, list[dict[str, Any]]]: ...

    def content_chunks(self, content: Mapping[str, Any]) -> Iterator[bytes]: ...


class Locking(Protocol):
    def lock(self, kind: str) -> RepositoryLock:
        """Take a repository lock of ``kind`` (backup, prune, repair), refreshed until released."""
        ...


class Packs(Protocol):
    """Pack objects: listing, headers, and the tail that finishes a new pack."""

    @property
    def pack_size(self) -> int: ...

    def list_packs(self) -> dict[bytes, ObjectInfo]: ...

    def read_pack_header(self, pack_id: bytes, size: int | None = None) -> list[BlobEntry]: ...

    def pack_tail(self, pack_id: bytes, entries: Sequence[BlobEntry]) -> bytes: ...

    def decode_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> bytes: ...


class IndexObjects(Protocol):
    def read_index_object(self, key: str, ident: bytes, index: Index) -> None: ...

    def write_index_object(self, packs: Mapping[bytes, list[BlobEntry]], *,
                           retention: Retention | None = None) -> str: ...


class Sealer(Protocol):
    @property
    def envelope(self) -> Envelope: ...

    def seal_object(self, blob_type: int, ident: bytes, payload: bytes) -> bytes: ...

    def open_object(self, blob_type: int, ident: bytes, data: bytes, *, what: str) -> bytes: ...


# -- what each operation uses ----------------------------------------------------------------------


class Saver(StorageUser, IndexObjects, Protocol):
    """Storing blobs into packs (the archiver's BlobSaver): restic's ``Saver { SaveBlob; Index }``."""

    @property
    def envelope(self) -> Envelope: ...

    @property
    def compressor(self) -> Compressor: ...

    @property
    def workers(self) -> int: ...

    @property
    def pack_size(self) -> int: ...

    @property
    def chunker_params(self) -> dict[str, int]: ...

    def blob_id(self, data: bytes | bytearray | memoryview) -> bytes: ...

    def index_for_backup(self) -> PackLimitedIndex:
        """The index as storage holds it now (read after the backup's lock was taken)."""
        ...

    def pack_tail(self, pack_id: bytes, entries: Sequence[BlobEntry]) -> bytes: ...


class BackupTarget(Saver, ContentReader, Locking, Protocol):
    """A whole backup: the Saver, plus the parent snapshot's trees, the lock and the new snapshot."""

    def load_snapshot(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]: ...

    def write_snapshot(self, doc: dict[str, Any], *, retention: Retention | None = None) -> str: ...

    def extend_retention(self, keys: Iterable[str], retention: Retention) -> None: ...

    @property
    def recent_trees(self) -> RecentTrees:
        """Where the backup leaves the trees of the directories it changed (for a diff right after it)."""
        ...


class RestoreSource(StorageUser, ContentReader, Protocol):
    """A restore: snapshots, trees and chunk lists, and runs of blobs read straight from packs."""

    @property
    def workers(self) -> int: ...

    @property
    def index(self) -> Index: ...

    def load_snapshot(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]: ...

    def read_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                        storage: Storage | None = None) -> list[bytes | RepositoryError]: ...


class CheckTarget(SnapshotReader, Packs, IndexObjects, Protocol):
    """check: index objects, packs and their blobs, and what every snapshot references."""


class RepairTarget(StorageUser, Locking, Packs, IndexObjects, Protocol):
    """repair-index: pack headers become the new index."""

    @property
    def envelope(self) -> Envelope: ...

    def load_index(self, *, reload: bool = False) -> Index: ...


class PruneTarget(SnapshotReader, Locking, Sealer, Packs, IndexObjects, Protocol):
    """prune: drop snapshots, mark what the rest reach, repack, rewrite the index, sweep."""

    def resolve_snapshot(self, snapshot_id: str) -> str: ...


class RecoverTarget(StorageUser, Protocol):
    """recover: authenticate older versions of hidden or overwritten objects."""

    def verify_config(self, raw: bytes) -> dict[str, Any]: ...

    def decode_snapshot(self, sid: str, raw: bytes, *, what: str) -> dict[str, Any]: ...

    def open_object(self, blob_type: int, ident: bytes, data: bytes, *, what: str) -> bytes: ...

    def catalog_codec(self) -> CatalogCodec: ...
