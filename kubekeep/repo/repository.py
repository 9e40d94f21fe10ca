"""The Repository: init/open, key slots, blob and snapshot I/O, and the public operations.

The byte formats and invariants live in docs/repository-format.md; the heavy
lifting is in archiver.py (backup), restorer.py (restore, read_stream) and
maintenance.py (check, repair_index, prune).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import blake3

from .crypto import (
    CIPHERS,
    BlobType,
    Compressor,
    Envelope,
    KdfParams,
    KeyWrapper,
    derive_key,
    make_external_slot,
    make_passphrase_slot,
    now_iso,
    open_external_slot,
    open_passphrase_slot,
)
from .errors import (
    IntegrityError,
    MissingObjectError,
    RepositoryError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    WrongKeyError,
)
from .format import (
    CONFIG_KEY,
    DEFAULT_CHUNKER,
    DEFAULT_PACK_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_PREFIX,
    KEYS_PREFIX,
    SNAPSHOTS_PREFIX,
    BlobEntry,
    canonical_json,
    config_mac,
    decode_index,
    encode_index,
    id_from_key,
    pack_key,
    parse_config,
)
from .index import Index
from .locks import RepositoryLock
from .storage import (
    ObjectExistsError,
    ObjectNotFoundError,
    RetentionMode,
    RetryingStorage,
    Storage,
    StorageError,
)

Retention = tuple[RetentionMode, datetime]
#: progress callback: (bytes done, bytes total or None, current item)
ProgressFn = Callable[[int, int | None, str], None]
StreamSource = Iterable[bytes] | IO[bytes]


@dataclass
class BackupStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    unchanged_files: int = 0
    chunks: int = 0
    new_chunks: int = 0
    new_bytes: int = 0
    new_stored_bytes: int = 0
    packs: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class BackupResult:
    snapshot_id: str
    stats: BackupStats
    #: per-item problems (unreadable files, ...) that did not stop the backup
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    time: datetime
    hostname: str
    tags: tuple[str, ...]
    metadata: Mapping[str, str]
    parent: str | None
    source: str | None
    streams: tuple[str, ...]
    stats: Mapping[str, int]


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


@dataclass(frozen=True)
class KeySlotInfo:
    slot_id: str
    type: str
    created: str
    provider: str | None


def _wrap_storage(storage: Storage, retry: bool) -> Storage:
    if retry and not isinstance(storage, RetryingStorage):
        return RetryingStorage(storage)
    return storage


class Repository:
    """An open repository. Safe to use from one thread; operations run their own worker threads."""

    DEFAULT_LOCK_TTL = 1800.0

    def __init__(self, storage: Storage, config: dict[str, Any], master: bytes, *, workers: int,
                 compression_level: int | None, lock_ttl: float) -> None:
        self.storage = storage
        self.config = config
        self.repository_id = bytes.fromhex(config["repository_id"])
        self._master = master
        self.id_key = derive_key(master, "blob id")
        self.envelope = Envelope(config["cipher"], derive_key(master, "data encryption"))
        seed = int.from_bytes(derive_key(master, "chunker seed")[:8], "little") & ((1 << 62) - 1)
        self.chunker_params: dict[str, int] = {
            "min_size": int(config["chunker"]["min_size"]), "avg_size": int(config["chunker"]["avg_size"]),
            "max_size": int(config["chunker"]["max_size"]),
            "normalization": int(config["chunker"].get("normalization", 1)), "seed": seed or 1}
        self.pack_size = int(config["pack_size"])
        self.compression_level = (compression_level if compression_level is not None
                                  else int(config["compression"]["level"]))
        self.workers = max(1, workers)
        self.lock_ttl = lock_ttl
        self._local = threading.local()
        self._index: Index | None = None
        self._index_keys: set[str] = set()

    # -- creation and opening -------------------------------------------------------------

    @classmethod
    def init(cls, storage: Storage, *, passphrase: str | None = None, key_wrapper: KeyWrapper | None = None,
             kdf: KdfParams | None = None, cipher: str = "aes-256-gcm", compression_level: int = 3,
             chunker: Mapping[str, int] | None = None, pack_size: int = DEFAULT_PACK_SIZE,
             workers: int = 2, retry: bool = True) -> Repository:
        """Create a repository in an empty location, with one passphrase and/or external key slot."""
        if passphrase is None and key_wrapper is None:
            raise RepositoryError("init needs a passphrase or an external key")
        if passphrase is not None and not passphrase:
            raise RepositoryError("the passphrase must not be empty")
        if cipher not in CIPHERS:
            raise RepositoryError(f"unknown cipher {cipher!r} (known: {', '.join(CIPHERS)})")
        if not 1 <= compression_level <= 22:
            raise RepositoryError("compression level must be between 1 and 22")
        storage = _wrap_storage(storage, retry)
        if storage.exists(CONFIG_KEY):
            raise RepositoryExistsError(f"{storage.url} already holds a repository")
        chunk_cfg: dict[str, Any] = dict(DEFAULT_CHUNKER)
        if chunker:
            chunk_cfg.update(chunker)
        sizes = [int(chunk_cfg[k]) for k in ("min_size", "avg_size", "max_size")]
        if not sizes[0] < sizes[1] < sizes[2] <= 16 * 1024 * 1024:
            raise RepositoryError("chunker sizes must satisfy min < avg < max <= 16 MiB")
        master = secrets.token_bytes(32)
        repository_id = secrets.token_bytes(32)
        config: dict[str, Any] = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "repository_id": repository_id.hex(),
            "created": now_iso(), "cipher": cipher,
            "compression": {"algorithm": "zstd", "level": compression_level},
            "chunker": chunk_cfg, "pack_size": pack_size}
        config["mac"] = config_mac(derive_key(master, "config mac"), config)
        # key slots first, config last: a crashed init leaves no half-usable repository
        if passphrase is not None:
            slot = make_passphrase_slot(master, repository_id, passphrase, kdf or KdfParams())
            storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot))
        if key_wrapper is not None:
            slot = make_external_slot(master, repository_id, key_wrapper)
            storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot))
        try:
            storage.put(CONFIG_KEY, canonical_json(config))
        except ObjectExistsError:
            raise RepositoryExistsError(f"{storage.url} already holds a repository") from None
        return cls(storage, config, master, workers=workers, compression_level=None,
                   lock_ttl=cls.DEFAULT_LOCK_TTL)

    @classmethod
    def open(cls, storage: Storage, *, passphrase: str | None = None, key_wrapper: KeyWrapper | None = None,
             workers: int = 2, compression_level: int | None = None, lock_ttl: float | None = None,
             retry: bool = True) -> Repository:
        """Open with a passphrase or an external key; WrongKeyError if no slot opens."""
        if passphrase is None and key_wrapper is None:
            raise RepositoryError("open needs a passphrase or an external key")
        storage = _wrap_storage(storage, retry)
        try:
            raw = storage.get(CONFIG_KEY)
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(f"no kubekeep repository at {storage.url} (no config object)") from None
        config = parse_config(raw)
        try:
            repository_id = bytes.fromhex(config["repository_id"])
        except (KeyError, ValueError, TypeError):
            raise UnsupportedFormatError("repository config has no valid repository_id") from None
        master = cls._unlock(storage, repository_id, passphrase, key_wrapper)
        if config.get("mac") != config_mac(derive_key(master, "config mac"), config):
            raise IntegrityError("repository config failed authentication (tampered or damaged)")
        return cls(storage, config, master, workers=workers, compression_level=compression_level,
                   lock_ttl=lock_ttl or cls.DEFAULT_LOCK_TTL)

    @staticmethod
    def _read_slots(storage: Storage) -> list[dict[str, Any]]:
        slots = []
        for info in storage.list(KEYS_PREFIX):
            try:
                slot = json.loads(storage.get(info.key))
            except (ObjectNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(slot, dict) and slot.get("slot_id") == info.key[len(KEYS_PREFIX):]:
                slots.append(slot)
        return slots

    @classmethod
    def _unlock(cls, storage: Storage, repository_id: bytes, passphrase: str | None,
                key_wrapper: KeyWrapper | None) -> bytes:
        slots = cls._read_slots(storage)
        if not slots:
            raise WrongKeyError(f"repository at {storage.url} has no readable key slots")
        for slot in slots:
            master: bytes | None = None
            if passphrase is not None and slot.get("type") == "passphrase":
                master = open_passphrase_slot(slot, repository_id, passphrase)
            elif key_wrapper is not None and slot.get("type") == "external":
                master = open_external_slot(slot, repository_id, key_wrapper)
            if master is not None:
                return master
        if passphrase is not None:
            raise WrongKeyError("wrong passphrase: no key slot of this repository opens with it")
        raise WrongKeyError("wrong key: no external key slot of this repository opens with the key given")

    def close(self) -> None:
        self._index = None
        self.storage.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- key slots -------------------------------------------------------------------------

    def list_keys(self) -> list[KeySlotInfo]:
        return [KeySlotInfo(str(s["slot_id"]), str(s.get("type")), str(s.get("created", "")), s.get("provider"))
                for s in self._read_slots(self.storage)]

    def add_passphrase(self, passphrase: str, *, kdf: KdfParams | None = None) -> str:
        if not passphrase:
            raise RepositoryError("the passphrase must not be empty")
        slot = make_passphrase_slot(self._master, self.repository_id, passphrase, kdf or KdfParams())
        self.storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot))
        return str(slot["slot_id"])

    def add_external_key(self, wrapper: KeyWrapper) -> str:
        slot = make_external_slot(self._master, self.repository_id, wrapper)
        self.storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot))
        return str(slot["slot_id"])

    def remove_key(self, slot_id: str) -> None:
        slots = {s.slot_id for s in self.list_keys()}
        if slot_id not in slots:
            raise RepositoryError(f"no key slot {slot_id!r} (slots: {', '.join(sorted(slots))})")
        if len(slots) == 1:
            raise RepositoryError("refusing to remove the last key slot: the repository would be unreadable")
        self.storage.delete(KEYS_PREFIX + slot_id)

    def change_passphrase(self, old_slot_id: str, new_passphrase: str, *, kdf: KdfParams | None = None) -> str:
        new_slot = self.add_passphrase(new_passphrase, kdf=kdf)
        self.remove_key(old_slot_id)
        return new_slot

    # -- primitives ------------------------------------------------------------------------

    @property
    def compressor(self) -> Compressor:
        comp: Compressor | None = getattr(self._local, "compressor", None)
        if comp is None:
            comp = Compressor(self.compression_level)
            self._local.compressor = comp
        return comp

    def blob_id(self, data: bytes | bytearray | memoryview) -> bytes:
        return blake3.blake3(data, key=self.id_key).digest()

    def seal_object(self, blob_type: int, ident: bytes, payload: bytes) -> bytes:
        flag, packed = self.compressor.pack(payload)
        return self.envelope.seal(blob_type, ident, flag, packed)

    def open_object(self, blob_type: int, ident: bytes, data: bytes, *, what: str) -> bytes:
        flag, payload = self.envelope.open(blob_type, ident, data, what=what)
        return self.compressor.unpack(flag, payload, what=what)

    def catalog_codec(self) -> CatalogCodec:
        """Encrypts catalog files like everything else in the location (envelope type 20, bound to the key)."""
        return CatalogCodec(self)

    # -- index -----------------------------------------------------------------------------

    def load_index(self, *, reload: bool = False) -> Index:
        """Read every index object. An object that vanishes mid-read (a concurrent prune
        replaced it) restarts the load, so the result always covers a consistent set."""
        if self._index is not None and not reload:
            return self._index
        for _attempt in range(10):
            index = Index()
            keys: set[str] = set()
            try:
                for info in self.storage.list(INDEX_PREFIX):
                    ident = id_from_key(info.key, INDEX_PREFIX)
                    if ident is None:
                        continue
                    self._read_index_object(info.key, ident, index)
                    keys.add(info.key)
            except ObjectNotFoundError:
                continue
            self._index, self._index_keys = index, keys
            return index
        raise RepositoryError("the index kept changing while it was read; try again")

    def _read_index_object(self, key: str, ident: bytes, index: Index) -> None:
        payload = self.open_object(BlobType.INDEX, ident, self.storage.get(key), what=f"index object {key}")
        for pack_id, entries in decode_index(payload, what=key):
            index.add_pack(pack_id, entries, source=key)

    def write_index_object(self, packs: Mapping[bytes, list[Any]], *, retention: Retention | None = None) -> str:
        ident = secrets.token_bytes(32)
        key = INDEX_PREFIX + ident.hex()
        data = self.seal_object(BlobType.INDEX, ident, encode_index(dict(packs)))
        self.storage.put(key, data, retention=retention)
        return key

    @property
    def index(self) -> Index:
        return self.load_index()

    def read_blob(self, blob_id: bytes, *, index: Index | None = None) -> bytes:
        """Plaintext of a blob, verified against its id. IntegrityError/MissingObjectError otherwise."""
        loc = (index or self.index).lookup(blob_id)
        if loc is None:
            raise MissingObjectError(f"blob {blob_id.hex()} is not in the index")
        key = pack_key(loc.pack_id)
        what = f"pack {loc.pack_id.hex()} blob {blob_id.hex()} ({BlobType.NAMES.get(loc.entry.blob_type, '?')})"
        try:
            raw = self.storage.get_range(key, loc.entry.offset, loc.entry.length)
        except ObjectNotFoundError:
            raise MissingObjectError(f"{what}: pack is missing") from None
        if len(raw) != loc.entry.length:
            raise IntegrityError(f"{what}: pack is truncated")
        return self.decode_blob(loc.entry, raw, what=what)

    def decode_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> bytes:
        """Decrypt, decompress and verify one blob envelope read from its pack."""
        plain = self.envelope.open_blob(entry.blob_type, entry.blob_id, raw, self.compressor,
                                        raw_length=entry.raw_length, what=what)
        if len(plain) != entry.raw_length or self.blob_id(plain) != entry.blob_id:
            raise IntegrityError(f"{what}: content does not match its id")
        return plain

    def read_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                        storage: Storage | None = None) -> list[bytes | RepositoryError]:
        """Several blobs of one pack with one ranged read (entries sorted by offset, close together).

        A blob that fails verification is returned as its IntegrityError, so that it
        fails only the file it belongs to; a missing pack raises MissingObjectError.
        """
        start = entries[0].offset
        end = max(e.offset + e.length for e in entries)
        key = pack_key(pack_id)
        try:
            raw = (storage or self.storage).get_range(key, start, end - start)
        except ObjectNotFoundError:
            raise MissingObjectError(f"pack {pack_id.hex()} is missing") from None
        out: list[bytes | RepositoryError] = []
        with memoryview(raw) as view:
            for e in entries:
                what = f"pack {pack_id.hex()} blob {e.blob_id.hex()} ({BlobType.NAMES.get(e.blob_type, '?')})"
                piece = view[e.offset - start:e.offset - start + e.length]
                if len(piece) != e.length:
                    out.append(IntegrityError(f"{what}: pack is truncated"))
                    continue
                try:
                    out.append(self.decode_blob(e, piece, what=what))
                except RepositoryError as exc:
                    out.append(exc)
        return out

    # -- snapshots -------------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        ids = []
        for info in self.storage.list(SNAPSHOTS_PREFIX):
            ident = id_from_key(info.key, SNAPSHOTS_PREFIX)
            if ident is not None:
                ids.append(ident.hex())
        return ids

    def load_snapshot(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]:
        """A snapshot manifest by full id, unique prefix or 'latest'.

        ``listed=True`` says the id comes from a current listing: the manifest may
        then come from the local cache of (still encrypted, immutable) manifests,
        which saves one GET per snapshot when every snapshot is read.
        """
        sid = snapshot_id if _FULL_ID.fullmatch(snapshot_id) else self.resolve_snapshot(snapshot_id)
        raw = self._snapshot_cache_get(sid) if listed else None
        if raw is not None:
            try:
                self.open_object(BlobType.SNAPSHOT, bytes.fromhex(sid), raw, what=f"cached snapshot {sid}")
            except RepositoryError:
                raw = None  # a damaged cache entry: read the location's copy instead
        if raw is None:
            try:
                raw = self.storage.get(SNAPSHOTS_PREFIX + sid)
            except ObjectNotFoundError:
                raise SnapshotNotFoundError(f"snapshot {sid} not found") from None
            if listed:
                self._snapshot_cache_put(sid, raw)
        doc = json.loads(self.open_object(BlobType.SNAPSHOT, bytes.fromhex(sid), raw, what=f"snapshot {sid}"))
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise UnsupportedFormatError(f"snapshot {sid}: unsupported manifest version")
        return doc

    def _snapshot_cache_dir(self) -> Path:
        base = os.environ.get("KUBEKEEP_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubekeep")
        return Path(base) / "snapshots" / self.repository_id.hex()

    def _snapshot_cache_get(self, sid: str) -> bytes | None:
        try:
            return (self._snapshot_cache_dir() / sid).read_bytes()
        except OSError:
            return None

    def _snapshot_cache_put(self, sid: str, raw: bytes) -> None:
        """Best effort: a cache that cannot be written only costs GETs."""
        try:
            directory = self._snapshot_cache_dir()
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = directory / f".tmp-{sid}-{secrets.token_hex(4)}"
            tmp.write_bytes(raw)
            os.replace(tmp, directory / sid)
        except OSError:
            pass

    def resolve_snapshot(self, snapshot_id: str) -> str:
        """Accept a full id, a unique prefix (>= 4 hex digits) or 'latest'."""
        ids = self.snapshot_ids()
        if snapshot_id == "latest":
            infos = self.snapshots()
            if not infos:
                raise SnapshotNotFoundError("the repository has no snapshots")
            return infos[-1].id
        if snapshot_id in ids:
            return snapshot_id
        if len(snapshot_id) >= 4:
            matches = [i for i in ids if i.startswith(snapshot_id.lower())]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise SnapshotNotFoundError(f"snapshot id prefix {snapshot_id!r} is ambiguous")
        raise SnapshotNotFoundError(f"snapshot {snapshot_id!r} not found")

    @staticmethod
    def snapshot_info(doc: Mapping[str, Any]) -> SnapshotInfo:
        return SnapshotInfo(id=doc["id"], time=datetime.fromisoformat(doc["time"]), hostname=doc.get("hostname", ""),
                            tags=tuple(doc.get("tags", ())), metadata=dict(doc.get("metadata", {})),
                            parent=doc.get("parent"), source=doc.get("source"),
                            streams=tuple(sorted(doc.get("streams", {}))), stats=dict(doc.get("stats", {})))

    def snapshots(self, *, tags: Iterable[str] = ()) -> list[SnapshotInfo]:
        """Every snapshot, oldest first; with ``tags``, those carrying all of them."""
        want = set(tags)
        infos = []
        for sid in self.snapshot_ids():
            try:
                info = self.snapshot_info(self.load_snapshot(sid, listed=True))
            except SnapshotNotFoundError:
                continue  # pruned while listing
            if want <= set(info.tags):
                infos.append(info)
        infos.sort(key=lambda i: (i.time, i.id))
        return infos

    def load_tree(self, tree_id: str | bytes) -> list[dict[str, Any]]:
        ident = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
        doc = json.loads(self.read_blob(ident))
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise UnsupportedFormatError(f"tree {ident.hex()}: unsupported tree version")
        entries: list[dict[str, Any]] = doc["entries"]
        return entries

    def content_chunks(self, content: Mapping[str, Any]) -> Iterator[bytes]:
        """The chunk ids of a file's or stream's content, expanding chunk lists lazily."""
        if "chunks" in content:
            for hexid in content["chunks"]:
                yield bytes.fromhex(hexid)
            return
        for list_id in content.get("lists", ()):
            raw = self.read_blob(bytes.fromhex(list_id))
            for pos in range(0, len(raw), 32):
                yield raw[pos:pos + 32]

    # -- operations (implemented in sibling modules) ------------------------------------------

    def lock(self, kind: str) -> RepositoryLock:
        try:
            return RepositoryLock(self.storage, self.envelope, kind, self.lock_ttl).acquire()
        except StorageError as exc:
            raise self.storage_error(exc) from exc

    def backup(self, path: str | os.PathLike[str] | None = None, *,
               streams: Mapping[str, StreamSource] | None = None, parent: str | None = None,
               tags: Iterable[str] = (), metadata: Mapping[str, str] | None = None,
               retention: Retention | None = None, progress: ProgressFn | None = None) -> BackupResult:
        """Back up a directory tree and/or named byte streams into one new snapshot.

        ``parent`` (a snapshot id or 'latest') enables incremental backup: files whose
        size, mtime and inode are unchanged reuse the parent's content without reading.
        """
        from .archiver import Archiver

        if path is None and not streams:
            raise RepositoryError("nothing to back up: give a path and/or streams")
        if metadata is not None and not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in metadata.items()):
            raise RepositoryError("snapshot metadata must map strings to strings")
        if retention is not None and not self.storage.supports_retention:
            raise RepositoryError(f"{self.storage.url} cannot lock objects; retention is not available here")
        source = None
        if path is not None:
            source = Path(path)
            if not source.is_dir():
                raise RepositoryError(f"backup source {source} is not a directory")
        return Archiver(self, retention=retention, progress=progress).run(
            source, dict(streams or {}), parent=parent, tags=list(tags), metadata=dict(metadata or {}))

    def backup_stream(self, name: str, data: StreamSource, *, tags: Iterable[str] = (),
                      metadata: Mapping[str, str] | None = None,
                      retention: Retention | None = None) -> BackupResult:
        return self.backup(streams={name: data}, tags=tags, metadata=metadata, retention=retention)

    def restore(self, snapshot_id: str, target: str | os.PathLike[str], *, path: str | None = None,
                progress: ProgressFn | None = None) -> Any:
        """Restore a snapshot (or the file/subtree ``path`` inside it) under ``target``."""
        from .restorer import Restorer

        return Restorer(self, progress=progress).restore(snapshot_id, Path(target), path)

    def read_stream(self, snapshot_id: str, name: str) -> Iterator[bytes]:
        """A named stream's bytes; an unknown snapshot or stream raises here, before any byte is read."""
        from .restorer import Restorer

        return Restorer(self).read_stream(snapshot_id, name)

    def restore_stream(self, snapshot_id: str, name: str, target: str | os.PathLike[str]) -> int:
        """Write a named stream to the file ``target`` (replaced only once complete); returns its size."""
        from .restorer import Restorer

        return Restorer(self).restore_stream(snapshot_id, name, Path(target))

    def check(self, *, read_data: bool = False) -> Any:
        from .maintenance import check

        return check(self, read_data=read_data)

    def repair_index(self) -> Any:
        from .maintenance import repair_index

        return repair_index(self)

    def prune(self, drop: Iterable[str] = (), *, repack_threshold: float = 0.5,
              wait_timeout: float = 600.0, poll: float = 2.0) -> Any:
        from .maintenance import prune

        return prune(self, list(drop), repack_threshold=repack_threshold, wait_timeout=wait_timeout, poll=poll)

    def stats(self) -> RepoStats:
        index = self.load_index(reload=True)
        unique = 0
        blobs = 0
        for loc in index:
            blobs += 1
            unique += loc.entry.raw_length
        stored = 0
        packs = 0
        for info in self.storage.list("data/"):
            packs += 1
            stored += info.size
        infos = self.snapshots()
        logical = sum(int(i.stats.get("bytes", 0)) for i in infos)
        return RepoStats(snapshots=len(infos), logical_bytes=logical, unique_bytes=unique,
                         stored_bytes=stored, packs=packs, blobs=blobs)

    def write_snapshot(self, doc: dict[str, Any], *, retention: Retention | None = None) -> str:
        sid = doc["id"]
        data = self.seal_object(BlobType.SNAPSHOT, bytes.fromhex(sid), json.dumps(doc).encode())
        self.storage.put(SNAPSHOTS_PREFIX + sid, data, retention=retention)
        return str(sid)

    def extend_retention(self, keys: Iterable[str], retention: Retention) -> None:
        mode, until = retention
        for key in keys:
            try:
                self.storage.set_retention(key, mode, until)
            except ObjectNotFoundError:
                continue

    def storage_error(self, exc: StorageError) -> RepositoryError:
        return RepositoryError(f"storage error at {self.storage.url}: {exc}")


class CatalogCodec:
    """Seals and opens the catalog's Parquet files with the repository's data key.

    The envelope's id is BLAKE3 of the object key, so a catalog file copied to
    another key fails authentication."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    @staticmethod
    def _ident(key: str) -> bytes:
        return blake3.blake3(key.encode()).digest()

    def seal(self, key: str, data: bytes) -> bytes:
        return self._repo.seal_object(BlobType.CATALOG, self._ident(key), data)

    def open(self, key: str, data: bytes) -> bytes:
        return self._repo.open_object(BlobType.CATALOG, self._ident(key), data, what=f"catalog file {key}")


_FULL_ID = re.compile(r"[0-9a-f]{64}")


def utcnow() -> datetime:
    return datetime.now(UTC)
