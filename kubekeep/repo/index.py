"""The in-memory repository index: blob id -> (pack, offset, length).

Entries are packed into one int per blob to keep memory near 150 bytes per blob
(a tuple of five fields would cost twice that).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .format import BlobEntry

_M32 = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Location:
    pack_id: bytes
    entry: BlobEntry


class Index:
    def __init__(self) -> None:
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._blobs: dict[bytes, int] = {}
        #: index object keys that name each pack (for retention and prune)
        self.sources: dict[bytes, set[str]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._blobs

    def add_pack(self, pack_id: bytes, entries: Iterable[BlobEntry], source: str | None = None) -> None:
        with self._lock:
            no = self._pack_no.get(pack_id)
            if no is None:
                no = len(self._packs)
                self._packs.append(pack_id)
                self._pack_no[pack_id] = no
            if source is not None:
                self.sources.setdefault(pack_id, set()).add(source)
            for e in entries:
                value = (((no << 8 | e.blob_type) << 32 | e.offset) << 32 | e.length) << 32 | e.raw_length
                self._blobs.setdefault(e.blob_id, value)

    def lookup(self, blob_id: bytes) -> Location | None:
        value = self._blobs.get(blob_id)
        if value is None:
            return None
        return self._decode(blob_id, value)

    def _decode(self, blob_id: bytes, value: int) -> Location:
        raw_length = value & _M32
        length = (value >> 32) & _M32
        offset = (value >> 64) & _M32
        blob_type = (value >> 96) & 0xFF
        pack = self._packs[value >> 104]
        return Location(pack, BlobEntry(blob_type, blob_id, offset, length, raw_length))

    def has_pack(self, pack_id: bytes) -> bool:
        return pack_id in self._pack_no

    def pack_ids(self) -> list[bytes]:
        return list(self._packs)

    def __iter__(self) -> Iterator[Location]:
        for blob_id, value in self._blobs.items():
            yield self._decode(blob_id, value)
