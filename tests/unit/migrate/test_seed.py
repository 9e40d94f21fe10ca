"""Seed records: a restore's record of what a target holds, trusted only while nothing changed."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kubekeep.migrate import seed
from kubekeep.migrate.seed import SeedWriter, content_id, load_seed
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

CONTENT = {"size": 5, "chunks": ["aa" * 32]}
OTHER = {"size": 5, "chunks": ["bb" * 32]}


@pytest.fixture(autouse=True)
def short_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "RACY_NS", 200_000_000)  # 0.2 s: ext4/xfs/tmpfs stamp far finer


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(FilesystemStorage(tmp_path / "repo", create=True), passphrase="pw", kdf=KdfParams.cheap())


def _tree(root: Path) -> list[tuple[str, ...]]:
    files = [("a.txt",), ("dir", "b.bin"), ("dir", "sub", "c.bin"), ("z.txt",)]
    for parts in files:
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"hello")
    return files


def _seed(repo: Repository, root: Path, files: list[tuple[str, ...]], target_id: str = "c/pv-1/uid-1") -> str:
    with SeedWriter(target_id, root, "snap-1") as writer:
        for parts in files:
            writer.add(parts, os.stat(root.joinpath(*parts), follow_symlinks=False), CONTENT)
        return writer.commit(repo)


def _ask(cursor: seed.SeedCursor, root: Path, parts: tuple[str, ...], content: dict[str, object] = CONTENT) -> bool:
    return cursor.may_keep(parts, os.stat(root.joinpath(*parts), follow_symlinks=False), content)


def test_untouched_files_are_kept_and_changed_ones_are_not(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "pv"
    files = _tree(root)
    _seed(repo, root, files)
    # after the record: rewrite one file with the same size and put its mtime back; replace another
    changed = root / "dir" / "b.bin"
    before = os.stat(changed)
    changed.write_bytes(b"HELLO")
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    (root / "z.new").write_bytes(b"hello")
    os.replace(root / "z.new", root / "z.txt")
    cursor = load_seed(repo, "c/pv-1/uid-1", root)
    assert cursor is not None
    assert _ask(cursor, root, ("a.txt",))
    assert not _ask(cursor, root, ("dir", "b.bin"))  # same size and mtime, but its ctime moved
    assert _ask(cursor, root, ("dir", "sub", "c.bin"), OTHER) is False  # the new snapshot has other content there
    assert not _ask(cursor, root, ("z.txt",))  # another inode


def test_paths_asked_out_of_order_or_missing_and_links_are_not_trusted(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "pv"
    files = _tree(root)
    _seed(repo, root, files)
    (root / "new.txt").write_bytes(b"hello")
    cursor = load_seed(repo, "c/pv-1/uid-1", root)
    assert cursor is not None
    assert _ask(cursor, root, ("dir", "b.bin"))
    assert not _ask(cursor, root, ("a.txt",))  # before the last path asked: no answer but "write it"
    assert not _ask(cursor, root, ("new.txt",))  # not in the record
    os.symlink("a.txt", root / "dir" / "sub" / "link")
    assert not cursor.may_keep(("dir", "sub", "c.bin"), os.stat(root / "dir" / "sub" / "link",
                                                                   follow_symlinks=False), CONTENT)


def test_a_record_applies_only_to_its_target_and_directory(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "pv"
    files = _tree(root)
    _seed(repo, root, files)
    assert load_seed(repo, "c/pv-2/uid-2", root) is None
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # same names and contents, another directory
    assert load_seed(repo, "c/pv-1/uid-1", copy) is None
    os.rename(root, tmp_path / "moved")
    (tmp_path / "moved").rename(root)  # the same directory again: the record applies
    assert load_seed(repo, "c/pv-1/uid-1", root) is not None


def test_the_newest_record_wins_and_files_changed_before_commit_are_dropped(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "pv"
    files = _tree(root)
    _seed(repo, root, files)
    time.sleep(0.01)
    with SeedWriter("c/pv-1/uid-1", root, "snap-2") as writer:
        for parts in files:
            writer.add(parts, os.stat(root.joinpath(*parts)), OTHER)
        (root / "a.txt").write_bytes(b"later")  # changed after the restore verified it, before the commit
        writer.commit(repo)
        assert (writer.entries, writer.dropped) == (4, 1)
    cursor = load_seed(repo, "c/pv-1/uid-1", root)
    assert cursor is not None and cursor.header.snapshot_id == "snap-2"
    assert not _ask(cursor, root, ("a.txt",), OTHER)
    assert _ask(cursor, root, ("dir", "b.bin"), OTHER)


def test_entries_must_come_in_walk_order_and_the_spool_is_removed(repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "pv"
    _tree(root)
    spool = tmp_path / "spool"
    spool.mkdir()
    with SeedWriter("t", root, "s", spool_dir=str(spool)) as writer:
        writer.add(("dir", "b.bin"), os.stat(root / "dir" / "b.bin"), CONTENT)
        with pytest.raises(ValueError, match="walk order"):
            writer.add(("a.txt",), os.stat(root / "a.txt"), CONTENT)
        assert list(spool.iterdir())
    assert not list(spool.iterdir())


def test_content_ids_are_canonical() -> None:
    assert content_id({"size": 1, "chunks": ["ab"]}) == content_id({"chunks": ["ab"], "size": 1})
    assert content_id(CONTENT) != content_id(OTHER)


def test_a_commit_that_does_not_settle_records_only_the_old_entries_without_waiting(repo: Repository,
                                                                                    tmp_path: Path) -> None:
    """A cutover's sync must not wait on the downtime path: ``settle=False`` records at once and leaves out
    the files written within the racy window (a later re-sync rewrites them); older ones are kept."""
    root = tmp_path / "pv"
    files = _tree(root)
    with SeedWriter("c/pv-1/uid-1", root, "snap-1") as writer:
        for parts in files:
            writer.add(parts, os.stat(root.joinpath(*parts), follow_symlinks=False), CONTENT)
        started = time.monotonic()
        writer.commit(repo, settle=False)
        took = time.monotonic() - started
        dropped = writer.dropped
    assert took < seed.RACY_NS / 1e9 / 2, f"the commit waited {took:.2f} s"
    assert dropped == len(files)  # every file was written just now: none is trusted yet
    cursor = load_seed(repo, "c/pv-1/uid-1", root)
    assert cursor is not None and not _ask(cursor, root, ("a.txt",))

    # once the files are older than the racy window, the same commit records every one, still without a wait
    time.sleep(seed.RACY_NS / 1e9 * 1.2)
    with SeedWriter("c/pv-1/uid-1", root, "snap-1") as writer:
        for parts in files:
            writer.add(parts, os.stat(root.joinpath(*parts), follow_symlinks=False), CONTENT)
        started = time.monotonic()
        writer.commit(repo, settle=False)
        assert time.monotonic() - started < seed.RACY_NS / 1e9 / 2
        assert writer.dropped == 0
    cursor = load_seed(repo, "c/pv-1/uid-1", root)
    assert cursor is not None and all(_ask(cursor, root, parts) for parts in files)
