"""Only `init` creates a location (issue 17 item 4); init refuses what is not an empty location
(issue 14 items 12 and 13); a backup into a path that is not a repository says the mount may be missing."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.errors import RepositoryError, RepositoryNotFoundError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, StorageError


def test_filesystem_storage_never_creates_its_root(tmp_path: Path) -> None:
    missing = tmp_path / "mnt" / "nfs" / "backups"
    storage = FilesystemStorage(missing)
    assert not storage.location_exists()
    with pytest.raises(StorageError, match="does not exist"):
        storage.put("config", b"x")
    assert not missing.exists() and not (tmp_path / "mnt").exists()
    storage.create_location()
    assert missing.is_dir() and storage.location_exists()
    storage.put("data/ab/cd", b"x")
    assert storage.get("data/ab/cd") == b"x"


def test_open_of_a_missing_or_empty_path_suggests_the_mount(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    with pytest.raises(RepositoryNotFoundError, match="mounted"):
        Repository.open(FilesystemStorage(missing), passphrase="pw")
    assert not missing.exists()
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()  # an unmounted mount point is an empty directory
    with pytest.raises(RepositoryNotFoundError, match="mounted"):
        Repository.open(FilesystemStorage(mount_point), passphrase="pw")
    assert list(mount_point.iterdir()) == []


def test_init_creates_a_missing_location_only_when_asked(tmp_path: Path) -> None:
    missing = tmp_path / "new"
    with pytest.raises(RepositoryNotFoundError, match="does not exist"):
        Repository.init(FilesystemStorage(missing), passphrase="pw", kdf=KdfParams.cheap())
    assert not missing.exists()
    Repository.init(FilesystemStorage(missing), passphrase="pw", kdf=KdfParams.cheap(), create_location=True)
    assert (missing / "config").is_file()


def test_init_refuses_a_non_empty_directory_that_is_no_repository(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "thesis.txt").write_text("precious")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    with pytest.raises(RepositoryError, match="not empty"):
        Repository.init(FilesystemStorage(home), passphrase="pw", kdf=KdfParams.cheap())
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def test_init_accepts_an_empty_directory_with_lost_and_found(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    (fresh / "lost+found").mkdir(parents=True)  # a freshly formatted volume
    Repository.init(FilesystemStorage(fresh), passphrase="pw", kdf=KdfParams.cheap())


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("KUBEKEEP_TEST_CHEAP_KDF", "1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", "pw")
    monkeypatch.delenv("KUBEKEEP_REPOSITORY", raising=False)
    return CliRunner()


def test_cli_init_location_errors_are_one_line(runner: CliRunner, tmp_path: Path) -> None:
    from flows.cli.repo import repo_app

    a_file = tmp_path / "file.txt"
    a_file.write_text("not a directory")
    r = runner.invoke(repo_app, ["init", "--repo", str(a_file)])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "not a directory" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert a_file.read_text() == "not a directory"

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    r = runner.invoke(repo_app, ["init", "--repo", str(busy)])
    assert r.exit_code == 1 and "not empty" in r.output, r.output
    assert sorted(p.name for p in busy.iterdir()) == ["x"]

    r = runner.invoke(repo_app, ["init", "--repo", str(tmp_path / "a" / "new")])  # init creates a directory
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "new" / "config").is_file()


def test_cli_backup_into_a_path_that_is_no_repository(runner: CliRunner, tmp_path: Path) -> None:
    from flows.cli.repo import repo_app

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    unmounted = tmp_path / "mnt" / "nfs"
    r = runner.invoke(repo_app, ["backup", "--repo", str(unmounted), str(src)])
    assert r.exit_code == 1 and "mounted" in r.output, r.output
    assert not unmounted.exists()
    r = runner.invoke(repo_app, ["restore", "--repo", str(tmp_path / "typo"), "latest", "--target",
                                 str(tmp_path / "out")])
    assert r.exit_code == 1 and not (tmp_path / "typo").exists()


def test_encryption_key_block_creates_only_with_create(tmp_path: Path) -> None:
    from blocks import EncryptionKey, LocationProfile

    key = EncryptionKey(passphrase="pw", cheap_kdf=True)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "nfs" / "backups"))
    with pytest.raises(RepositoryNotFoundError, match="mounted"):
        key.open_repository(location.storage())
    assert not (tmp_path / "nfs").exists()
    with key.open_repository(location.storage(), create=True) as repo:
        assert repo.snapshots() == []
    with key.open_repository(location.storage()) as repo:
        assert repo.snapshots() == []


def test_backup_flow_and_cli_take_init() -> None:
    from flows.backup import backup
    from tasks.backup import snapshot_manifests

    params = inspect.signature(backup.fn).parameters
    assert params["init"].default is False
    assert "init:" in (backup.fn.__doc__ or "")
    assert inspect.signature(snapshot_manifests.fn).parameters["init"].default is False

    from flows.cli import app

    r = CliRunner().invoke(app, ["backup", "--help"])
    assert "--init" in r.output
