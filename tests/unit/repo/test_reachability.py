"""The public reachability API (kubekeep/repo/reachability.py, docs/repository-api.md)."""

from __future__ import annotations

import os
from pathlib import Path

from kubekeep.repo.errors import IntegrityError, SnapshotNotFoundError
from kubekeep.repo.format import CONFIG_KEY, INDEX_PREFIX, KEYS_PREFIX, SNAPSHOTS_PREFIX, pack_key
from kubekeep.repo.index import Index
from kubekeep.repo.reachability import object_keys, reachable, walk_snapshot
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage


def _indexed_blobs(repo: Repository) -> set[bytes]:
    return {loc.entry.blob_id for loc in repo.load_index(reload=True)}


def test_one_backup_reaches_every_blob_and_pack_it_wrote(repo: Repository, source: Path) -> None:
    sid = repo.backup(source).snapshot_id
    reach = reachable(repo, [sid])
    assert reach.ok and reach.snapshots == [sid] and not reach.errors
    # a first backup writes only blobs its snapshot references
    assert reach.blobs == _indexed_blobs(repo)
    assert reach.packs == set(repo.load_index().pack_ids())
    assert reach.pack_keys() == {i.key for i in repo.storage.list("data/")}


def test_a_dropped_file_is_not_reached_by_the_later_snapshot(repo: Repository, source: Path) -> None:
    (source / "only-first.bin").write_bytes(os.urandom(60_000))
    first = repo.backup(source).snapshot_id
    os.unlink(source / "only-first.bin")
    second = repo.backup(source, parent=first).snapshot_id
    both = reachable(repo, [first, second])
    later = reachable(repo, [second])
    assert both.blobs == _indexed_blobs(repo)
    assert later.blobs < both.blobs
    dropped = set(repo.content_chunks(next(e for e in repo.load_tree(repo.load_snapshot(first)["tree"])
                                           if e["name"] == "only-first.bin")["content"]))
    assert dropped and not dropped & later.blobs and dropped <= both.blobs
    # by prefix and 'latest' too; the full id is reported
    assert reachable(repo, ["latest"]).snapshots == [second]
    assert reachable(repo, [second[:10]]).blobs == later.blobs


def test_chunk_lists_and_streams_are_reached(repo: Repository) -> None:
    data = os.urandom(2200 * 5 * 1024)  # more chunks than fit inline: the stream is listed through chunk lists
    sid = repo.backup_stream("dump", [data[i:i + 65536] for i in range(0, len(data), 65536)]).snapshot_id
    content = repo.load_snapshot(sid)["streams"]["dump"]
    lists = {bytes.fromhex(h) for h in content["lists"]}
    reach = reachable(repo, [sid])
    assert lists <= reach.blobs
    assert set(repo.content_chunks(content)) | lists == reach.blobs == _indexed_blobs(repo)


def test_blobs_no_index_names_are_counted_per_snapshot(repo: Repository) -> None:
    sid = repo.backup_stream("s", [os.urandom(300_000)]).snapshot_id
    full = repo.load_index(reload=True)
    dropped_pack = full.lookup(next(repo.content_chunks(repo.load_snapshot(sid)["streams"]["s"])))
    assert dropped_pack is not None
    partial = Index()
    by_pack: dict[bytes, list] = {}  # type: ignore[type-arg]
    for loc in full:
        by_pack.setdefault(loc.pack_id, []).append(loc.entry)
    for pack_id, entries in by_pack.items():
        if pack_id != dropped_pack.pack_id:
            partial.add_pack(pack_id, entries)
    reach = reachable(repo, [sid], index=partial)
    lost = {e.blob_id for e in by_pack[dropped_pack.pack_id]}
    assert reach.missing == lost
    assert reach.missing_per_snapshot == {sid: len(lost)}
    assert reach.errors == [f"snapshot {sid[:12]}: {len(lost)} referenced blob(s) are not in the index"]
    assert dropped_pack.pack_id not in reach.packs and not reach.ok


def test_unreadable_snapshots_and_trees_are_reported_not_raised(repo: Repository, storage: FilesystemStorage,
                                                                source: Path) -> None:
    good = repo.backup(source).snapshot_id
    bad = repo.backup_stream("s", [b"x" * 5000]).snapshot_id
    path = storage.root / (SNAPSHOTS_PREFIX + bad)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    missing = "ab" * 32
    reach = reachable(repo, [good, bad, missing])
    assert reach.snapshots == [good]
    assert isinstance(reach.unreadable[bad], IntegrityError)
    assert isinstance(reach.unreadable[missing], SnapshotNotFoundError)
    assert not reach.ok and not reach.errors  # nothing wrong below the manifests it read
    # a damaged subtree: named, and the walk goes on with the rest
    subtree = next(e for e in repo.load_tree(repo.load_snapshot(good)["tree"]) if e["name"] == "data")["subtree"]
    loc = repo.index.lookup(bytes.fromhex(subtree))
    assert loc is not None
    pack = storage.root / pack_key(loc.pack_id)
    data = bytearray(pack.read_bytes())
    data[loc.entry.offset + loc.entry.length // 2] ^= 1
    pack.write_bytes(bytes(data))
    damaged = reachable(repo, [good])
    assert len(damaged.read_errors) == 1 and "tree /data" in damaged.read_errors[0]
    assert bytes.fromhex(subtree) in damaged.blobs  # referenced, though unreadable
    assert damaged.blobs < reach.blobs


def test_trees_seen_before_are_visited_but_not_read_again(repo: Repository, source: Path) -> None:
    doc = repo.load_snapshot(repo.backup(source).snapshot_id)
    reads: list[bytes] = []

    class Counting:
        def read_blob(self, blob_id: bytes, *, index: object = None) -> bytes:
            reads.append(blob_id)
            return repo.read_blob(blob_id)

    seen: set[bytes] = set()
    first: list[bytes] = []
    walk_snapshot(Counting(), doc, repo.load_index(), lambda b, _t: first.append(b), seen, [])
    after_first = len(reads)
    assert after_first == len(set(reads)) > 1
    again: list[bytes] = []
    walk_snapshot(Counting(), doc, repo.load_index(), lambda b, _t: again.append(b), seen, [])
    assert len(reads) == after_first  # the root tree was seen: nothing is read again
    assert again == [bytes.fromhex(doc["tree"])]  # and the root is still visited


def test_object_keys_are_what_a_restore_of_the_snapshots_reads(repo: Repository, source: Path) -> None:
    a = repo.backup(source).snapshot_id
    b = repo.backup_stream("other", [os.urandom(200_000)]).snapshot_id
    keys, errors = object_keys(repo, [a])
    assert not errors
    index = repo.load_index(reload=True)
    a_packs = reachable(repo, [a]).pack_keys()
    b_packs = reachable(repo, [b]).pack_keys()
    assert CONFIG_KEY in keys and SNAPSHOTS_PREFIX + a in keys and SNAPSHOTS_PREFIX + b not in keys
    assert {i.key for i in repo.storage.list(KEYS_PREFIX)} <= keys
    assert a_packs <= keys and not (b_packs - a_packs) & keys
    naming_a = {src for p in reachable(repo, [a]).packs for src in index.sources[p]}
    assert naming_a and naming_a <= keys
    assert {k for k in keys if k.startswith(INDEX_PREFIX)} == naming_a
    assert all(repo.storage.exists(k) for k in keys)
    # a snapshot that cannot be read is an error, not an exception
    keys2, errors2 = object_keys(repo, [a, "cd" * 32])
    assert keys2 == keys and len(errors2) == 1 and "not found" in errors2[0]
