"""The contract of the incremental restore into a pre-seeded volume (docs/migration.md, "Pre-seed and
incremental cutover"): only the delta moves, the target ends equal to the snapshot, nothing outside it is
touched, and nothing unverified is trusted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kubekeep.migrate import seed
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore.volume_data import verify_volume

TARGET = "cluster-b/pv-data/uid-1"


@pytest.fixture(autouse=True)
def short_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "RACY_NS", 200_000_000)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(FilesystemStorage(tmp_path / "repo", create=True), passphrase="pw", kdf=KdfParams.cheap())


def _sync(repo: Repository, snapshot_id: str, target: Path, target_id: str = TARGET) -> Any:
    from kubekeep.migrate.volumes import sync_volume

    return sync_volume(repo, snapshot_id, target, target_id=target_id)


def _volume(root: Path, files: int = 50, size: int = 64 * 1024) -> None:
    for i in range(files):
        path = root / ("sub" if i % 2 else "") / f"f-{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(str(i).encode()).digest()
        path.write_bytes((block * (size // 32 + 1))[:size])
    (root / "big.bin").write_bytes(os.urandom(4 << 20))


def _listing(root: Path) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(str((Path(dirpath) / name).relative_to(root)))
    return out


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def test_a_seeded_target_receives_only_the_delta_and_ends_equal_to_the_snapshot(repo: Repository,
                                                                                tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    _volume(source)
    first = repo.backup(source).snapshot_id
    seeded = _sync(repo, first, target)
    assert seeded.written == 51 and seeded.kept == 0 and verify_volume(repo, first, target).ok
    inodes = _inodes(target)
    # about 1 % of the data changes on the source: one file rewritten, one added, one deleted, one chmod
    (source / "f-004.bin").write_bytes(b"changed" * 1000)
    (source / "sub" / "new.bin").write_bytes(b"new" * 1000)
    (source / "sub" / "f-005.bin").unlink()
    os.chmod(source / "f-006.bin", 0o600)
    final = repo.backup(source, parent=first).snapshot_id
    result = _sync(repo, final, target)
    assert (result.written, result.deleted) == (2, 1), result
    assert result.written_bytes == 7000 + 3000
    assert result.kept == 49
    assert verify_volume(repo, final, target).ok
    assert _listing(target) == _listing(source)  # nothing left that the snapshot does not hold
    assert os.stat(target / "f-006.bin").st_mode & 0o777 == 0o600
    unchanged = {k: v for k, v in _inodes(target).items() if k not in ("f-004.bin", "sub/new.bin")}
    assert unchanged == {k: v for k, v in inodes.items() if k in unchanged}  # kept files were not rewritten


def test_a_file_changed_in_the_target_after_the_seed_is_rewritten(repo: Repository, tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    _volume(source, files=4)
    snap = repo.backup(source).snapshot_id
    _sync(repo, snap, target)
    victim = target / "f-000.bin"
    st = victim.stat()
    victim.write_bytes(b"X" * st.st_size)  # same size
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: only ctime tells
    result = _sync(repo, snap, target)
    assert result.written == 1 and verify_volume(repo, snap, target).ok


def test_links_planted_in_the_target_are_replaced_or_removed_never_followed(repo: Repository,
                                                                           tmp_path: Path) -> None:
    source, target, outside = tmp_path / "source", tmp_path / "target", tmp_path / "outside"
    _volume(source, files=4)
    snap = repo.backup(source).snapshot_id
    _sync(repo, snap, target)
    outside.mkdir()
    (outside / "secret").write_bytes(b"keep me")
    (target / "f-000.bin").unlink()
    os.symlink(outside / "secret", target / "f-000.bin")  # a kept file replaced by a link out of the target
    os.symlink(outside, target / "escape")  # an entry the snapshot does not hold: a link to a directory
    result = _sync(repo, snap, target)
    assert (outside / "secret").read_bytes() == b"keep me" and (outside / "secret").exists()
    assert not (target / "f-000.bin").is_symlink() and verify_volume(repo, snap, target).ok
    assert not os.path.lexists(target / "escape") and result.deleted == 1


def test_a_record_of_another_volume_is_not_trusted(repo: Repository, tmp_path: Path) -> None:
    source, target, other = tmp_path / "source", tmp_path / "target", tmp_path / "other"
    _volume(source, files=6)
    snap = repo.backup(source).snapshot_id
    _sync(repo, snap, target)
    shutil.copytree(target, other, symlinks=True)  # the same names, sizes and mtimes: other inodes
    shutil.rmtree(target)
    os.rename(other, target)
    result = _sync(repo, snap, target)  # another directory under the old name: the record does not apply
    assert result.kept == 0 and result.written == 7
