"""Keys of a repository: key slots in the location, unlocking, and the keys derived from the master key.

crypto.py holds the primitives (envelope, compression, slot byte formats, KDF);
this module applies them to one location: reading, trying and writing key slots
(``keys/<slot id>``), verifying the config, and sealing/opening the objects of an
open repository (docs/repository-format.md, "Keys and key derivation").
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import blake3

from .crypto import (
    BlobType,
    Compressor,
    Envelope,
    KdfParams,
    KeyWrapper,
    derive_kek_early,
    derive_key,
    make_external_slot,
    make_passphrase_slot,
    open_external_slot,
    open_passphrase_slot,
    verify_slot,
)
from .errors import (
    IntegrityError,
    KeySlotError,
    RepositoryError,
    RepositoryNotFoundError,
    UnsupportedFormatError,
    WrongKeyError,
)
from .format import CONFIG_KEY, KEYS_PREFIX, canonical_json, config_mac, parse_config
from .storage import ObjectNotFoundError, ObjectVersion, Retention, Storage, StorageError, TransientStorageError

_SLOT_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class KeySlotInfo:
    slot_id: str
    type: str
    created: str
    provider: str | None


# -- key slots in the location -------------------------------------------------------------------


def read_slots(storage: Storage) -> tuple[list[dict[str, Any]], list[str]]:
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


def derive_key_early(storage: Storage, passphrase: str) -> None:
    """Derive the key-encryption key of the first passphrase slot at ``storage`` on the calling thread, for
    the :func:`unlock` that follows (see crypto.derive_kek_early). Anything unreadable derives nothing: the
    unlock reports it."""
    try:
        slots, _damaged = read_slots(storage)
    except StorageError:
        return
    for slot in slots:
        if slot.get("type") == "passphrase":
            derive_kek_early(slot, passphrase)
            return


def hidden_slots(storage: Storage) -> Iterator[tuple[str, ObjectVersion, dict[str, Any]]]:
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


def unlock(storage: Storage, repository_id: bytes, passphrase: str | None, key_wrapper: KeyWrapper | None,
           warnings: list[str] | None = None) -> bytes:
    """The master key from the first key slot that opens with the passphrase or external key.

    WrongKeyError when none opens; KeySlotError when slots that could have opened are damaged."""
    slots, damaged = read_slots(storage)
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
    for key, version, slot in hidden_slots(storage):
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


def write_slot(storage: Storage, slot: dict[str, Any], *, retention: Retention | None = None) -> str:
    storage.put(KEYS_PREFIX + slot["slot_id"], canonical_json(slot), retention=retention)
    return str(slot["slot_id"])


def master_config_mac(master: bytes, config: dict[str, Any]) -> str:
    """The config's MAC under the key derived from ``master`` (docs/repository-format.md, "Config object")."""
    return config_mac(derive_key(master, "config mac"), config)


def not_a_repository(storage: Storage) -> RepositoryNotFoundError:
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


def open_config(storage: Storage, passphrase: str | None, key_wrapper: KeyWrapper | None,
                warnings: list[str]) -> tuple[dict[str, Any], bytes]:
    """The repository's authentic config and its master key, unlocked with the passphrase or external key.

    The config is verified (its MAC needs the master key). In a versioned location
    (S3 with versioning or Object Lock) a current ``config`` that is missing (a
    delete marker) or fails verification (a forged newer version) is passed over
    for the newest older version that verifies; a line in ``warnings`` says so.
    """
    masters: dict[bytes, bytes] = {}

    def verified(raw: bytes) -> tuple[dict[str, Any], bytes]:
        config = parse_config(raw)
        try:
            repository_id = bytes.fromhex(config["repository_id"])
        except (KeyError, ValueError, TypeError):
            raise UnsupportedFormatError("repository config has no valid repository_id") from None
        if repository_id not in masters:
            masters[repository_id] = unlock(storage, repository_id, passphrase, key_wrapper, warnings)
        master = masters[repository_id]
        if config.get("mac") != master_config_mac(master, config):
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
            raise not_a_repository(storage) from None  # a missing bucket
        raise
    first_error: RepositoryError | None = None
    if current is not None:
        try:
            return verified(current)
        except (UnsupportedFormatError, IntegrityError, WrongKeyError) as exc:
            first_error = exc
    for version in _older_versions(storage, CONFIG_KEY, current is not None):
        try:
            opened = verified(storage.get_version(CONFIG_KEY, version.version_id))
        except (UnsupportedFormatError, IntegrityError, WrongKeyError):
            continue
        what = "fails verification" if current is not None else "is missing (a delete marker hides it)"
        written = version.modified.isoformat(timespec="seconds") if version.modified else "?"
        warnings.append(f"the current config {what}: using its authentic version {version.version_id} "
                        f"(written {written}); run `kubekeep repo check` and `kubekeep repo recover`")
        return opened
    if first_error is not None:
        raise first_error
    raise not_a_repository(storage)


