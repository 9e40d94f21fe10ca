"""Authenticating a whole pack held in memory: its header, and every blob against its id."""

from __future__ import annotations

from kubekeep.repo.crypto import BlobType
from kubekeep.repo.errors import IntegrityError, RepositoryError
from kubekeep.repo.format import PACK_MAGIC, PACK_TRAILER, BlobEntry, decode_pack_header
from kubekeep.repo.repository import Repository


class PackVerificationError(RepositoryError):
    """A pack that fails authentication; the message names the pack (and the blob)."""


def verify_pack(repo: Repository, pack_id: bytes, raw: bytes | memoryview, *, where: str) -> list[BlobEntry]:
    """The entries of the pack ``raw``, after every blob in it was decrypted, decompressed and
    checked against its id with ``repo``'s keys. PackVerificationError names the pack otherwise."""
    what = f"pack {pack_id.hex()} at {where}"
    size = len(raw)
    view = memoryview(raw)
    try:
        if size < PACK_TRAILER.size:
            raise IntegrityError(f"truncated ({size} bytes)")
        header_len, magic = PACK_TRAILER.unpack(view[size - PACK_TRAILER.size:])
        if magic != PACK_MAGIC or header_len > size - PACK_TRAILER.size:
            raise IntegrityError("truncated or not a pack (bad trailer)")
        start = size - PACK_TRAILER.size - header_len
        payload = repo.open_object(BlobType.PACK_HEADER, pack_id, bytes(view[start:start + header_len]),
                                   what="header")
        entries = decode_pack_header(payload, what="header")
        if entries and entries[-1].offset + entries[-1].length != start:
            raise IntegrityError("header does not match the pack's length")
        for e in entries:
            repo.decode_blob(e, view[e.offset:e.offset + e.length],
                             what=f"blob {e.blob_id.hex()} ({BlobType.NAMES.get(e.blob_type, '?')})")
    except RepositoryError as exc:
        raise PackVerificationError(f"{what} fails verification: {exc}") from None
    return entries
