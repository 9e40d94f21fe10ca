"""The repository index: blob id -> (pack, offset, length), in memory and as index objects.

``Index`` keeps about 50 bytes per blob (a dict of packed ints cost ~160; issue 15): one bytearray
of 48-byte records sorted by id (the 32-byte id, then two 64-bit words: offset and length; pack
number, type and raw length), read through a memoryview of 64-bit words, and a fanout table like
git's pack .idx (where the records of each value of the ids' leading bits start), so a lookup reads
the fanout and searches a bucket of a few records with one ``bytearray.find``. New entries wait in
a dict, merged into the records once it holds MERGE_MIN entries or 1/MERGE_SHARE of the records:
the bytearray grows by the new records and the old ones move right with memmove, from the back,
so a merge makes no object per existing entry and no second copy of the records, and each entry
added costs at most MERGE_SHARE record moves (O(n) in all as the index grows geometrically).
Iteration is in id order. This is the memory layout only: index objects (docs/repository-format.md)
are unchanged.

``IndexStore`` reads and writes the ``index/`` objects and keeps the one current Index that the
readers of an open repository share.
"""

from __future__ import annotations

import itertools
import operator
import secrets
import struct
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .crypto import BlobType
from .errors import RepositoryError
from .format import INDEX_PREFIX, BlobEntry, decode_index, encode_index, id_from_key
from .keys import RepositoryKeys
from .storage import ObjectNotFoundError, Retention, Storage

#: new entries are merged into the records once there are this many, or 1/MERGE_SHARE of the records (a
#: merge moves every record: the share keeps that to MERGE_SHARE moves per entry added; a waiting entry
#: costs ~200 B with its id, so a 1/32 share adds at most ~6 B per blob)
MERGE_MIN = 4096
MERGE_SHARE = 32
#: the fanout has 2**k buckets with k = bit_length(entries) - FANOUT_SLACK, at most 2**16: ~4-16 ids each
FANOUT_SLACK = 3
ID_SIZE = 32
#: a sorted entry: the id and two 64-bit words
RECORD = ID_SIZE + 16
#: the two words of a record, in the byte order ``_words`` reads them
_WORDS = struct.Struct("=QQ")

_ZEROS = bytes(64 * 1024)
_ZERO_VIEW = memoryview(_ZEROS)
_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1
#: pack numbers fit 24 bits of a word (16.7 M packs, 256 TiB of 16 MiB packs)
_MAX_PACKS = 1 << 24


@dataclass(frozen=True, slots=True)
class Location:
    pack_id: bytes
    entry: BlobEntry


