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
    verify_slot,
)
from .errors import (
    IntegrityError,
    KeySlotError,
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
    ObjectVersion,
    RetentionMode,
    RetryingStorage,
    Storage,
    StorageError,
    TransientStorageError,
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


def _not_a_repository(storage: Storage) -> RepositoryNotFoundError:
    hint = f"; {storage.missing_hint}" if storage.missing_hint else ""
    if not storage.location_exists():
        return RepositoryNotFoundError(f"{storage.url} does not exist{hint}")
    return RepositoryNotFoundError(f"no kubekeep repository at {storage.url} (no config object{hint})")


def _older_versions(storage: Storage, key: str, skip_current: bool) -> Iterator[ObjectVersion]:
    """Versions of ``key`` a versioned location keeps besides the one a GET returns, newest first."""
    try:
        if not storage.versioned():
            return
        versions = [v for v in storage.list_versions(key) if v.key == key]
    except StorageError:  # no versions here, or they cannot be read: the caller reports its own error
        return
    real = [v for v in versions if not v.delete_marker]
    current_hidden = any(v.latest and v.delete_marker for v in versions)
    if skip_current and real and not current_hidden:
        real = real[1:]
    yield from real


def _hidden_slots(storage: Storage) -> Iterator[tuple[str, ObjectVersion, dict[str, Any]]]:
    """Key slot versions a GET does not return (hidden by a delete marker, or under a newer version)."""
    try:
        if not storage.versioned():
            return
        versions = list(storage.list_versions(KEYS_PREFIX))
    except StorageError:
        return
    by_key: dict[str, list[ObjectVersion]] = {}
    for v in versions:
        by_key.setdefault(v.key, []).append(v)
    for key, entries in by_key.items():
        real = [v for v in entries if not v.delete_marker]
        if not any(v.latest and v.delete_marker for v in entries):
            real = real[1:]  # the current version was read already
        for version in real:
            try:
                slot = json.loads(storage.get_version(key, version.version_id))
                verify_slot(slot)
            except (ValueError, UnicodeDecodeError, KeySlotError, StorageError):
                continue
            if slot.get("slot_id") == key[len(KEYS_PREFIX):]:
                yield key, version, slot


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
        #: what opening had to work around (a forged or hidden config or key slot), for the user
        self.warnings: list[str] = []

    # -- creation and opening -------------------------------------------------------------

    @classmethod
    def init(cls, storage: Storage, *, passphrase: str | None = None, key_wrapper: KeyWrapper | None = None,
             kdf: KdfParams | None = None, cipher: str = "aes-256-gcm", compression_level: int = 3,
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
            storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot), retention=retention)
        if key_wrapper is not None:
            slot = make_external_slot(master, repository_id, key_wrapper)
            storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot), retention=retention)
        try:
            storage.put(CONFIG_KEY, canonical_json(config), retention=retention)
        except ObjectExistsError:
            raise RepositoryExistsError(f"{storage.url} already holds a repository") from None
        return cls(storage, config, master, workers=workers, compression_level=None,
                   lock_ttl=cls.DEFAULT_LOCK_TTL)

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
        masters: dict[bytes, bytes] = {}
        warnings: list[str] = []

        def verified(raw: bytes) -> tuple[dict[str, Any], bytes]:
            config = parse_config(raw)
            try:
                repository_id = bytes.fromhex(config["repository_id"])
            except (KeyError, ValueError, TypeError):
                raise UnsupportedFormatError("repository config has no valid repository_id") from None
            if repository_id not in masters:
                masters[repository_id] = cls._unlock(storage, repository_id, passphrase, key_wrapper, warnings)
            master = masters[repository_id]
            if config.get("mac") != config_mac(derive_key(master, "config mac"), config):
                raise IntegrityError("repository config failed authentication (tampered or damaged)")
            return config, master

        try:
            current: bytes | None = storage.get(CONFIG_KEY)
        except ObjectNotFoundError:
            current = None
        except TransientStorageError:
            raise
        except StorageError:
            if not storage.location_exists():
                raise _not_a_repository(storage) from None  # a missing bucket
            raise
        first_error: RepositoryError | None = None
        if current is not None:
            try:
                config, master = verified(current)
            except (UnsupportedFormatError, IntegrityError, WrongKeyError) as exc:
                first_error = exc
            else:
                return cls._opened(storage, config, master, warnings, workers, compression_level, lock_ttl)
        for version in _older_versions(storage, CONFIG_KEY, current is not None):
            try:
                config, master = verified(storage.get_version(CONFIG_KEY, version.version_id))
            except (UnsupportedFormatError, IntegrityError, WrongKeyError):
                continue
            what = "fails verification" if current is not None else "is missing (a delete marker hides it)"
            written = version.modified.isoformat(timespec="seconds") if version.modified else "?"
            warnings.append(f"the current config {what}: using its authentic version {version.version_id} "
                            f"(written {written}); run `kubekeep repo check` and `kubekeep repo recover`")
            return cls._opened(storage, config, master, warnings, workers, compression_level, lock_ttl)
        if first_error is not None:
            raise first_error
        raise _not_a_repository(storage)

    @classmethod
    def _opened(cls, storage: Storage, config: dict[str, Any], master: bytes, warnings: list[str], workers: int,
                compression_level: int | None, lock_ttl: float | None) -> Repository:
        repo = cls(storage, config, master, workers=workers, compression_level=compression_level,
                   lock_ttl=lock_ttl or cls.DEFAULT_LOCK_TTL)
        repo.warnings = warnings
        return repo

    def verify_config(self, raw: bytes) -> dict[str, Any]:
        """The config in ``raw`` if it is this repository's authentic config; IntegrityError otherwise."""
        config = parse_config(raw)
        if config.get("repository_id") != self.repository_id.hex() or \
                config.get("mac") != config_mac(derive_key(self._master, "config mac"), config):
            raise IntegrityError("config failed authentication")
        return config

    @staticmethod
    def _read_slots(storage: Storage) -> tuple[list[dict[str, Any]], list[str]]:
        """The well-formed key slots, and one line per damaged slot object."""
        slots: list[dict[str, Any]] = []
        damaged: list[str] = []
        for info in storage.list(KEYS_PREFIX):
            try:
                raw = storage.get(info.key)
            except ObjectNotFoundError:
                continue  # removed meanwhile
            try:
                slot = json.loads(raw)
                verify_slot(slot)
            except (json.JSONDecodeError, UnicodeDecodeError):
                damaged.append(f"{info.key}: damaged (not valid JSON)")
                continue
            except KeySlotError as exc:
                damaged.append(f"{info.key}: {exc}")
                continue
            if slot.get("slot_id") != info.key[len(KEYS_PREFIX):]:
                damaged.append(f"{info.key}: damaged (its slot_id does not match its name)")
                continue
            slots.append(slot)
        return slots, damaged

    @classmethod
    def _unlock(cls, storage: Storage, repository_id: bytes, passphrase: str | None,
                key_wrapper: KeyWrapper | None, warnings: list[str] | None = None) -> bytes:
        slots, damaged = cls._read_slots(storage)
        kind = "passphrase" if passphrase is not None else "external"
        tried = 0

        def attempt(slot: dict[str, Any], name: str) -> bytes | None:
            nonlocal tried
            try:
                if passphrase is not None and slot.get("type") == "passphrase":
                    tried += 1
                    return open_passphrase_slot(slot, repository_id, passphrase)
                if key_wrapper is not None and slot.get("type") == "external":
                    tried += 1
                    return open_external_slot(slot, repository_id, key_wrapper)
            except KeySlotError as exc:
                tried -= 1
                damaged.append(f"{name}: {exc}")
            return None

        for slot in slots:
            master = attempt(slot, f"{KEYS_PREFIX}{slot['slot_id']}")
            if master is not None:
                return master
        # a versioned location may keep slots that a delete marker or a newer version hides
        for key, version, slot in _hidden_slots(storage):
            master = attempt(slot, f"{key} (version {version.version_id})")
            if master is not None:
                if warnings is not None:
                    warnings.append(f"opened with key slot {key} version {version.version_id}, which a delete "
                                    "marker or a newer version hides; run `kubekeep repo recover`")
                return master
        if damaged:
            problems = "; ".join(damaged)
            if tried:
                raise KeySlotError(f"no intact {kind} key slot opens with the key given, and {len(damaged)} key "
                                   f"slot(s) are damaged or refused ({problems}); if the key belongs to a damaged "
                                   "slot, open with another key and re-add it")
            raise KeySlotError(f"no {kind} key slot can be tried: {len(damaged)} key slot(s) are damaged or "
                               f"refused ({problems}); open with another key, or restore the slot from a copy")
        if not slots:
            raise WrongKeyError(f"repository at {storage.url} has no key slots")
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
                for s in self._read_slots(self.storage)[0]]

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
        """Remove a key slot (a damaged one too), never the last intact one."""
        slots = {s.slot_id for s in self.list_keys()}
        damaged = slot_id not in slots and self.storage.exists(KEYS_PREFIX + slot_id) \
            if _SLOT_ID.fullmatch(slot_id) else False
        if slot_id not in slots and not damaged:
            raise RepositoryError(f"no key slot {slot_id!r} (slots: {', '.join(sorted(slots))})")
        if slots == {slot_id}:
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
        which saves one GET per snapshot when every snapshot is read. Only a
        manifest that opened and parsed is ever cached.
        """
        sid = snapshot_id if _FULL_ID.fullmatch(snapshot_id) else self.resolve_snapshot(snapshot_id)
        raw = self._snapshot_cache_get(sid) if listed else None
        if raw is not None:
            try:
                return self._decode_snapshot(sid, raw, what=f"cached snapshot {sid}")
            except RepositoryError:
                pass  # a damaged cache entry: read the location's copy instead
        try:
            raw = self.storage.get(SNAPSHOTS_PREFIX + sid)
        except ObjectNotFoundError:
            raise SnapshotNotFoundError(f"snapshot {sid} not found") from None
        doc = self._decode_snapshot(sid, raw, what=f"snapshot {sid}")
        if listed:
            self._snapshot_cache_put(sid, raw)
        return doc

    def _decode_snapshot(self, sid: str, raw: bytes, *, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(self.open_object(BlobType.SNAPSHOT, bytes.fromhex(sid), raw, what=what))
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(f"{what}: not a valid manifest") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise UnsupportedFormatError(f"{what}: unsupported manifest version")
        if doc.get("id") != sid:
            raise IntegrityError(f"{what}: the manifest names another id")
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
        try:
            return SnapshotInfo(id=doc["id"], time=datetime.fromisoformat(doc["time"]),
                                hostname=doc.get("hostname", ""), tags=tuple(doc.get("tags", ())),
                                metadata=dict(doc.get("metadata", {})), parent=doc.get("parent"),
                                source=doc.get("source"), streams=tuple(sorted(doc.get("streams", {}))),
                                stats=dict(doc.get("stats", {})))
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(f"snapshot {doc.get('id')}: malformed manifest ({exc!r})") from None

    def snapshots(self, *, tags: Iterable[str] = (), problems: list[str] | None = None) -> list[SnapshotInfo]:
        """Every readable snapshot, oldest first; with ``tags``, those carrying all of them.

        A manifest that cannot be read (damaged, tampered, unknown version) is skipped,
        and a line naming it is appended to ``problems`` when given: one bad object
        must not hide every other restore point. ``check`` reports it as an error.
        """
        want = set(tags)
        infos = []
        for sid in self.snapshot_ids():
            try:
                info = self.snapshot_info(self.load_snapshot(sid, listed=True))
            except SnapshotNotFoundError:
                continue  # pruned while listing
            except RepositoryError as exc:
                if problems is not None:
                    problems.append(f"snapshot {sid} is unreadable and was skipped: {exc}")
                continue
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
        size, mtime, ctime and inode are unchanged reuse the parent's content without reading.
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

    def recover(self) -> Any:
        """Versioned locations: make the authentic version of hidden or overwritten objects current."""
        from .recover import recover

        return recover(self)

    def repair_index(self) -> Any:
        from .maintenance import repair_index

        return repair_index(self)

    def prune(self, drop: Iterable[str] = (), *, repack_threshold: float = 0.5,
              wait_timeout: float = 600.0, poll: float = 2.0, leftover_age: float = 3600.0) -> Any:
        """Drop snapshots and delete what no snapshot needs.

        ``leftover_age`` (seconds): temporary files of interrupted writers, and unindexed
        packs while other backups run, are reclaimed once they are this old (the margin
        also covers clock skew between hosts and the storage)."""
        from .maintenance import prune

        return prune(self, list(drop), repack_threshold=repack_threshold, wait_timeout=wait_timeout, poll=poll,
                     leftover_age=leftover_age)

    def unlock(self, *, remove_all: bool = False) -> Any:
        """Remove stale locks (every lock with ``remove_all``: only when nothing runs)."""
        from .locks import remove_locks

        try:
            return remove_locks(self.storage, self.envelope, remove_all=remove_all)
        except StorageError as exc:
            raise self.storage_error(exc) from exc

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
_SLOT_ID = re.compile(r"[0-9a-f]{16}")


def utcnow() -> datetime:
    return datetime.now(UTC)
