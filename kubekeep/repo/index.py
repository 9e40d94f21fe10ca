"""The repository index: blob id -> (pack, offset, length), in memory and as index objects.

``Index`` packs its entries into one int per blob to keep memory near 150 bytes
per blob (a tuple of five fields would cost twice that). ``IndexStore`` reads and
writes the ``index/`` objects and keeps the one current Index that the readers of
an open repository share.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .crypto import BlobType
from .errors import RepositoryError
from .format import INDEX_PREFIX, BlobEntry, decode_index, encode_index, id_from_key
from .keys import RepositoryKeys
from .storage import ObjectNotFoundError, Retention, Storage

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

    def pack_of(self, blob_id: bytes) -> bytes | None:
        value = self._blobs.get(blob_id)
        return None if value is None else self._packs[value >> 104]

    def sizes(self, blob_id: bytes) -> tuple[int, int] | None:
        """(stored length, plaintext length) of a blob, without building its Location."""
        value = self._blobs.get(blob_id)
        return None if value is None else ((value >> 32) & _M32, value & _M32)

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

    def packs_named_by(self, keys: Iterable[str]) -> frozenset[bytes]:
        """The packs that one of the index objects ``keys`` names."""
        wanted = set(keys)
        with self._lock:
            return frozenset(p for p, sources in self.sources.items() if not sources.isdisjoint(wanted))

    def __iter__(self) -> Iterator[Location]:
        """Every blob; not while another thread adds packs (iterate an Index of your own)."""
        for blob_id, value in self._blobs.items():
            yield self._decode(blob_id, value)


class PackLimitedIndex:
    """An Index seen through the packs it had when it was read from storage.

    A backup deduplicates only against what it read after taking its lock (docs/repository-format.md,
    "Concurrency"); packs that other writers of the same process add to the shared Index later are
    invisible here, as they would be in another process.
    """

    def __init__(self, index: Index, packs: frozenset[bytes]) -> None:
        self.index = index
        self.packs = packs

    @property
    def sources(self) -> dict[bytes, set[str]]:
        return self.index.sources

    def lookup(self, blob_id: bytes) -> Location | None:
        loc = self.index.lookup(blob_id)
        return loc if loc is not None and loc.pack_id in self.packs else None

    def pack_of(self, blob_id: bytes) -> bytes | None:
        pack = self.index.pack_of(blob_id)
        return pack if pack is not None and pack in self.packs else None

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self.pack_of(blob_id) is not None


class IndexStore:
    """Reads and writes index objects; holds the current Index of an open repository.

    Thread-safe. ``current()`` is shared by readers (restore, read_blob); a reload
    builds a new Index from storage and then swaps it in, and index objects this
    process writes meanwhile are added to it as well, so a blob stored by any
    thread stays readable whichever reload wins.
    """

    def __init__(self, storage: Storage, keys: RepositoryKeys) -> None:
        self.storage = storage
        self.keys = keys
        self._lock = threading.Lock()
        #: one reload at a time (a second one waiting then reads only what the first did not)
        self._reloading = threading.Lock()
        self._current: Index | None = None
        #: the index objects ``_current`` holds: read by a reload, or written by this process
        self._read_keys: set[str] = set()
        #: packs this process indexed while a reload was reading storage, per reload in progress
        self._pending: dict[int, list[tuple[bytes, list[BlobEntry], str]]] = {}
        self._reload_ids = itertools.count()
        self._published = -1

    def current(self) -> Index:
        index = self._current
        return index if index is not None else self.reload()

    def reload(self) -> Index:
        return self._reload()[0]

    def reload_limited(self) -> PackLimitedIndex:
        """Reload, and see the result limited to the packs storage named (what a backup dedups against)."""
        index, packs = self._reload()
        return PackLimitedIndex(index, packs)

    def _reload(self) -> tuple[Index, frozenset[bytes]]:
        """Index objects are never rewritten (a prune deletes some and writes new ones), so a reload reads
        only the objects the current Index has not read; a deleted one (a prune or repair ran) makes it read
        every object into a new Index. The packs returned are those the listed objects name."""
        with self._reloading:
            with self._lock:  # before the listing: an object written meanwhile is listed, or read next time
                current, known = self._current, set(self._read_keys)
            listed = self._list_keys()
            if current is not None and known <= listed.keys():
                try:
                    for key in sorted(listed.keys() - known):
                        self.read_object(key, listed[key], current)
                        with self._lock:
                            self._read_keys.add(key)
                except ObjectNotFoundError:
                    pass  # deleted between the listing and the read: read everything afresh
                else:
                    return current, current.packs_named_by(listed)
            return self._reload_all()

    def _list_keys(self) -> dict[str, bytes]:
        return {info.key: ident for info in self.storage.list(INDEX_PREFIX)
                if (ident := id_from_key(info.key, INDEX_PREFIX)) is not None}

    def _reload_all(self) -> tuple[Index, frozenset[bytes]]:
        with self._lock:
            token = next(self._reload_ids)
            self._pending[token] = []
        try:
            index, read = self._read_all()
        except BaseException:
            with self._lock:
                del self._pending[token]
            raise
        with self._lock:
            packs = frozenset(index.pack_ids())
            for pack_id, entries, source in self._pending.pop(token):
                index.add_pack(pack_id, entries, source=source)
                read.add(source)
            if token > self._published:  # a reload that started earlier never replaces a later one
                self._current, self._published, self._read_keys = index, token, read
        return index, packs

    def read_all(self) -> Index:
        """Every index object, read into a new Index. An object that vanishes mid-read (a concurrent
        prune replaced it) restarts the read, so the result always covers a consistent set."""
        return self._read_all()[0]

    def _read_all(self) -> tuple[Index, set[str]]:
        for _attempt in range(10):
            index, read = Index(), set()
            try:
                for key, ident in self._list_keys().items():
                    self.read_object(key, ident, index)
                    read.add(key)
            except ObjectNotFoundError:
                continue
            return index, read
        raise RepositoryError("the index kept changing while it was read; try again")

    def read_object(self, key: str, ident: bytes, index: Index) -> None:
        """Add the packs of index object ``key`` to ``index``; IntegrityError when it fails authentication."""
        payload = self.keys.open_object(BlobType.INDEX, ident, self.storage.get(key), what=f"index object {key}")
        for pack_id, entries in decode_index(payload, what=key):
            index.add_pack(pack_id, entries, source=key)

    def write_object(self, packs: Mapping[bytes, list[BlobEntry]], *, retention: Retention | None = None) -> str:
        """Write an index object naming ``packs`` (already stored) and add them to the current Index."""
        ident = secrets.token_bytes(32)
        key = INDEX_PREFIX + ident.hex()
        self.storage.put(key, self.keys.seal_object(BlobType.INDEX, ident, encode_index(dict(packs))),
                         retention=retention)
        with self._lock:
            for pending in self._pending.values():
                pending.extend((pack_id, entries, key) for pack_id, entries in packs.items())
            if self._current is not None:
                for pack_id, entries in packs.items():
                    self._current.add_pack(pack_id, entries, source=key)
                self._read_keys.add(key)
        return key

    def forget(self) -> None:
        with self._lock:
            self._current = None
            self._read_keys = set()
