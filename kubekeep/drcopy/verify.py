"""Authenticating a whole pack held in memory: its header, and every blob's envelope under its id."""

from __future__ import annotations

from kubekeep.repo.crypto import BlobType
from kubekeep.repo.errors import IntegrityError, RepositoryError
from kubekeep.repo.format import PACK_MAGIC, PACK_TRAILER, BlobEntry, decode_pack_header, pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import StorageError


class PackVerificationError(RepositoryError):
    """A pack that fails authentication; the message names the pack (and the blob)."""


def verify_pack(repo: Repository, pack_id: bytes, raw: bytes | memoryview, *, where: str) -> list[BlobEntry]:
    """The entries of the pack ``raw``, after its header and every blob envelope in it were authenticated
    with ``repo``'s keys (AEAD; a blob's type and id are its associated data, so a damaged, truncated,
    swapped or forged blob fails). PackVerificationError names the pack and the blob otherwise.

    Packs verified here move byte for byte (a replica copy, a killed run's pack adopted), so the tag is the
    whole proof that they are the bytes the source's writer sealed; decompressing and hashing each blob
    again (what a restore and ``kubekeep verify`` do) would check that writer, not the copy, and cost
    a third of a replica copy's CPU."""
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
            repo.authenticate_blob(e, view[e.offset:e.offset + e.length],
                                   what=f"blob {e.blob_id.hex()} ({BlobType.NAMES.get(e.blob_type, '?')})")
    except RepositoryError as exc:
        raise PackVerificationError(f"{what} fails verification: {exc}") from None
    return entries


#: bytes of a stored pack read at once when it is verified where it is (not the whole pack: memory)
READ_BACK_BYTES = 4 * 1024 * 1024


def verify_stored_pack(repo: Repository, pack_id: bytes, *, where: str) -> tuple[list[BlobEntry], int]:
    """(entries, size) of the pack ``pack_id`` in ``repo``'s storage, after its header and every blob envelope
    in it were authenticated (as in :func:`verify_pack`), reading at most READ_BACK_BYTES at a time: the
    read-back of packs this copy sealed itself from blobs it had checked against their ids.
    PackVerificationError names it otherwise."""
    what = f"pack {pack_id.hex()} at {where}"
    try:
        size = repo.storage.stat(pack_key(pack_id)).size
        entries = repo.read_pack_header(pack_id, size)
        group: list[BlobEntry] = []
        for e in [*entries, None]:
            if e is not None and (not group or e.offset + e.length - group[0].offset <= READ_BACK_BYTES):
                group.append(e)
                continue
            if group:
                for problem in repo.authenticate_pack_blobs(pack_id, group):
                    if problem is not None:
                        raise problem
            group = [e] if e is not None else []
    except (RepositoryError, StorageError) as exc:
        raise PackVerificationError(f"{what} fails verification: {exc}") from None
    return entries, size