# -- the keys of an open repository --------------------------------------------------------------


class RepositoryKeys:
    """The master key and what derives from it: blob ids, the data envelope, the config MAC, key slots.

    Thread-safe: the envelope is, and each thread gets its own zstd compressor.
    """

    def __init__(self, storage: Storage, config: dict[str, Any], master: bytes, *, compression_level: int) -> None:
        self.storage = storage
        self.repository_id = bytes.fromhex(config["repository_id"])
        self._master = master
        self.id_key = derive_key(master, "blob id")
        self.envelope = Envelope(config["cipher"], derive_key(master, "data encryption"))
        #: FastCDC seed: keyed, so chunk boundaries do not reveal content across repositories
        self.chunker_seed = int.from_bytes(derive_key(master, "chunker seed")[:8], "little") & ((1 << 62) - 1) or 1
        self.compression_level = compression_level
        self._local = threading.local()

    @property
    def master_key(self) -> bytes:
        """The master key itself: only to initialise a replica (Repository.init_replica)."""
        return self._master

    def same_master(self, other: RepositoryKeys) -> bool:
        return hmac.compare_digest(self._master, other._master)

    def verify_config(self, raw: bytes) -> dict[str, Any]:
        """The config in ``raw`` if it is this repository's authentic config; IntegrityError otherwise."""
        config = parse_config(raw)
        if config.get("repository_id") != self.repository_id.hex() or \
                config.get("mac") != master_config_mac(self._master, config):
            raise IntegrityError("config failed authentication")
        return config

    # -- sealing and opening ---------------------------------------------------------------

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

    # -- key slots -------------------------------------------------------------------------

    def list_slots(self) -> list[KeySlotInfo]:
        return [KeySlotInfo(str(s["slot_id"]), str(s.get("type")), str(s.get("created", "")), s.get("provider"))
                for s in read_slots(self.storage)[0]]

    def add_passphrase(self, passphrase: str, *, kdf: KdfParams | None = None,
                       retention: Retention | None = None) -> str:
        if not passphrase:
            raise RepositoryError("the passphrase must not be empty")
        slot = make_passphrase_slot(self._master, self.repository_id, passphrase, kdf or KdfParams())
        return write_slot(self.storage, slot, retention=retention)

    def add_external_key(self, wrapper: KeyWrapper, *, retention: Retention | None = None) -> str:
        return write_slot(self.storage, make_external_slot(self._master, self.repository_id, wrapper),
                          retention=retention)

    def remove_slot(self, slot_id: str) -> None:
        """Remove a key slot (a damaged one too), never the last intact one."""
        slots = {s.slot_id for s in self.list_slots()}
        damaged = slot_id not in slots and self.storage.exists(KEYS_PREFIX + slot_id) \
            if _SLOT_ID.fullmatch(slot_id) else False
        if slot_id not in slots and not damaged:
            raise RepositoryError(f"no key slot {slot_id!r} (slots: {', '.join(sorted(slots))})")
        if slots == {slot_id}:
            raise RepositoryError("refusing to remove the last key slot: the repository would be unreadable")
        self.storage.delete(KEYS_PREFIX + slot_id)


class CatalogCodec:
    """Seals and opens the catalog's Parquet files with the repository's data key.

    The envelope's id is BLAKE3 of the object key, so a catalog file copied to
    another key fails authentication."""

    def __init__(self, keys: RepositoryKeys) -> None:
        self._keys = keys

    @staticmethod
    def _ident(key: str) -> bytes:
        return blake3.blake3(key.encode()).digest()

    def seal(self, key: str, data: bytes) -> bytes:
        return self._keys.seal_object(BlobType.CATALOG, self._ident(key), data)

    def open(self, key: str, data: bytes) -> bytes:
        return self._keys.open_object(BlobType.CATALOG, self._ident(key), data, what=f"catalog file {key}")
