"""repair-index (kubekeep/repo/maintenance/repair.py): the index rebuilt from the pack headers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubekeep.repo.errors import LockedError, RepositoryError
from kubekeep.repo.format import INDEX_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import make_repo, open_repo, snapshot_of


def test_lost_index_is_reported_and_repaired(storage: FilesystemStorage, source: Path, tmp_path: Path) -> None:
    repo = make_repo(storage)
    sid = repo.backup(source).snapshot_id
    for info in list(storage.list(INDEX_PREFIX)):
        os.unlink(storage.root / info.key)
    repo = open_repo(storage)
    result = repo.check()
    assert any("index is missing" in e for e in result.errors)
    with pytest.raises(RepositoryError, match="not in the index"):
        repo.restore(sid, tmp_path / "o")
    repaired = repo.repair_index()
    assert repaired.packs_indexed >= 1 and not repaired.unreadable_packs
    assert repo.check(read_data=True).ok
    repo.restore(sid, tmp_path / "o2")
    assert snapshot_of(tmp_path / "o2") == snapshot_of(source)


def test_the_old_index_objects_are_replaced(repo: Repository, storage: FilesystemStorage, source: Path) -> None:
    repo.backup(source)
    repo.backup_stream("s", [os.urandom(100_000)])
    old = {i.key for i in storage.list(INDEX_PREFIX)}
    blobs = len(repo.load_index(reload=True))
    result = repo.repair_index()
    new = {i.key for i in storage.list(INDEX_PREFIX)}
    assert result.index_objects_removed == len(old) and not old & new
    assert result.index_objects_written == len(new) == 1
    assert result.blobs_indexed == blobs == len(repo.load_index())
    assert repo.check(read_data=True).ok


def test_an_unreadable_pack_is_named_and_the_rest_indexed(storage: FilesystemStorage, source: Path) -> None:
    repo = make_repo(storage)
    repo.backup(source)
    before = {i.key for i in storage.list("data/")}
    stream = repo.backup_stream("s", [os.urandom(30_000)]).snapshot_id  # one pack
    (damaged,) = {i.key for i in storage.list("data/")} - before
    path = storage.root / damaged
    path.write_bytes(path.read_bytes()[:-3])  # the trailer is gone
    result = open_repo(storage).repair_index()
    assert [p for p in result.unreadable_packs if p.startswith(damaged.rsplit("/", 1)[1])]
    assert result.packs_indexed == len(before)
    check = open_repo(storage).check()
    assert any(e.startswith(f"snapshot {stream[:12]}:") and "not in the index" in e for e in check.errors)


def test_repair_refuses_while_a_prune_runs(repo: Repository, source: Path) -> None:
    repo.backup(source)
    before = {i.key for i in repo.storage.list(INDEX_PREFIX)}
    prune_lock = repo.lock("prune")
    try:
        with pytest.raises(LockedError, match="prune is running"):
            repo.repair_index()
    finally:
        prune_lock.release()
    assert {i.key for i in repo.storage.list(INDEX_PREFIX)} == before
