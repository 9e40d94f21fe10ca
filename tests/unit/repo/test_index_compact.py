"""The in-memory Index: its memory per blob, and its behaviour against a plain dict model.

The index is the one holder of a backup or restore whose memory grows with the volume (issue 15,
docs/benchmarks.md): ~150 B per blob as a dict of ints made the 8 GiB backups peak 27-33 MiB above
the 1 GiB ones. The model tests pin the public behaviour (first entry wins, lookups, iteration,
packs and sources) whatever the layout, with merges forced often (``MERGE_MIN`` patched down).
"""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubekeep.repo import index as index_module
from kubekeep.repo.format import BlobEntry
from kubekeep.repo.index import Index, Location

BLOBS = 120_000  # an 8 GiB volume's (issue 15); tracing the merges makes more slow
PER_PACK = 170  # a 16 MiB pack of ~96 KiB chunks


def _pack(rng: random.Random, count: int) -> list[BlobEntry]:
    entries, offset = [], 0
    for _ in range(count):
        length = rng.randrange(32 * 1024, 512 * 1024)
        entries.append(BlobEntry(1, rng.randbytes(32), offset, length, length + rng.randrange(64)))
        offset += length
    return entries


def test_memory_per_blob_is_near_the_ids_and_two_words() -> None:
    """What the Index itself keeps: the entries are built and dropped while tracing, as a reload drops
    the decoded index objects. tracemalloc counts a realloc as one block (a merge that grows its arrays
    in place); a merge that built a second copy of the arrays would show in the peak."""
    rng = random.Random(15)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        index = Index()
        for _ in range(BLOBS // PER_PACK):
            index.add_pack(rng.randbytes(32), _pack(rng, PER_PACK), source="index/k")
        gc.collect()
        used, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    blobs = len(index)
    assert blobs == BLOBS // PER_PACK * PER_PACK
    per_blob = (used - base) / blobs
    peak_per_blob = (peak - base) / blobs
    assert per_blob <= 64, f"{per_blob:.1f} B per blob kept"
    assert peak_per_blob <= 96, f"{peak_per_blob:.1f} B per blob at the peak"


# -- the model --------------------------------------------------------------------------------------


@contextmanager
def frequent_merges(minimum: int = 2) -> Iterator[None]:
    with mock.patch.object(index_module, "MERGE_MIN", minimum):
        yield


class Model:
    """What the Index must answer: a dict, first entry wins."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, Location] = {}
        self.packs: list[bytes] = []
        self.sources: dict[bytes, set[str]] = {}

    def add_pack(self, pack_id: bytes, entries: list[BlobEntry], source: str | None) -> None:
        if pack_id not in self.packs:
            self.packs.append(pack_id)
        if source is not None:
            self.sources.setdefault(pack_id, set()).add(source)
        for e in entries:
            self.blobs.setdefault(e.blob_id, Location(pack_id, e))


def assert_same(index: Index, model: Model, probes: list[bytes]) -> None:
    assert len(index) == len(model.blobs)
    for blob_id in probes:
        want = model.blobs.get(blob_id)
        assert index.lookup(blob_id) == want
        assert (blob_id in index) is (want is not None)
        assert index.pack_of(blob_id) == (want.pack_id if want else None)
        assert index.sizes(blob_id) == ((want.entry.length, want.entry.raw_length) if want else None)
    assert index.pack_ids() == model.packs
    assert all(index.has_pack(p) for p in model.packs)
    assert index.sources == model.sources
    got = list(index)
    assert len(got) == len(model.blobs)
    assert {loc.entry.blob_id: loc for loc in got} == model.blobs


def _prefixed_ids() -> list[bytes]:
    """Ids that share long prefixes, sit at the ends of the key space, or share the fanout bucket."""
    rng = random.Random(3)
    ids = [bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01", b"\xff" * 31 + b"\xfe"]
    for cut in (1, 2, 3, 16, 31):
        stem = rng.randbytes(cut)
        ids += [stem + rng.randbytes(32 - cut) for _ in range(6)]
    # an id whose bytes straddle two neighbours when they are laid end to end
    a, b = rng.randbytes(32), rng.randbytes(32)
    ids += [a, b, a[16:] + b[:16]]
    return ids


POOL = _prefixed_ids()
blob_ids = st.one_of(st.sampled_from(POOL), st.binary(min_size=32, max_size=32))
entries = st.builds(BlobEntry, st.sampled_from([1, 2, 3]), blob_ids, st.integers(0, 2**32 - 1),
                    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
adds = st.tuples(st.sampled_from([bytes([p]) * 32 for p in range(6)]), st.lists(entries, max_size=12),
                 st.sampled_from([None, "index/a", "index/b"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(adds, blob_ids), max_size=40), st.integers(1, 8))
def test_the_index_answers_as_a_dict_does(ops: list[object], merge_min: int) -> None:
    index, model = Index(), Model()
    seen: list[bytes] = []
    with frequent_merges(merge_min):
        for op in ops:
            if isinstance(op, tuple):
                pack_id, pack_entries, source = op
                index.add_pack(pack_id, pack_entries, source=source)
                model.add_pack(pack_id, pack_entries, source)
                seen += [e.blob_id for e in pack_entries]
            else:
                assert isinstance(op, bytes)
                assert index.lookup(op) == model.blobs.get(op)
        assert_same(index, model, seen + POOL)


def test_many_packs_duplicates_and_shared_prefixes() -> None:
    rng = random.Random(1)
    index, model = Index(), Model()
    stems = [rng.randbytes(2) for _ in range(40)]  # many ids per fanout bucket
    known: list[bytes] = []
    with frequent_merges(64):
        for p in range(400):
            pack_entries = []
            for offset in range(rng.randrange(0, 120)):
                if known and rng.random() < 0.15:
                    blob_id = rng.choice(known)  # stored again: the first pack keeps it
                else:
                    blob_id = rng.choice(stems) + rng.randbytes(30)
                    known.append(blob_id)
                pack_entries.append(BlobEntry(rng.choice([1, 2]), blob_id, offset * 100, 100, 90 + offset))
            pack_id = rng.randbytes(32)
            index.add_pack(pack_id, pack_entries, source=f"index/{p % 7}")
            model.add_pack(pack_id, pack_entries, f"index/{p % 7}")
            if p % 50 == 0:
                assert_same(index, model, rng.sample(known, min(len(known), 200)))
        index.add_pack(model.packs[0], [], source="index/again")  # a pack named by a second object
        model.add_pack(model.packs[0], [], "index/again")
    misses = [rng.choice(stems) + rng.randbytes(30) for _ in range(500)]
    assert_same(index, model, known + misses)
    assert index.packs_named_by(["index/again"]) == frozenset([model.packs[0]])


def test_iteration_fails_loudly_when_packs_are_added_meanwhile() -> None:
    index = Index()
    rng = random.Random(2)
    with frequent_merges(4):
        index.add_pack(b"p" * 32, _pack(rng, 50))
        it = iter(index)
        next(it)
        index.add_pack(b"q" * 32, _pack(rng, 50))
        with pytest.raises(RuntimeError):
            list(it)


def test_lookups_during_merges_never_miss_what_was_added() -> None:
    rng = random.Random(4)
    packs = [(rng.randbytes(32), _pack(rng, 40)) for _ in range(300)]
    index = Index()
    added: list[bytes] = []  # blob ids whose add_pack returned
    done = threading.Event()
    failures: list[bytes] = []

    def read() -> None:
        while not done.is_set():
            for blob_id in added[-200:]:
                if index.lookup(blob_id) is None or blob_id not in index:
                    failures.append(blob_id)

    with frequent_merges(16):
        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        try:
            for pack_id, pack_entries in packs:
                index.add_pack(pack_id, pack_entries)
                added.extend(e.blob_id for e in pack_entries)
        finally:
            done.set()
            for t in readers:
                t.join()
    assert not failures
    assert len(index) == len(added)


@pytest.mark.parametrize("field", ["offset", "length", "raw_length"])
def test_a_field_beyond_32_bits_is_refused(field: str) -> None:
    values = {"offset": 0, "length": 1, "raw_length": 1, field: 2**32}
    entry = BlobEntry(1, b"a" * 32, values["offset"], values["length"], values["raw_length"])
    with pytest.raises(ValueError):
        Index().add_pack(b"p" * 32, [entry])