class Index:
    """Blob id -> Location, first entry wins. Thread-safe: lookups and adds take the lock (a merge moves
    entries in place); iterate an Index nobody adds to meanwhile (RuntimeError otherwise, as a dict).

    A sorted entry is a record of RECORD bytes: the id, then two 64-bit words (native byte order),
    ``offset << 32 | length`` and ``pack number << 40 | type << 32 | raw length``. An entry waiting in
    ``_new`` is one int, ``second word << 64 | first word``; it may be a blob the records hold already
    (stored twice): lookups read the records first, and the merge drops it.
    """

    def __init__(self) -> None:
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        #: index object keys that name each pack (for retention and prune)
        self.sources: dict[bytes, set[str]] = {}
        self._lock = threading.Lock()
        #: the sorted records, and their 64-bit words (released while a merge resizes the records)
        self._records = bytearray()
        self._words = memoryview(self._records).cast("Q")
        #: the ids whose leading 16 bits >> _shift are b are those of records _fanout[b] to _fanout[b + 1]
        self._shift = 16
        self._fanout = array("I", [0, 0])
        #: entries added since the last merge
        self._new: dict[bytes, int] = {}
        #: counts adds, so that an iteration notices one
        self._version = 0

    def __len__(self) -> int:
        with self._lock:
            self._merge()  # exact: drops what the records hold already
            return len(self._records) // RECORD

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes):
            return False
        with self._lock:
            return self._find(blob_id) >= 0 or blob_id in self._new

    def add_pack(self, pack_id: bytes, entries: Iterable[BlobEntry], source: str | None = None) -> None:
        with self._lock:
            no = self._pack_no.get(pack_id)
            if no is None:
                no = len(self._packs)
                if no >= _MAX_PACKS:
                    raise ValueError(f"the index holds at most {_MAX_PACKS} packs")
                self._packs.append(pack_id)
                self._pack_no[pack_id] = no
            if source is not None:
                self.sources.setdefault(pack_id, set()).add(source)
            new, pack = self._new, no << 104
            waiting = len(new)
            for e in entries:
                if (e.offset | e.length | e.raw_length) & ~_M32 or e.blob_type & ~0xFF or len(e.blob_id) != ID_SIZE:
                    raise ValueError(f"index entry out of range: {e}")
                new.setdefault(e.blob_id, pack | e.blob_type << 96 | e.raw_length << 64 | e.offset << 32 | e.length)
            if len(new) == waiting:
                return
            self._version += 1
            if len(new) >= max(MERGE_MIN, len(self._records) // (RECORD * MERGE_SHARE)):
                self._merge()

    def lookup(self, blob_id: bytes) -> Location | None:
        with self._lock:
            at = self._find(blob_id)
            if at >= 0:
                low, high = self._words[at], self._words[at + 1]
            else:
                value = self._new.get(blob_id)
                if value is None:
                    return None
                low, high = value & _M64, value >> 64
        return Location(self._packs[high >> 40],
                        BlobEntry((high >> 32) & 0xFF, blob_id, low >> 32, low & _M32, high & _M32))

    def pack_of(self, blob_id: bytes) -> bytes | None:
        with self._lock:
            at = self._find(blob_id)
            if at >= 0:
                no = self._words[at + 1] >> 40
            else:
                value = self._new.get(blob_id)
                if value is None:
                    return None
                no = value >> 104
        return self._packs[no]

    def sizes(self, blob_id: bytes) -> tuple[int, int] | None:
        """(stored length, plaintext length) of a blob, without building its Location."""
        with self._lock:
            at = self._find(blob_id)
            if at >= 0:
                return self._words[at] & _M32, self._words[at + 1] & _M32
            value = self._new.get(blob_id)
        return None if value is None else (value & _M32, (value >> 64) & _M32)

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
        """Every blob, in the order of their ids (group by pack and sort by offset for pack order); not
        while another thread adds packs (iterate an Index of your own): RuntimeError then."""
        with self._lock:
            self._merge()
            version, size = self._version, len(self._records)
        step = 1024 * RECORD
        for start in range(0, size, step):
            with self._lock:
                chunk = bytes(self._records[start:start + step])
            for at in range(0, len(chunk), RECORD):
                if self._version != version:
                    raise RuntimeError("Index changed during iteration")
                low, high = _WORDS.unpack_from(chunk, at + ID_SIZE)
                yield Location(self._packs[high >> 40], BlobEntry((high >> 32) & 0xFF, chunk[at:at + ID_SIZE],
                                                                 low >> 32, low & _M32, high & _M32))

    # -- the layout (callers hold the lock) ------------------------------------------------------

    def _find(self, blob_id: bytes) -> int:
        """The index in ``_words`` of the first word of ``blob_id``'s record, -1 when there is none."""
        if len(blob_id) != ID_SIZE:
            return -1
        fanout = self._fanout
        bucket = (blob_id[0] << 8 | blob_id[1]) >> self._shift
        end = fanout[bucket + 1] * RECORD
        at = self._records.find(blob_id, fanout[bucket] * RECORD, end)
        while at > 0 and at % RECORD:  # a match across two records: look on
            at = self._records.find(blob_id, at + 1, end)
        return (at + ID_SIZE) // 8 if at >= 0 else -1

    def _merge(self) -> None:
        """Move the new entries into the sorted records, in place: the records grow by the new ones and
        the old ones move right, from the back, past the new ones that sort before them."""
        new = self._new
        if not new:
            return
        fanout, shift, records = self._fanout, self._shift, self._records
        size = len(records)
        keys: list[bytes] = []
        places = array("Q")  # byte offsets among the old records; ascending, as the keys are
        before = array("I", bytes(4 * len(fanout)))  # the new records in each bucket, counted in the next one
        for key in sorted(new):
            bucket = (key[0] << 8 | key[1]) >> shift
            lo, hi = fanout[bucket], fanout[bucket + 1]
            while lo < hi:
                mid = (lo + hi) // 2
                at = mid * RECORD
                probe = records[at:at + ID_SIZE]
                if probe < key:
                    lo = mid + 1
                elif probe > key:
                    hi = mid
                else:
                    break  # there already: the first entry stays
            else:
                keys.append(key)
                places.append(lo * RECORD)
                before[bucket + 1] += 1
        if not keys:
            self._new = {}
            return
        self._words.release()
        try:
            for grow in range(len(keys) * RECORD, 0, -len(_ZEROS)):  # no zeroed copy of all the new records
                records.extend(_ZERO_VIEW[:grow])
        except BaseException:  # out of memory: the entries stay new, the records as they were
            del records[size:]
            self._words = memoryview(records).cast("Q")
            raise
        with memoryview(records) as view:
            end, gap = size, len(keys) * RECORD
            for j in range(len(keys) - 1, -1, -1):
                at = places[j]
                if at < end:
                    view[at + gap:end + gap] = view[at:end]
                gap -= RECORD
                key = keys[j]
                value = new[key]
                view[at + gap:at + gap + RECORD] = key + _WORDS.pack(value & _M64, value >> 64)
                end = at
        self._new = {}
        self._words = memoryview(records).cast("Q")
        count = len(records) // RECORD
        bits = max(0, min(16, count.bit_length() - FANOUT_SLACK))
        if 16 - bits != shift:
            self._shift = 16 - bits
            self._fanout = self._count_buckets()
            return
        # each bucket starts later by the new records in the buckets before it
        self._fanout = array("I", map(operator.add, fanout, itertools.accumulate(before)))

    def _count_buckets(self) -> array[int]:
        """The fanout of the records for ``_shift``, from the ids' leading 16 bits."""
        records = self._records
        lead = bytearray(2 * (len(records) // RECORD))
        lead[0::2] = records[0::RECORD]
        lead[1::2] = records[1::RECORD]
        keys = array("H", lead)
        if sys.byteorder == "little":
            keys.byteswap()
        return array("I", [bisect_left(keys, b << self._shift) for b in range((1 << (16 - self._shift)) + 1)])

    def _settle(self) -> None:
        """Merge what waits (an index read whole stays as it is now)."""
        with self._lock:
            self._merge()


class PackLimitedIndex:
    """An Index seen through the packs it had when it was read from storage (and the packs its backup
    wrote, as it admits them).

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

    def admit(self, packs: Iterable[bytes]) -> None:
        """See ``packs`` too: the packs a backup wrote, once it has indexed them (BlobSaver)."""
        self.packs = self.packs | frozenset(packs)


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
            index._settle()  # a reader (a restore) adds nothing more: the waiting entries' dict goes
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
