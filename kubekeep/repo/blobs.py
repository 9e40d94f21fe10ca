"""Blob I/O: reading and verifying blobs from packs, pack headers, and finishing new packs.

A pack is the blobs' envelopes one after another, then the sealed header and the
trailer (docs/repository-format.md, "Pack object"). Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from .crypto import FLAG_RAW, BlobType
from .errors import IntegrityError, MissingObjectError, RepositoryError
from .format import (
    DATA_PREFIX,
    PACK_MAGIC,
    PACK_TRAILER,
    BlobEntry,
    decode_pack_header,
    encode_pack_header,
    pack_id_from_key,
    pack_key,
)
from .index import IndexStore
from .keys import RepositoryKeys
from .protocols import IndexView
from .recent import RecentTrees
from .storage import ObjectInfo, ObjectNotFoundError, Storage

T = TypeVar("T")

#: runs of a local pack up to this size are read into a buffer each thread keeps (the restore's runs are at
#: most 8 MiB); a bigger one is read into a buffer of its own
READ_BUFFER_MAX = 8 << 20


class BlobStore:
    def __init__(self, storage: Storage, keys: RepositoryKeys, indexes: IndexStore) -> None:
        self.storage = storage
        self.keys = keys
        self.indexes = indexes
        self.recent_trees = RecentTrees()
        self._local = threading.local()

    # -- reading blobs ---------------------------------------------------------------------

    def read_blob(self, blob_id: bytes, *, index: IndexView | None = None, recent: bool = False) -> bytes:
        """Plaintext of a blob, verified against its id. IntegrityError/MissingObjectError otherwise.

        ``recent``: a tree the latest backup of this process changed may come from memory
        (:class:`RecentTrees`); never for verification."""
        if recent:
            plain = self.recent_trees.get(blob_id)
            if plain is not None and blob_id in (index if index is not None else self.indexes.current()):
                return plain
        entry, raw, what = self._read_envelope(blob_id, index)
        return self.decode_blob(entry, raw, what=what)

    def read_blob_payload(self, blob_id: bytes, *, index: IndexView | None = None) -> tuple[bytes, int, bytes]:
        """(plaintext verified against its id, compression flag, stored payload): what a copy re-seals under
        another key without compressing again. IntegrityError/MissingObjectError otherwise."""
        entry, raw, what = self._read_envelope(blob_id, index)
        return self._open_payload(entry, raw, what)

    def _open_payload(self, entry: BlobEntry, raw: bytes | memoryview, what: str) -> tuple[bytes, int, bytes]:
        flag, payload = self.keys.envelope.open(entry.blob_type, entry.blob_id, raw, what=what)
        plain = self.keys.compressor.unpack(flag, payload, raw_length=entry.raw_length, what=what)
        self._check_id(entry, plain, what)
        return plain, flag, payload

    def _read_envelope(self, blob_id: bytes, index: IndexView | None) -> tuple[BlobEntry, bytes, str]:
        loc = (index if index is not None else self.indexes.current()).lookup(blob_id)
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
        return loc.entry, raw, what

    def decode_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> bytes:
        """Decrypt, decompress and verify one blob envelope read from its pack."""
        plain = self.keys.envelope.open_blob(entry.blob_type, entry.blob_id, raw, self.keys.compressor,
                                             raw_length=entry.raw_length, what=what)
        self._check_id(entry, plain, what)
        return plain

    def authenticate_blob(self, entry: BlobEntry, raw: bytes | memoryview, *, what: str) -> None:
        """Check one blob envelope's tag under its type and id (no decompression, no content hash): for
        bytes that are moved as they are (a replica copy); IntegrityError otherwise."""
        self.keys.envelope.authenticate(entry.blob_type, entry.blob_id, raw, what=what)

    def _check_id(self, entry: BlobEntry, plain: bytes, what: str) -> None:
        if len(plain) != entry.raw_length or self.keys.blob_id(plain) != entry.blob_id:
            raise IntegrityError(f"{what}: content does not match its id")

    def read_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                        storage: Storage | None = None) -> list[bytes | RepositoryError]:
        """Several blobs of one pack with one ranged read (entries sorted by offset, close together).

        A blob that fails verification is returned as its IntegrityError, so that it
        fails only the file it belongs to; a missing pack raises MissingObjectError.
        """
        return self._read_run(pack_id, entries, storage, self.decode_blob)

    def read_pack_payloads(self, pack_id: bytes, entries: Sequence[BlobEntry], *, storage: Storage | None = None
                           ) -> list[tuple[bytes, int, bytes] | RepositoryError]:
        """Several blobs of one pack with one ranged read, each as :meth:`read_blob_payload` returns it (a
        copy re-seals them under another key); a blob that fails verification is its IntegrityError."""
        return self._read_run(pack_id, entries, storage, self._open_payload)

    def authenticate_pack_blobs(self, pack_id: bytes, entries: Sequence[BlobEntry], *,
                                storage: Storage | None = None) -> list[None | RepositoryError]:
        """Several blobs of one pack read with one ranged read and authenticated (:meth:`authenticate_blob`):
        None for each blob whose tag holds, its IntegrityError otherwise."""
        return self._read_run(pack_id, entries, storage, self.authenticate_blob)

    def _read_run(self, pack_id: bytes, entries: Sequence[BlobEntry], storage: Storage | None,
                     decode: Callable[..., T]) -> list[T | RepositoryError]:
        start = entries[0].offset
        end = max(e.offset + e.length for e in entries)
        storage = storage or self.storage
        buffer = self._read_buffer(end - start) if storage.reads_into else None
        try:
            if buffer is not None:
                with memoryview(buffer) as into:
                    n = storage.get_range_into(pack_key(pack_id), start, into[:end - start])
                raw: bytes | memoryview = memoryview(buffer)[:n]
            else:
                raw = storage.get_range(pack_key(pack_id), start, end - start)
        except ObjectNotFoundError:
            raise MissingObjectError(f"pack {pack_id.hex()} is missing") from None
        out: list[T | RepositoryError] = []
        with memoryview(raw) as view:
            for e in entries:
                what = f"pack {pack_id.hex()} blob {e.blob_id.hex()} ({BlobType.NAMES.get(e.blob_type, '?')})"
                piece = view[e.offset - start:e.offset - start + e.length]
                if len(piece) != e.length:
                    out.append(IntegrityError(f"{what}: pack is truncated"))
                    continue
                try:
                    out.append(decode(e, piece, what=what))
                except RepositoryError as exc:
                    out.append(exc)
        if isinstance(raw, memoryview):
            raw.release()
        return out

    def _read_buffer(self, size: int) -> bytearray | None:
        """This thread's buffer for reading a run of a local pack (kept and reused: a fresh one per run
        faulted its pages in every time), or None for a run above READ_BUFFER_MAX."""
        if size > READ_BUFFER_MAX:
            return None
        buf: bytearray | None = getattr(self._local, "read_buffer", None)
        if buf is None or len(buf) < size:
            buf = bytearray(max(size, 1 << 20))
            self._local.read_buffer = buf
        return buf

    # -- packs -----------------------------------------------------------------------------

    def list_packs(self) -> dict[bytes, ObjectInfo]:
        packs = {}
        for info in self.storage.list(DATA_PREFIX):
            pack_id = pack_id_from_key(info.key)
            if pack_id is not None:
                packs[pack_id] = info
        return packs

    def read_pack_header(self, pack_id: bytes, size: int | None = None) -> list[BlobEntry]:
        """The blobs a pack says it holds. IntegrityError when the pack is truncated or damaged."""
        key = pack_key(pack_id)
        what = f"pack {pack_id.hex()}"
        if size is None:
            size = self.storage.stat(key).size
        if size < PACK_TRAILER.size:
            raise IntegrityError(f"{what}: truncated ({size} bytes)")
        header_len, magic = PACK_TRAILER.unpack(self.storage.get_range(key, size - PACK_TRAILER.size,
                                                                       PACK_TRAILER.size))
        if magic != PACK_MAGIC or header_len > size - PACK_TRAILER.size:
            raise IntegrityError(f"{what}: truncated or not a pack (bad trailer)")
        start = size - PACK_TRAILER.size - header_len
        raw = self.storage.get_range(key, start, header_len)
        payload = self.keys.open_object(BlobType.PACK_HEADER, pack_id, raw, what=f"{what} header")
        entries = decode_pack_header(payload, what=what)
        if entries and entries[-1].offset + entries[-1].length != start:
            raise IntegrityError(f"{what}: header does not match the pack's length")
        return entries

    def pack_tail(self, pack_id: bytes, entries: Sequence[BlobEntry]) -> bytes:
        """What follows the blobs of a new pack: its sealed header and the trailer."""
        header = self.keys.envelope.seal(BlobType.PACK_HEADER, pack_id, FLAG_RAW, encode_pack_header(entries))
        return header + PACK_TRAILER.pack(len(header), PACK_MAGIC)

