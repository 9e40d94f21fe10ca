"""Keys, key slots and the encrypted envelope (see docs/repository-format.md)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import blake3
import zstandard
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .errors import IntegrityError, KeySlotError, RepositoryError, WrongKeyError

NONCE_SIZE = 12
TAG_SIZE = 16
ENVELOPE_OVERHEAD = NONCE_SIZE + TAG_SIZE + 1
AAD_PREFIX = b"kubekeep/1"

CIPHERS = ("aes-256-gcm", "chacha20-poly1305")

FLAG_RAW = 0
FLAG_ZSTD = 1
#: store compressed only when it saves at least this fraction
MIN_SAVING = 0.03


class BlobType:
    DATA = 1
    TREE = 2
    CHUNK_LIST = 3
    INDEX = 16
    SNAPSHOT = 17
    PACK_HEADER = 18
    LOCK = 19
    CATALOG = 20
    PRUNE_RECORD = 21

    NAMES = {1: "data", 2: "tree", 3: "chunk list", 16: "index", 17: "snapshot", 18: "pack header", 19: "lock",
             20: "catalog file", 21: "prune record"}


def derive_key(master: bytes, purpose: str) -> bytes:
    ctx = f"kubekeep 2024 repository v1 {purpose}"
    return blake3.blake3(master, derive_key_context=ctx).digest()


#: bounds on argon2id parameters read from a key slot (and accepted for new slots): a damaged or
#: hostile slot must not make every open allocate gigabytes or run for minutes
KDF_MAX_TIME_COST = 10
KDF_MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
KDF_MAX_PARALLELISM = 16
#: time_cost * memory_kib: about 2 GiB of memory passes, a few seconds on one core
KDF_MAX_WORK = 2 * 1024 * 1024
KDF_SALT_SIZES = range(8, 65)


def check_kdf_params(time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Raise KeySlotError when argon2id parameters are outside the accepted bounds."""
    problems = []
    if not 1 <= time_cost <= KDF_MAX_TIME_COST:
        problems.append(f"time_cost {time_cost} (1..{KDF_MAX_TIME_COST})")
    if not 1 <= parallelism <= KDF_MAX_PARALLELISM:
        problems.append(f"parallelism {parallelism} (1..{KDF_MAX_PARALLELISM})")
    if not 8 * max(parallelism, 1) <= memory_kib <= KDF_MAX_MEMORY_KIB:
        problems.append(f"memory {memory_kib} KiB ({8 * max(parallelism, 1)}..{KDF_MAX_MEMORY_KIB} KiB)")
    if not problems and time_cost * memory_kib > KDF_MAX_WORK:
        problems.append(f"time_cost x memory {time_cost} x {memory_kib} KiB (at most {KDF_MAX_WORK} KiB passes)")
    if problems:
        raise KeySlotError("KDF parameters out of bounds: " + ", ".join(problems))


