"""Volume data restore and its verification against the snapshot (filesystem repository, no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore.volume_data import restore_volume, verify_volume
from kubekeep.testbed.sample_app import fill_volume


@pytest.fixture
def repo_and_snapshot(tmp_path: Path) -> tuple[Repository, str, dict[str, str]]:
    repo = Repository.init(FilesystemStorage(tmp_path / "repo", create=True), passphrase="pw", kdf=KdfParams.cheap())
    source = tmp_path / "src"
    digests = fill_volume(source, seed="verify", files=9, size=300_000)
    return repo, repo.backup(source).snapshot_id, digests


def test_restore_and_verify_whole_volume(repo_and_snapshot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, sid, digests = repo_and_snapshot
    summary = restore_volume(repo, sid, tmp_path / "out")
    assert summary["verified_files"] == len(digests)
    assert verify_volume(repo, sid, tmp_path / "out").ok


def test_single_file_restore_keeps_its_path(repo_and_snapshot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, sid, digests = repo_and_snapshot
    summary = restore_volume(repo, sid, tmp_path / "one", path="sub/file-001.bin")
    assert summary["verified_files"] == 1
    assert [p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*") if p.is_file()] == \
        ["sub/file-001.bin"]


def test_verification_names_a_file_that_differs(repo_and_snapshot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, sid, _ = repo_and_snapshot
    out = tmp_path / "out"
    restore_volume(repo, sid, out, verify=False)
    victim = out / "sub" / "file-002.bin"
    data = bytearray(victim.read_bytes())
    data[150_000] ^= 0x01
    victim.write_bytes(bytes(data))
    (out / "file-003.txt").unlink()
    result = verify_volume(repo, sid, out)
    assert sorted(result.mismatches) == ["file-003.txt: missing after restore",
                                        "sub/file-002.bin: content differs from the snapshot"]


def test_verification_does_not_follow_a_link_in_the_volume(repo_and_snapshot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A restored file replaced by a symlink to an identical copy elsewhere is a mismatch, not a pass."""
    repo, sid, _ = repo_and_snapshot
    out = tmp_path / "out"
    restore_volume(repo, sid, out, verify=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = out / "sub" / "file-002.bin"
    (elsewhere / "copy.bin").write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(elsewhere / "copy.bin")
    (out / "sub").rename(elsewhere / "sub")
    (out / "sub").symlink_to(elsewhere / "sub")
    result = verify_volume(repo, sid, out)
    assert result.mismatches and all(m.startswith("sub/") and "cannot open" in m for m in result.mismatches)
