"""Byte formats of packs and index objects, and the repository config (docs/repository-format.md)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from .errors import IntegrityError, UnsupportedFormatError

FORMAT_NAME = "kubekeep-repository"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

CONFIG_KEY = "config"
KEYS_PREFIX = "keys/"
DATA_PREFIX = "data/"
INDEX_PREFIX = "index/"
SNAPSHOTS_PREFIX = "snapshots/"
LOCKS_PREFIX = "locks/"
PRUNE_PREFIX = "prune/"
CATALOG_PREFIX = "catalog/"

PACK_MAGIC = b"KKP1"
PACK_TRAILER = struct.Struct("<I4s")
HEADER_RECORD = struct.Struct("<B32sII")
INDEX_MAGIC = b"KKI1"
INDEX_PACK = struct.Struct("<32sI")
INDEX_RECORD = struct.Struct("<B32sIII")

#: content with more chunks than this is listed through chunk-list blobs
INLINE_CHUNKS = 1024
#: chunk ids per chunk-list blob
CHUNKS_PER_LIST = 4096

DEFAULT_CHUNKER = {"algorithm": "fastcdc2020", "min_size": 32 * 1024, "avg_size": 96 * 1024,
                   "max_size": 512 * 1024, "normalization": 1}
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
#: zstd level of new repositories: on the benchmark volume (JSON rows, database pages, random data,
#: small config files) level 1 stores 0.6 % more than level 3 for 30 % less compression CPU
#: (1.97 vs 2.84 s per GiB on one core; docs/benchmarks.md); a repository keeps the level it was made with
DEFAULT_COMPRESSION_LEVEL = 1


def pack_key(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"{DATA_PREFIX}{h[:2]}/{h}"


def id_from_key(key: str, prefix: str) -> bytes | None:
    """The id named by ``<prefix><64 hex digits>``, or None for any other key."""
    name = key[len(prefix):] if key.startswith(prefix) else ""
    if len(name) != 64:
        return None
    try:
        return bytes.fromhex(name)
    except ValueError:
        return None


def pack_id_from_key(key: str) -> bytes | None:
    """The pack id named by ``data/<xx>/<id>`` (``xx`` its first two hex digits), or None."""
    pack_id = id_from_key(key, key[:len(DATA_PREFIX) + 3])
    return pack_id if pack_id is not None and pack_key(pack_id) == key else None


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def config_mac(mac_key: bytes, config: dict[str, Any]) -> str:
    body = {k: v for k, v in config.items() if k != "mac"}
    return blake3.blake3(canonical_json(body), key=mac_key).hexdigest()


def parse_config(raw: bytes) -> dict[str, Any]:
    """Parse and version-check the config, before any key is available."""
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnsupportedFormatError("repository config is not valid JSON (not a kubekeep repository?)") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise UnsupportedFormatError("this location holds no kubekeep repository config")
    version = config.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedFormatError(
            f"repository format version {version!r} is not supported by this kubekeep "
            f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade kubekeep")
    return config


@dataclass(frozen=True, slots=True)
class BlobEntry:
    blob_type: int
    blob_id: bytes
    offset: int
    length: int
    raw_length: int


def encode_pack_header(entries: Sequence[BlobEntry]) -> bytes:
    return b"".join(HEADER_RECORD.pack(e.blob_type, e.blob_id, e.length, e.raw_length) for e in entries)


def decode_pack_header(payload: bytes, *, what: str) -> list[BlobEntry]:
    if len(payload) % HEADER_RECORD.size:
        raise IntegrityError(f"{what}: malformed pack header")
    entries = []
    offset = 0
    for blob_type, blob_id, length, raw_length in HEADER_RECORD.iter_unpack(payload):
        entries.append(BlobEntry(blob_type, blob_id, offset, length, raw_length))
        offset += length
    return entries


def encode_index(packs: dict[bytes, list[BlobEntry]]) -> bytes:
    parts = [INDEX_MAGIC]
    for pack_id, entries in packs.items():
        parts.append(INDEX_PACK.pack(pack_id, len(entries)))
        parts.extend(INDEX_RECORD.pack(e.blob_type, e.blob_id, e.offset, e.length, e.raw_length)
                     for e in entries)
    return b"".join(parts)


def decode_index(payload: bytes, *, what: str) -> Iterator[tuple[bytes, list[BlobEntry]]]:
    if payload[:4] != INDEX_MAGIC:
        raise IntegrityError(f"{what}: not an index object")
    pos = 4
    try:
        while pos < len(payload):
            pack_id, count = INDEX_PACK.unpack_from(payload, pos)
            pos += INDEX_PACK.size
            end = pos + count * INDEX_RECORD.size
            if end > len(payload):
                raise IntegrityError(f"{what}: truncated index object")
            entries = [BlobEntry(*rec) for rec in INDEX_RECORD.iter_unpack(payload[pos:end])]
            pos = end
            yield pack_id, entries
    except struct.error:
        raise IntegrityError(f"{what}: malformed index object") from None
