"""prune, concurrency and Object Lock retention."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.repo.errors import LockedError
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, RetentionMode

from .conftest import make_repo, open_repo, snapshot_of, write_tree
from .memstorage import MemoryStorage


def _data_size(storage: FilesystemStorage) -> int:
    return sum(i.size for i in storage.list("data/"))


def test_prune_frees_space_and_keeps_what_remains(repo: Repository, storage: FilesystemStorage,
                                                  source: Path, tmp_path: Path) -> None:
    (source / "only-in-first.bin").write_bytes(os.urandom(300_000))
    first = repo.backup(source).snapshot_id
    os.unlink(source / "only-in-first.bin")
    second = repo.backup(source).snapshot_id
    before = _data_size(storage)
    result = repo.prune([first], wait_timeout=0)
    assert result.snapshots_removed == [first]
    assert result.packs_deleted + result.packs_repacked > 0
    assert _data_size(storage) < before - 250_000
    assert repo.check(read_data=True).ok
    repo.restore(second, tmp_path / "o")
    assert snapshot_of(tmp_path / "o") == snapshot_of(source)
    # a second prune has nothing to do and changes nothing
    again = repo.prune([], wait_timeout=0)
    assert again.packs_deleted == 0 and repo.check(read_data=True).ok


def test_prune_removes_unindexed_garbage(repo: Repository, storage: FilesystemStorage, source: Path) -> None:
    repo.backup(source)
    for info in list(storage.list("index/")):
        os.unlink(storage.root / info.key)
    repo.backup_stream("s", [os.urandom(50_000)])  # writes a new index for its own packs only
    result = repo.prune([], wait_timeout=0)
    # the first backup's packs are unindexed but referenced: rescued, not deleted
    assert result.rescued_packs >= 1
    assert repo.check(read_data=True).ok


def test_two_backups_at_once(storage: FilesystemStorage, tmp_path: Path) -> None:
    srcs = []
    for i in range(2):
        src = tmp_path / f"src{i}"
        src.mkdir()
        write_tree(src, seed=i, files=20)
        srcs.append(src)
    make_repo(storage)
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = open_repo(storage).backup(srcs[i]).snapshot_id

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    repo = open_repo(storage)
    assert repo.check(read_data=True).ok
    for i in range(2):
        repo.restore(results[i], tmp_path / f"out{i}")
        assert snapshot_of(tmp_path / f"out{i}") == snapshot_of(srcs[i])


def test_prune_waits_for_a_running_backup_and_keeps_what_it_needs(storage: FilesystemStorage,
                                                                  source: Path, tmp_path: Path) -> None:
    """A backup that loaded the index before prune dedups against data prune wants to delete."""
    repo = make_repo(storage)
    doomed = repo.backup(source).snapshot_id
    backup_repo = open_repo(storage)
    lock = backup_repo.lock("backup")  # the backup has started and read the index
    seen_by_backup = backup_repo.index_for_backup()
    pruner = open_repo(storage)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run_prune() -> None:
        outcome["result"] = pruner.prune([doomed], wait_timeout=30, poll=0.05)
        done.set()

    t = threading.Thread(target=run_prune)
    t.start()
    assert not done.wait(0.5), "prune must wait for the running backup"
    # the backup now writes a snapshot of the same data: every chunk deduplicated against the doomed packs
    from kubekeep.repo.archiver import Archiver

    archiver = Archiver(backup_repo, retention=None, progress=None)
    backup_repo.index_for_backup = lambda: seen_by_backup  # type: ignore[method-assign]
    sid = archiver.run(source, {}, parent=None, tags=[], metadata={}).snapshot_id
    assert not done.is_set()
    lock.release()
    t.join(10)
    assert done.is_set()
    result = outcome["result"]
    assert result.rescued_packs >= 1  # type: ignore[attr-defined]
    fresh = open_repo(storage)
    assert fresh.check(read_data=True).ok
    fresh.restore(sid, tmp_path / "o")
    assert snapshot_of(tmp_path / "o") == snapshot_of(source)


def test_two_prunes_exclude_each_other(repo: Repository) -> None:
    other = repo.lock("prune")
    try:
        with pytest.raises(LockedError):
            repo.prune([], wait_timeout=0)
    finally:
        other.release()


def test_retention_is_applied_and_respected(tmp_path: Path, source: Path) -> None:
    mem = MemoryStorage()
    repo = make_repo(mem)
    until = datetime.now(UTC) + timedelta(days=1)
    locked = repo.backup(source, retention=(RetentionMode.COMPLIANCE, until)).snapshot_id
    assert mem.retention[SNAPSHOTS_PREFIX + locked] == until
    assert all(k in mem.retention for k in mem.objects if k.startswith(("data/", "index/", "keys/", "config")))
    (source / "extra.bin").write_bytes(os.urandom(100_000))
    free = repo.backup(source).snapshot_id
    result = repo.prune([locked, free], wait_timeout=0)
    assert SNAPSHOTS_PREFIX + locked in result.locked_skipped
    assert result.snapshots_removed == [free]
    assert repo.check(read_data=True).ok
    repo.restore(locked, tmp_path / "o")
    assert (tmp_path / "o/data/deep/er/leaf.txt").read_text() == "leaf\n"


def test_a_repack_keeps_the_blobs_of_a_file_in_their_order(repo: Repository, tmp_path: Path) -> None:
    """A file's chunks sit in a pack in file order (a restore reads a run of them with one ranged read);
    a repack copies them in that order, whatever order the index keeps its entries in."""
    src = tmp_path / "s"
    src.mkdir()
    (src / "keep.bin").write_bytes(os.urandom(24_000))
    (src / "junk.bin").write_bytes(os.urandom(36_000))
    first = repo.backup(src).snapshot_id
    os.unlink(src / "junk.bin")
    second = repo.backup(src).snapshot_id

    def offsets() -> tuple[set[bytes], list[int]]:
        entries = {e["name"]: e for e in repo.load_tree_blob(repo.load_snapshot(second)["tree"])[1]}
        index = repo.load_index(reload=True)
        locs = [index.lookup(c) for c in repo.content_chunks(entries["keep.bin"]["content"])]
        assert all(loc is not None for loc in locs)
        return {loc.pack_id for loc in locs if loc}, [loc.entry.offset for loc in locs if loc]

    packs_before, before = offsets()
    assert len(before) >= 4 and len(packs_before) == 1 and before == sorted(before)
    result = repo.prune([first], repack_threshold=0.5, wait_timeout=0)
    assert result.packs_repacked == 1
    packs_after, after = offsets()
    assert packs_after != packs_before and len(packs_after) == 1
    assert after == sorted(after)
    assert repo.check(read_data=True).ok
