"""The Repository: creating and opening a location, and a thin facade over the repository's parts.

Each responsibility has its own module (docs/repository-api.md):

- keys.py        key slots, unlocking, the config MAC, sealing and opening objects
- index.py       the index (in memory, and its ``index/`` objects)
- blobs.py       reading and verifying blobs from packs, pack headers, finishing new packs
- snapshots.py   listing, loading (cached), resolving and writing snapshots; trees and chunk lists
- reachability.py  what a set of snapshots needs (the walk)
- repository_lock.py  the repository's own locks (``locks/``)
- archiver.py, restorer.py, maintenance/  the operations, each written against a narrow Protocol
  (protocols.py) that this facade satisfies

The byte formats and invariants live in docs/repository-format.md.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import BlobStore
from .crypto import CIPHERS, Compressor, Envelope, KdfParams, KeyWrapper, now_iso
from .errors import RepositoryError, RepositoryExistsError, RepositoryNotFoundError
from .format import (
    CONFIG_KEY,
    DATA_PREFIX,
    DEFAULT_CHUNKER,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_PACK_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    KEYS_PREFIX,
    BlobEntry,
    canonical_json,
)
from .index import Index, IndexStore, PackLimitedIndex
from .keys import CatalogCodec, KeySlotInfo, RepositoryKeys, master_config_mac, open_config
from .memory import tune_allocator
from .protocols import IndexView, ProgressFn, StreamSource
from .recent import RecentTrees
from .repository_lock import RepositoryLock, UnlockResult, remove_locks
from .snapshots import SnapshotInfo, SnapshotStore
from .storage import (
    ObjectExistsError,
    ObjectInfo,
    ObjectNotFoundError,
    Retention,
    RetryingStorage,
    Storage,
    StorageError,
)

if TYPE_CHECKING:  # the operations are imported when first used: opening a repository stays cheap
    from .archiver import BackupResult
    from .maintenance import CheckResult, PruneResult, RecoverResult, RepairResult
    from .restorer import Baseline, FileRecord, RestoreResult


@dataclass
class RepoStats:
    snapshots: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    packs: int
    blobs: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0


def _ignored_at_init(key: str) -> bool:
    """Objects an empty location may hold: a crashed init's key slots, a fresh volume's lost+found,
    and hidden top-level entries (an NFS server's .snapshot directory)."""
    first = key.split("/", 1)[0]
    return key.startswith(KEYS_PREFIX) or first == "lost+found" or first.startswith(".")


def _prepare_location(storage: Storage, create: bool, retention: Retention | None, object_lock: bool) -> None:
    if not storage.location_exists():
        if not create:
            hint = f" ({storage.missing_hint})" if storage.missing_hint else ""
            raise RepositoryNotFoundError(f"{storage.url} does not exist{hint}")
        storage.create_location(object_lock=object_lock or retention is not None)
    if storage.exists(CONFIG_KEY):
        raise RepositoryExistsError(f"{storage.url} already holds a repository")
    if retention is not None and not storage.supports_retention:
        raise RepositoryError(f"{storage.url} cannot lock objects (no Object Lock); "
                              "create the location with Object Lock, or init without a lock")
    for info in storage.list(""):
        if not _ignored_at_init(info.key):
            raise RepositoryError(f"{storage.url} is not empty and holds no kubekeep repository "
                                  f"(it has {info.key}); init needs an empty location")


def _wrap_storage(storage: Storage, retry: bool) -> Storage:
    if retry and not isinstance(storage, RetryingStorage):
        return RetryingStorage(storage)
    return storage


class Repository:
    """An open repository.

    Thread-safe: the concurrent tasks of one run share one instance, and backup(),
    backup_stream(), restore(), restore_stream(), read_stream(), write_snapshot(),
    load_snapshot(), snapshots() and index reloads may run at the same time from
    several threads (docs/repository-format.md, "Concurrency"). Each operation also
    runs its own worker threads.
    """

    DEFAULT_LOCK_TTL = 1800.0

    def __init__(self, storage: Storage, config: dict[str, Any], master: bytes, *, workers: int,
                 compression_level: int | None, lock_ttl: float) -> None:
        tune_allocator()  # the data path's pack-sized buffers go back to the system when freed
        self.storage = storage
        self.config = config
        self.workers = max(1, workers)
        self.lock_ttl = lock_ttl
        self.keys = RepositoryKeys(storage, config, master, compression_level=(
            compression_level if compression_level is not None else int(config["compression"]["level"])))
        self.indexes = IndexStore(storage, self.keys)
        self.blobs = BlobStore(storage, self.keys, self.indexes)
        self.snapshot_store = SnapshotStore(storage, self.keys, self.blobs)
        chunker = config["chunker"]
        self.chunker_params: dict[str, int] = {
            "min_size": int(chunker["min_size"]), "avg_size": int(chunker["avg_size"]),
            "max_size": int(chunker["max_size"]), "normalization": int(chunker.get("normalization", 1)),
            "seed": self.keys.chunker_seed}
        self.pack_size = int(config["pack_size"])
        #: what opening had to work around (a forged or hidden config or key slot), for the user
        self.warnings: list[str] = []

    # -- creation and opening -------------------------------------------------------------

    @classmethod
    def init(cls, storage: Storage, *, passphrase: str | None = None, key_wrapper: KeyWrapper | None = None,
             kdf: KdfParams | None = None, cipher: str = "aes-256-gcm",
             compression_level: int = DEFAULT_COMPRESSION_LEVEL,
             chunker: Mapping[str, int] | None = None, pack_size: int = DEFAULT_PACK_SIZE,
             workers: int = 2, retry: bool = True, create_location: bool = False,
             retention: Retention | None = None, object_lock: bool = False) -> Repository:
        """Create a repository in an empty location, with one passphrase and/or external key slot.

        A missing location (directory, bucket) is created only with ``create_location``
        (with Object Lock when ``retention`` or ``object_lock`` is given); a location holding anything but
        the leftovers of a crashed init is refused. ``retention`` locks the config and
        the key slots as they are written.
        """
        if passphrase is None and key_wrapper is None:
            raise RepositoryError("init needs a passphrase or an external key")
        if passphrase is not None and not passphrase:
            raise RepositoryError("the passphrase must not be empty")
        if cipher not in CIPHERS:
            raise RepositoryError(f"unknown cipher {cipher!r} (known: {', '.join(CIPHERS)})")
        if not 1 <= compression_level <= 22:
            raise RepositoryError("compression level must be between 1 and 22")
        storage = _wrap_storage(storage, retry)
        _prepare_location(storage, create_location, retention, object_lock)
        chunk_cfg: dict[str, Any] = dict(DEFAULT_CHUNKER)
        if chunker:
            chunk_cfg.update(chunker)
        sizes = [int(chunk_cfg[k]) for k in ("min_size", "avg_size", "max_size")]
        if not sizes[0] < sizes[1] < sizes[2] <= 16 * 1024 * 1024:
            raise RepositoryError("chunker sizes must satisfy min < avg < max <= 16 MiB")
        config: dict[str, Any] = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "repository_id": secrets.token_bytes(32).hex(),
            "created": now_iso(), "cipher": cipher,
            "compression": {"algorithm": "zstd", "level": compression_level},
            "chunker": chunk_cfg, "pack_size": pack_size}
        return cls._create(storage, config, secrets.token_bytes(32), passphrase=passphrase,
                           key_wrapper=key_wrapper, kdf=kdf, workers=workers, retention=retention)

    @classmethod
    def init_replica(cls, source: Repository, storage: Storage, *, passphrase: str | None = None,
                     key_wrapper: KeyWrapper | None = None, kdf: KdfParams | None = None, workers: int = 2,
                     retry: bool = True, create_location: bool = False, retention: Retention | None = None,
                     object_lock: bool = False) -> Repository:
        """A replica of ``source`` in an empty location (DR copy, replica mode, docs/dr-copy.md).

        It shares ``source``'s master key, cipher, compression, chunker and pack size, so its packs,
        trees and snapshot manifests are the source's bytes, copied unchanged. It has its own
        repository id and its own key slot(s): the passphrase or external key given here opens it,
        and no key slot of the source is copied.
        """
        if passphrase is None and key_wrapper is None:
            raise RepositoryError("init needs a passphrase or an external key")
        if passphrase is not None and not passphrase:
            raise RepositoryError("the passphrase must not be empty")
        storage = _wrap_storage(storage, retry)
        _prepare_location(storage, create_location, retention, object_lock)
        config = {k: v for k, v in source.config.items() if k not in ("mac", "repository_id", "created")}
        config.update(repository_id=secrets.token_bytes(32).hex(), created=now_iso())
        return cls._create(storage, config, source.keys.master_key, passphrase=passphrase,
                           key_wrapper=key_wrapper, kdf=kdf, workers=workers, retention=retention)

    @classmethod
    def _create(cls, storage: Storage, config: dict[str, Any], master: bytes, *, passphrase: str | None,
                key_wrapper: KeyWrapper | None, kdf: KdfParams | None, workers: int,
                retention: Retention | None) -> Repository:
        config["mac"] = master_config_mac(master, config)
        repo = cls(storage, config, master, workers=workers, compression_level=None, lock_ttl=cls.DEFAULT_LOCK_TTL)
        # key slots first, config last: a crashed init leaves no half-usable repository
        if passphrase is not None:
            repo.keys.add_passphrase(passphrase, kdf=kdf, retention=retention)
        if key_wrapper is not None:
            repo.keys.add_external_key(key_wrapper, retention=retention)
        try:
            storage.put(CONFIG_KEY, canonical_json(config), retention=retention)
        except ObjectExistsError:
            raise RepositoryExistsError(f"{storage.url} already holds a repository") from None
        return repo

    @classmethod
    def open(cls, storage: Storage, *, passphrase: str | None = None, key_wrapper: KeyWrapper | None = None,
             workers: int = 2, compression_level: int | None = None, lock_ttl: float | None = None,
             retry: bool = True) -> Repository:
        """Open with a passphrase or an external key; WrongKeyError if no slot opens.

        ``config`` is verified (its MAC needs the master key). In a versioned location
        (S3 with versioning or Object Lock) a current ``config`` that is missing (a
        delete marker) or fails verification (a forged newer version) is passed over
        for the newest older version that verifies; ``warnings`` then says so, and
        ``recover`` makes that version current again.
        """
        if passphrase is None and key_wrapper is None:
            raise RepositoryError("open needs a passphrase or an external key")
        storage = _wrap_storage(storage, retry)
        warnings: list[str] = []
        config, master = open_config(storage, passphrase, key_wrapper, warnings)
        repo = cls(storage, config, master, workers=workers, compression_level=compression_level,
                   lock_ttl=lock_ttl or cls.DEFAULT_LOCK_TTL)
        repo.warnings = warnings
        return repo

    def close(self) -> None:
        self.indexes.forget()
        self.storage.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def storage_error(self, exc: StorageError) -> RepositoryError:
        return RepositoryError(f"storage error at {self.storage.url}: {exc}")

    # -- keys and crypto (keys.py) -----------------------------------------------------------

    @property
    def repository_id(self) -> bytes:
        return self.keys.repository_id

    def shares_master_key(self, other: Repository) -> bool:
        """True when ``other`` has the same master key (a replica, docs/dr-copy.md): its bytes are ours."""
        return self.keys.same_master(other.keys)

    @property
    def envelope(self) -> Envelope:
        return self.keys.envelope

    @property
    def compressor(self) -> Compressor:
        """This thread's zstd compressor."""
        return self.keys.compressor

    @property
    def compression_level(self) -> int:
        return self.keys.compression_level

    def blob_id(self, data: bytes | bytearray | memoryview) -> bytes:
        return self.keys.blob_id(data)

    def seal_object(self, blob_type: int, ident: bytes, payload: bytes) -> bytes:
        return self.keys.seal_object(blob_type, ident, payload)

    def open_object(self, blob_type: int, ident: bytes, data: bytes, *, what: str) -> bytes:
        return self.keys.open_object(blob_type, ident, data, what=what)

    def verify_config(self, raw: bytes) -> dict[str, Any]:
        """The config in ``raw`` if it is this repository's authentic config; IntegrityError otherwise."""
        return self.keys.verify_config(raw)

    def catalog_codec(self) -> CatalogCodec:
        """Encrypts catalog files like everything else in the location (envelope type 20, bound to the key)."""
        return CatalogCodec(self.keys)

    def list_keys(self) -> list[KeySlotInfo]:
        return self.keys.list_slots()

    def add_passphrase(self, passphrase: str, *, kdf: KdfParams | None = None) -> str:
        return self.keys.add_passphrase(passphrase, kdf=kdf)

    def add_external_key(self, wrapper: KeyWrapper) -> str:
        return self.keys.add_external_key(wrapper)

    def remove_key(self, slot_id: str) -> None:
        """Remove a key slot (a damaged one too), never the last intact one."""
        self.keys.remove_slot(slot_id)

    def change_passphrase(self, old_slot_id: str, new_passphrase: str, *, kdf: KdfParams | None = None) -> str:
        new_slot = self.add_passphrase(new_passphrase, kdf=kdf)
        self.remove_key(old_slot_id)
        return new_slot

    # -- the index (index.py) ----------------------------------------------------------------

    def load_index(self, *, reload: bool = False) -> Index:
        """The current index; with ``reload``, read again from storage first."""
        return self.indexes.reload() if reload else self.indexes.current()

    @property
    def index(self) -> Index:
        return self.indexes.current()

    def index_for_backup(self) -> PackLimitedIndex:
        return self.indexes.reload_limited()

    def read_index_object(self, key: str, ident: bytes, index: Index) -> None:
        self.indexes.read_object(key, ident, index)

    def write_index_object(self, packs: Mapping[bytes, list[BlobEntry]], *,
                           retention: Retention | None = None) -> str:
        return self.indexes.write_object(packs, retention=retention)

    # -- blobs and packs (blobs.py) ----------------------------------------------------------

    def read_blob(self, blob_id: bytes, *, index: IndexView | None = None, recent: bool = False) -> bytes:
        """Plaintext of a blob, verified against its id. IntegrityError/MissingObjectError otherwise.

        ``recent``: a tree the latest backup in this process changed may come from memory (not for
        verification; kubekeep.repo.recent.RecentTrees)."""
        return self.blobs.read_blob(blob_id, index=index, recent=recent)

    @property
    def recent_trees(self) -> RecentTrees:
        """The trees the latest backup of this process changed (kubekeep.repo.recent.RecentTrees)."""
        return self.blobs.recent_trees

    def read_blob_payload(self, blob_id: bytes) -> tuple[bytes, int, bytes]:
        """(plaintext verified against its id, compression flag, stored payload): see BlobStore."""
        return self.blobs.read_blob_payload(blob_id)

    def decode_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> bytes:
        return self.blobs.decode_blob(entry, raw, what=what)

    def authenticate_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> None:
        self.blobs.authenticate_blob(entry, raw, what=what)

    def authenticate_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                                storage: Storage | None = None) -> list[None | RepositoryError]:
        return self.blobs.authenticate_pack_blobs(pack_id, entries, storage=storage)

    def read_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                        storage: Storage | None = None) -> list[bytes | RepositoryError]:
        return self.blobs.read_pack_blobs(pack_id, entries, storage=storage)

    def read_pack_payloads(self, pack_id: bytes, entries: Sequence[BlobEntry], *, storage: Storage | None = None
                           ) -> list[tuple[bytes, int, bytes] | RepositoryError]:
        return self.blobs.read_pack_payloads(pack_id, entries, storage=storage)

    def list_packs(self) -> dict[bytes, ObjectInfo]:
        return self.blobs.list_packs()

    def read_pack_header(self, pack_id: bytes, size: int | None = None) -> list[BlobEntry]:
        return self.blobs.read_pack_header(pack_id, size)

    def pack_tail(self, pack_id: bytes, entries: Sequence[BlobEntry]) -> bytes:
        return self.blobs.pack_tail(pack_id, entries)

    # -- snapshots (snapshots.py) ------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        return self.snapshot_store.snapshot_ids()

    def load_snapshot(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]:
        """A snapshot manifest by full id, unique prefix or 'latest' (``listed``: may come from the cache)."""
        return self.snapshot_store.load(snapshot_id, listed=listed)

    def decode_snapshot(self, sid: str, raw: bytes, *, what: str) -> dict[str, Any]:
        return self.snapshot_store.decode(sid, raw, what=what)

    def resolve_snapshot(self, snapshot_id: str) -> str:
        """Accept a full id, a unique prefix (>= 4 hex digits) or 'latest'."""
        return self.snapshot_store.resolve(snapshot_id)

    def snapshots(self, *, tags: Iterable[str] = (), problems: list[str] | None = None) -> list[SnapshotInfo]:
        """Every readable snapshot, oldest first (unreadable ones are named in ``problems``)."""
        return self.snapshot_store.infos(tags=tags, problems=problems)

    def write_snapshot(self, doc: dict[str, Any], *, retention: Retention | None = None) -> str:
        return self.snapshot_store.write(doc, retention=retention)

    def load_tree(self, tree_id: str | bytes) -> list[dict[str, Any]]:
        return self.snapshot_store.load_tree(tree_id)

    def load_tree_blob(self, tree_id: str | bytes) -> tuple[bytes, list[dict[str, Any]]]:
        """A tree's plaintext and its entries."""
        return self.snapshot_store.load_tree_blob(tree_id)

    def content_chunks(self, content: Mapping[str, Any]) -> Iterator[bytes]:
        """The chunk ids of a file's or stream's content, expanding chunk lists lazily."""
        return self.snapshot_store.content_chunks(content)

    # -- locks (repository_lock.py) ----------------------------------------------------------

    def lock(self, kind: str) -> RepositoryLock:
        try:
            return RepositoryLock(self.storage, self.envelope, kind, self.lock_ttl).acquire()
        except StorageError as exc:
            raise self.storage_error(exc) from exc

    def unlock(self, *, remove_all: bool = False) -> UnlockResult:
        """Remove stale locks (every lock with ``remove_all``: only when nothing runs)."""
        try:
            return remove_locks(self.storage, self.envelope, remove_all=remove_all)
        except StorageError as exc:
            raise self.storage_error(exc) from exc

    # -- operations --------------------------------------------------------------------------

    def backup(self, path: str | os.PathLike[str] | None = None, *,
               streams: Mapping[str, StreamSource] | None = None, parent: str | None = None,
               tags: Iterable[str] = (), metadata: Mapping[str, str] | None = None,
               retention: Retention | None = None, progress: ProgressFn | None = None) -> BackupResult:
        """Back up a directory tree and/or named byte streams into one new snapshot.

        ``parent`` (a snapshot id or 'latest') enables incremental backup: files whose
        size, mtime, ctime and inode are unchanged reuse the parent's content without reading.
        'latest' is the newest snapshot of the same directory (none yet: a full backup).
        """
        from .archiver import backup

        if parent == "latest" and path is not None:
            parent = self.snapshot_store.latest_of(path)

        return backup(self, path, streams=streams, parent=parent, tags=tags, metadata=metadata,
                               retention=retention, progress=progress)

    def backup_stream(self, name: str, data: StreamSource, *, tags: Iterable[str] = (),
                      metadata: Mapping[str, str] | None = None,
                      retention: Retention | None = None) -> BackupResult:
        return self.backup(streams={name: data}, tags=tags, metadata=metadata, retention=retention)

    def restore(self, snapshot_id: str, target: str | os.PathLike[str], *, path: str | None = None,
                progress: ProgressFn | None = None, baseline: Baseline | None = None, prune: bool = False,
                record: FileRecord | None = None, list_written: bool = False) -> RestoreResult:
        """Restore a snapshot (or the file/subtree ``path`` inside it) under ``target``; into a target that
        holds an earlier restore, ``baseline``/``prune``/``record`` move only the delta (restorer.py)."""
        from .restorer import Restorer

        return Restorer(self, progress=progress).restore(snapshot_id, Path(target), path, baseline=baseline,
                                                         prune=prune, record=record, list_written=list_written)

    def read_stream(self, snapshot_id: str, name: str) -> Iterator[bytes]:
        """A named stream's bytes; an unknown snapshot or stream raises here, before any byte is read."""
        from .restorer import STREAM_CACHE_BYTES, STREAM_WINDOW_BYTES, Restorer

        return Restorer(self, window_bytes=STREAM_WINDOW_BYTES, cache_bytes=STREAM_CACHE_BYTES
                        ).read_stream(snapshot_id, name)

    def restore_stream(self, snapshot_id: str, name: str, target: str | os.PathLike[str]) -> int:
        """Write a named stream to the file ``target`` (replaced only once complete); returns its size."""
        from .restorer import Restorer

        return Restorer(self).restore_stream(snapshot_id, name, Path(target))

    def check(self, *, read_data: bool = False) -> CheckResult:
        from .maintenance import check

        return check(self, read_data=read_data)

    def recover(self) -> RecoverResult:
        """Versioned locations: make the authentic version of hidden or overwritten objects current."""
        from .maintenance import recover

        return recover(self)

    def repair_index(self) -> RepairResult:
        from .maintenance import repair_index

        return repair_index(self)

    def prune(self, drop: Iterable[str] = (), *, repack_threshold: float = 0.5,
              wait_timeout: float = 600.0, poll: float = 2.0, leftover_age: float = 3600.0
              ) -> PruneResult:
        """Drop snapshots and delete what no snapshot needs.

        ``leftover_age`` (seconds): temporary files of interrupted writers, and unindexed
        packs while other backups run, are reclaimed once they are this old (the margin
        also covers clock skew between hosts and the storage)."""
        from .maintenance import prune

        return prune(self, list(drop), repack_threshold=repack_threshold, wait_timeout=wait_timeout,
                                 poll=poll, leftover_age=leftover_age)

    def stats(self) -> RepoStats:
        index = self.indexes.read_all()  # its own copy: other threads add packs to the shared one
        unique = 0
        blobs = 0
        for loc in index:
            blobs += 1
            unique += loc.entry.raw_length
        stored = 0
        packs = 0
        for info in self.storage.list(DATA_PREFIX):
            packs += 1
            stored += info.size
        infos = self.snapshots()
        logical = sum(int(i.stats.get("bytes", 0)) for i in infos)
        return RepoStats(snapshots=len(infos), logical_bytes=logical, unique_bytes=unique,
                         stored_bytes=stored, packs=packs, blobs=blobs)

    def extend_retention(self, keys: Iterable[str], retention: Retention) -> None:
        mode, until = retention
        for key in keys:
            try:
                self.storage.set_retention(key, mode, until)
            except ObjectNotFoundError:
                continue
