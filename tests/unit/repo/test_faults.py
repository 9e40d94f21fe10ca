"""Bad input and faults: damaged, truncated and missing objects, transient and permanent storage errors."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from kubekeep.repo.errors import RepositoryError, RestoreError
from kubekeep.repo.format import pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FaultInjectingStorage, FaultPlan, FilesystemStorage, RetentionMode
from kubekeep.repo.storage.wrappers import InjectedPermanentError

from .conftest import make_repo, open_repo, snapshot_of


def _damage(storage: FilesystemStorage, key: str, offset: int) -> None:
    path = storage.root / key
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _file_chunk(repo: Repository, snapshot_id: str, path: str) -> tuple[bytes, int, int]:
    """(pack id, offset, length) of the first chunk of ``path`` in a snapshot."""
    doc = repo.load_snapshot(snapshot_id)
    entries = repo.load_tree(doc["tree"])
    *dirs, name = path.split("/")
    for d in dirs:
        entries = repo.load_tree(next(e for e in entries if e["name"] == d)["subtree"])
    node = next(e for e in entries if e["name"] == name)
    chunk = next(repo.content_chunks(node["content"]))
    loc = repo.index.lookup(chunk)
    assert loc is not None
    return loc.pack_id, loc.entry.offset, loc.entry.length


def test_flipped_byte_is_named_and_fails_only_its_file(repo: Repository, storage: FilesystemStorage,
                                                       source: Path, tmp_path: Path) -> None:
    sid = repo.backup(source).snapshot_id
    pack_id, offset, length = _file_chunk(repo, sid, "data/file-3.bin")
    _damage(storage, pack_key(pack_id), offset + length // 2)
    result = repo.check(read_data=True)
    assert not result.ok
    assert any(p == pack_id.hex() for p, _ in result.damaged)
    assert any(pack_id.hex() in e and "authentication failed" in e for e in result.errors)
    assert repo.check().ok  # structure alone is intact
    out = tmp_path / "out"
    with pytest.raises(RestoreError) as info:
        repo.restore(sid, out)
    failed = set(info.value.failures)
    assert str(out / "data/file-3.bin") in failed
    assert not (out / "data/file-3.bin").exists()
    expected = {k: v for k, v in snapshot_of(source).items() if k != "data/file-3.bin" and not k.startswith("data")}
    got = snapshot_of(out)
    for rel, meta in expected.items():
        if meta[0] == "file":
            assert got[rel][1] == meta[1], rel


def test_transient_errors_are_retried(tmp_path: Path, source: Path) -> None:
    inner = FilesystemStorage(tmp_path / "repo", create=True)
    faulty = FaultInjectingStorage(inner, FaultPlan(transient_rate=0.2, fail_after_write=True), seed=7)
    repo = make_repo(faulty)
    sid = repo.backup(source).snapshot_id
    assert sum(faulty.injected.values()) > 5
    repo.restore(sid, tmp_path / "out")
    assert snapshot_of(tmp_path / "out") == snapshot_of(source)
    assert open_repo(inner).check(read_data=True).ok


class _FailSecondPack(FaultInjectingStorage):
    """Lets the first pack through, then fails every pack write permanently."""

    packs = 0

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: tuple[RetentionMode, datetime] | None = None) -> None:
        if key.startswith("data/"):
            self.packs += 1
            if self.packs > 1:
                raise InjectedPermanentError(f"injected permanent failure writing {key}")
        super().put(key, data, retention=retention)


def test_permanent_error_fails_clearly_and_leaves_repo_valid(tmp_path: Path, source: Path) -> None:
    inner = FilesystemStorage(tmp_path / "repo", create=True)
    good = make_repo(inner)
    first = good.backup(source).snapshot_id
    (source / "more.bin").write_bytes(os.urandom(200_000))
    broken = FaultInjectingStorage(inner, FaultPlan(permanent=frozenset({"put"})))
    with pytest.raises(RepositoryError, match="storage error"):
        open_repo(broken).backup(source)
    (source / "big.bin").write_bytes(os.urandom(400_000))
    with pytest.raises(RepositoryError, match="storage error.*permanent"):
        open_repo(_FailSecondPack(inner)).backup(source)
    after = open_repo(inner)
    assert [s.id for s in after.snapshots()] == [first]
    assert after.check(read_data=True).ok
    after.restore(first, tmp_path / "o")