@dataclass(frozen=True)
class KdfParams:
    """argon2id parameters; the defaults are for real use, tests pass ``KdfParams.cheap()``."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2

    def __post_init__(self) -> None:
        check_kdf_params(self.time_cost, self.memory_kib, self.parallelism)

    @classmethod
    def cheap(cls) -> KdfParams:
        return cls(time_cost=1, memory_kib=256, parallelism=1)


def _aead(cipher: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    if cipher == "aes-256-gcm":
        return AESGCM(key)
    if cipher == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    raise RepositoryError(f"unknown cipher {cipher!r} (known: {', '.join(CIPHERS)})")


def envelope_aad(blob_type: int, ident: bytes) -> bytes:
    return AAD_PREFIX + bytes([blob_type]) + ident


class Envelope:
    """Seals and opens envelopes with the repository data key. Thread-safe.

    ``seal_into`` and ``open_blob`` are the data path: they encrypt straight into
    the caller's pack buffer and decrypt into a per-thread scratch buffer
    (``encrypt_into``/``decrypt_into``), which avoids allocating and copying
    every chunk two or three times.
    """

    def __init__(self, cipher: str, data_key: bytes) -> None:
        self.cipher = cipher
        self._aead = _aead(cipher, data_key)
        self._local = threading.local()

    def _scratch(self, size: int) -> bytearray:
        buf: bytearray | None = getattr(self._local, "scratch", None)
        if buf is None or len(buf) < size:
            buf = bytearray(max(size, 1 << 20))
            self._local.scratch = buf
        return buf

    def seal(self, blob_type: int, ident: bytes, flag: int, payload: bytes | bytearray | memoryview) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        plain = bytes([flag]) + bytes(payload)
        return nonce + self._aead.encrypt(nonce, plain, envelope_aad(blob_type, ident))

    @staticmethod
    def sealed_size(payload_size: int) -> int:
        return payload_size + ENVELOPE_OVERHEAD

    def seal_into(self, blob_type: int, ident: bytes, flag: int, payload: bytes | bytearray | memoryview,
                  out: bytearray, pos: int) -> int:
        """Write the envelope at ``out[pos:]`` (which must have room); return its length."""
        n = len(payload)
        scratch = self._scratch(n + 1)
        scratch[0] = flag
        scratch[1:n + 1] = payload
        nonce = os.urandom(NONCE_SIZE)
        end = pos + NONCE_SIZE + n + 1 + TAG_SIZE
        out[pos:pos + NONCE_SIZE] = nonce
        with memoryview(scratch) as plain, memoryview(out) as view:
            self._aead.encrypt_into(nonce, plain[:n + 1], envelope_aad(blob_type, ident),
                                    view[pos + NONCE_SIZE:end])
        return end - pos

    def open(self, blob_type: int, ident: bytes, data: bytes | memoryview, *, what: str) -> tuple[int, bytes]:
        """Return (flag, payload) or raise IntegrityError naming ``what``."""
        if len(data) < ENVELOPE_OVERHEAD:
            raise IntegrityError(f"{what}: truncated ({len(data)} bytes)")
        try:
            plain = self._aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], envelope_aad(blob_type, ident))
        except InvalidTag:
            raise IntegrityError(f"{what}: authentication failed (damaged, truncated or tampered)") from None
        return plain[0], plain[1:]

    def open_blob(self, blob_type: int, ident: bytes, data: bytes | memoryview, compressor: Compressor, *,
                  raw_length: int, what: str) -> bytes:
        """Decrypt and decompress one blob envelope; the plaintext (unverified against its id)."""
        scratch, n = self._decrypt_to_scratch(blob_type, ident, data, what)
        with memoryview(scratch) as view:
            flag = view[0]
            if flag == FLAG_RAW:
                return bytes(view[1:n])
            return compressor.unpack(flag, view[1:n], raw_length=raw_length, what=what)

    def authenticate(self, blob_type: int, ident: bytes, data: bytes | memoryview, *, what: str) -> None:
        """Check one envelope's tag (its type and id are the associated data) without decompressing it:
        proves the bytes are what a holder of the key sealed under that id. IntegrityError otherwise."""
        self._decrypt_to_scratch(blob_type, ident, data, what)

    def _decrypt_to_scratch(self, blob_type: int, ident: bytes, data: bytes | memoryview, what: str
                            ) -> tuple[bytearray, int]:
        """(this thread's scratch buffer, n): the envelope's plaintext is its first n bytes."""
        if len(data) < ENVELOPE_OVERHEAD:
            raise IntegrityError(f"{what}: truncated ({len(data)} bytes)")
        n = len(data) - NONCE_SIZE - TAG_SIZE
        scratch = self._scratch(n)
        with memoryview(data) as src, memoryview(scratch) as view:
            try:
                self._aead.decrypt_into(src[:NONCE_SIZE], src[NONCE_SIZE:], envelope_aad(blob_type, ident),
                                        view[:n])
            except InvalidTag:
                raise IntegrityError(f"{what}: authentication failed (damaged, truncated or tampered)") from None
        return scratch, n


class Compressor:
    """One per thread (zstd contexts are not thread-safe)."""

    def __init__(self, level: int) -> None:
        self._c = zstandard.ZstdCompressor(level=level)
        self._d = zstandard.ZstdDecompressor()

    def pack(self, data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        if len(data) < 64:
            return FLAG_RAW, data
        out = self._c.compress(data)
        if len(out) <= len(data) * (1 - MIN_SAVING):
            return FLAG_ZSTD, out
        return FLAG_RAW, data

    def unpack(self, flag: int, payload: bytes | memoryview, *, raw_length: int | None = None,
               what: str) -> bytes:
        if flag == FLAG_RAW:
            return bytes(payload)
        if flag == FLAG_ZSTD:
            try:
                if raw_length is not None:
                    return self._d.decompress(payload, max_output_size=raw_length)
                return self._d.decompress(payload)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"{what}: cannot decompress: {exc}") from None
        raise IntegrityError(f"{what}: unknown compression flag {flag}")


# -- key slots -------------------------------------------------------------------------------


@runtime_checkable
class KeyWrapper(Protocol):
    """An external key service (KMS, HSM, a local key file) that wraps the master key."""

    @property
    def name(self) -> str: ...

    @property
    def key_ref(self) -> str: ...

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Return the plaintext or raise WrongKeyError."""
        ...


class LocalKeyWrapper:
    """Wraps with a 32-byte key held in a file or an environment variable (hex or raw bytes).

    Good for tests and single-host setups; a KMS wrapper implements the same protocol.
    """

    name = "local"

    def __init__(self, key: bytes, key_ref: str = "local") -> None:
        if len(key) != 32:
            raise RepositoryError("an external key must be 32 bytes (64 hex digits)")
        self._aead = AESGCM(key)
        self.key_ref = key_ref

    @staticmethod
    def _decode(raw: bytes) -> bytes:
        text = raw.strip()
        if len(text) == 64:
            try:
                return bytes.fromhex(text.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                pass
        return raw

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKeyWrapper:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise RepositoryError(f"cannot read key file {path}: {exc}") from None
        return cls(cls._decode(raw), key_ref=f"file:{Path(path).name}")

    @classmethod
    def from_env(cls, variable: str) -> LocalKeyWrapper:
        value = os.environ.get(variable)
        if not value:
            raise RepositoryError(f"environment variable {variable} is not set")
        return cls(cls._decode(value.encode()), key_ref=f"env:{variable}")

    @staticmethod
    def generate_key() -> str:
        return secrets.token_hex(32)

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError):
            raise WrongKeyError("the external key does not open this key slot") from None


def slot_aad(repository_id: bytes, slot_id: str) -> bytes:
    return b"kubekeep keyslot v1" + repository_id + slot_id.encode("ascii")


def _kek(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    with _early_lock:
        early = _early_keks.pop((passphrase, salt, kdf), None)
    if early is not None:  # derived (or being derived) ahead, on another thread: derive_kek_early
        return early.wait()
    return _derive_kek(passphrase, salt, kdf)


def _derive_kek(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    return hash_secret_raw(passphrase.encode("utf-8"), salt, time_cost=kdf.time_cost,
                           memory_cost=kdf.memory_kib, parallelism=kdf.parallelism,
                           hash_len=32, type=Type.ID)


class _EarlyKek:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.kek: bytes | None = None
        self.error: BaseException | None = None

    def wait(self) -> bytes:
        self.done.wait()
        if self.kek is None:
            raise KeySlotError(f"the key derivation failed: {self.error}")
        return self.kek


#: key-encryption keys derived ahead of their slot's opening, by (passphrase, salt, parameters); each is
#: taken once (process memory only, like every key of an open repository)
_early_keks: dict[tuple[str, bytes, KdfParams], _EarlyKek] = {}
_early_lock = threading.Lock()


def derive_kek_early(slot: dict[str, Any], passphrase: str) -> None:
    """Derive the key-encryption key of the passphrase slot ``slot`` now, on the calling thread, for the
    :func:`open_passphrase_slot` that follows (Argon2id holds no lock: a command derives it on one core while
    its start-up runs on the other). The slot's KDF parameters are checked first, as the opening does; a
    damaged slot derives nothing."""
    try:
        verify_slot(slot)
        params, salt = _slot_kdf(slot)
    except KeySlotError:
        return
    early = _EarlyKek()
    with _early_lock:
        if (passphrase, salt, params) in _early_keks:
            return
        _early_keks[(passphrase, salt, params)] = early
    try:
        early.kek = _derive_kek(passphrase, salt, params)
    except BaseException as exc:  # noqa: BLE001 - the opening that waits for it says so
        early.error = exc
    finally:
        early.done.set()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeySlotError(f"damaged: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise KeySlotError(f"damaged: {what} is not valid base64") from None


#: master key (32) sealed with AES-GCM: nonce, ciphertext, tag
_WRAPPED_SIZE = NONCE_SIZE + 32 + TAG_SIZE


def slot_checksum(slot: dict[str, Any]) -> str:
    """BLAKE3 of the slot's other fields (canonical JSON): tells a damaged slot from a wrong
    passphrase. Not a MAC: whoever can write a slot can recompute it (that is a denial of
    service, like deleting the slot; the wrapped key itself is authenticated by AES-GCM)."""
    body = {k: v for k, v in slot.items() if k != "checksum"}
    return blake3.blake3(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _with_checksum(slot: dict[str, Any]) -> dict[str, Any]:
    slot["checksum"] = slot_checksum(slot)
    return slot


def verify_slot(slot: Any) -> None:
    """KeySlotError unless the slot is well-formed (and matches its checksum, when it has one)."""
    if not isinstance(slot, dict):
        raise KeySlotError("damaged: not a JSON object")
    if "checksum" in slot and slot["checksum"] != slot_checksum(slot):
        raise KeySlotError("damaged: its content does not match its checksum")
    if not isinstance(slot.get("slot_id"), str):
        raise KeySlotError("damaged: no slot_id")


def make_passphrase_slot(master: bytes, repository_id: bytes, passphrase: str, kdf: KdfParams) -> dict[str, Any]:
    slot_id = secrets.token_hex(8)
    salt = os.urandom(16)
    nonce = os.urandom(NONCE_SIZE)
    wrapped = nonce + AESGCM(_kek(passphrase, salt, kdf)).encrypt(nonce, master, slot_aad(repository_id, slot_id))
    return _with_checksum({
        "version": 1, "slot_id": slot_id, "type": "passphrase", "created": now_iso(),
        "kdf": {"algorithm": "argon2id", "time_cost": kdf.time_cost, "memory_kib": kdf.memory_kib,
                "parallelism": kdf.parallelism, "salt": _b64(salt)},
        "wrapped": _b64(wrapped)})


def make_external_slot(master: bytes, repository_id: bytes, wrapper: KeyWrapper) -> dict[str, Any]:
    slot_id = secrets.token_hex(8)
    return _with_checksum({
        "version": 1, "slot_id": slot_id, "type": "external", "created": now_iso(),
        "provider": wrapper.name, "key_ref": wrapper.key_ref,
        "wrapped": _b64(wrapper.wrap(master, slot_aad(repository_id, slot_id)))})


def _slot_kdf(slot: dict[str, Any]) -> tuple[KdfParams, bytes]:
    kdf = slot.get("kdf")
    if not isinstance(kdf, dict):
        raise KeySlotError("damaged: no KDF parameters")
    if kdf.get("algorithm") != "argon2id":
        raise KeySlotError(f"unknown KDF {kdf.get('algorithm')!r}")
    values = []
    for name in ("time_cost", "memory_kib", "parallelism"):
        value = kdf.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise KeySlotError(f"damaged: KDF parameter {name} is {value!r}")
        values.append(value)
    check_kdf_params(*values)
    salt = _unb64(kdf.get("salt"), "the salt")
    if len(salt) not in KDF_SALT_SIZES:
        raise KeySlotError(f"damaged: salt of {len(salt)} bytes")
    return KdfParams(*values), salt


def open_passphrase_slot(slot: dict[str, Any], repository_id: bytes, passphrase: str) -> bytes | None:
    """The master key, or None when the passphrase does not open this slot.

    KeySlotError when the slot is damaged or its KDF parameters are out of bounds
    (checked before argon2 runs)."""
    verify_slot(slot)
    params, salt = _slot_kdf(slot)
    wrapped = _unb64(slot.get("wrapped"), "the wrapped key")
    if len(wrapped) != _WRAPPED_SIZE:
        raise KeySlotError(f"damaged: wrapped key of {len(wrapped)} bytes (expected {_WRAPPED_SIZE})")
    kek = _kek(passphrase, salt, params)
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:],
                                   slot_aad(repository_id, str(slot["slot_id"])))
    except InvalidTag:
        return None


def open_external_slot(slot: dict[str, Any], repository_id: bytes, wrapper: KeyWrapper) -> bytes | None:
    verify_slot(slot)
    if slot.get("provider") != wrapper.name:
        return None
    try:
        return wrapper.unwrap(_unb64(slot.get("wrapped"), "the wrapped key"),
                              slot_aad(repository_id, str(slot["slot_id"])))
    except WrongKeyError:
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()

