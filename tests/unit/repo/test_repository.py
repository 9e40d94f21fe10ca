from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubekeep.repo.crypto import KdfParams, LocalKeyWrapper
from kubekeep.repo.errors import (
    IntegrityError,
    RepositoryError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    WrongKeyError,
)
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import CHUNKER, PASSWORD, make_repo, open_repo, snapshot_of


def _keys(storage: FilesystemStorage) -> set[str]:
    return {i.key for i in storage.list()}


def test_backup_restore_roundtrip_with_metadata(repo: Repository, source: Path, tmp_path: Path) -> None:
    result = repo.backup(source, tags=["app"], metadata={"namespace": "shop"})
    assert result.stats.files > 10 and result.stats.new_chunks > 0 and not result.errors
    out = tmp_path / "out"
    repo.restore(result.snapshot_id, out)
    assert snapshot_of(out) == snapshot_of(source)
    assert os.stat(out / "hardlink-to-1").st_ino == os.stat(out / "data" / "file-1.bin").st_ino
    [info] = repo.snapshots()
    assert info.tags == ("app",) and info.metadata == {"namespace": "shop"}
    assert repo.check(read_data=True).ok


def test_open_again_and_restore_one_path(storage: FilesystemStorage, source: Path, tmp_path: Path) -> None:
    sid = make_repo(storage).backup(source).snapshot_id
    repo = open_repo(storage)
    repo.restore(sid[:8], tmp_path / "one", path="data/deep")
    assert (tmp_path / "one/data/deep/er/leaf.txt").read_text() == "leaf\n"
    assert not (tmp_path / "one/etc").exists()
    repo.restore("latest", tmp_path / "f", path="etc/conf.d/file-0.bin")
    assert (tmp_path / "f/etc/conf.d/file-0.bin").read_bytes() == (source / "etc/conf.d/file-0.bin").read_bytes()
    with pytest.raises(RepositoryError, match="not in the snapshot"):
        repo.restore(sid, tmp_path / "x", path="no/such")
    with pytest.raises(SnapshotNotFoundError):
        repo.restore("ffffffff", tmp_path / "x")


def test_streams_roundtrip_and_dedup(repo: Repository) -> None:
    objects = [{"kind": "Secret", "metadata": {"name": f"s{i}"}, "data": {"k": "v" * i}} for i in range(2000)]
    parts = [json.dumps(o).encode() + b"\n" for o in objects]
    r1 = repo.backup_stream("manifests", iter(parts), tags=["k8s"])
    assert b"".join(repo.read_stream(r1.snapshot_id, "manifests")) == b"".join(parts)
    r2 = repo.backup(streams={"manifests": iter(parts), "empty": iter([])})
    assert r2.stats.new_bytes == 0  # everything deduplicated
    assert b"".join(repo.read_stream(r2.snapshot_id, "empty")) == b""
    with pytest.raises(RepositoryError, match="no stream"):
        list(repo.read_stream(r2.snapshot_id, "nope"))


def test_large_content_uses_chunk_lists(repo: Repository) -> None:
    data = os.urandom(2200 * 5 * 1024)  # > INLINE_CHUNKS chunks at ~5 KiB average
    r = repo.backup_stream("dump", [data[i:i + 65536] for i in range(0, len(data), 65536)])
    doc = repo.load_snapshot(r.snapshot_id)
    assert "lists" in doc["streams"]["dump"]
    assert b"".join(repo.read_stream(r.snapshot_id, "dump")) == data
    assert repo.check(read_data=True).ok


def test_incremental_skips_unchanged_and_dedups(repo: Repository, source: Path, tmp_path: Path) -> None:
    first = repo.backup(source)
    (source / "data" / "file-3.bin").write_bytes(b"changed" * 1000)
    (source / "new.txt").write_text("new\n")
    second = repo.backup(source, parent="latest")
    assert second.stats.unchanged_files == first.stats.files - 1
    assert second.stats.new_bytes <= 7000 + 4 + 16384
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    repo.restore(second.snapshot_id, out2)
    assert snapshot_of(out2) == snapshot_of(source)
    repo.restore(first.snapshot_id, out1)
    assert (out1 / "data/file-3.bin").read_bytes() != b"changed" * 1000


def test_latest_parent_is_the_newest_snapshot_of_the_same_directory(repo: Repository, source: Path,
                                                                     tmp_path: Path) -> None:
    """'latest' as a parent means the newest snapshot of this directory: a stream snapshot (a restore point
    record, a DR copy's) or another directory's snapshot written since does not turn the next backup into a
    full read."""
    first = repo.backup(source)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    repo.backup(other)
    repo.backup_stream("record", [b"{}"])
    second = repo.backup(source, parent="latest")
    assert second.stats.unchanged_files == first.stats.files
    assert repo.load_snapshot(second.snapshot_id)["parent"] == first.snapshot_id
    # no snapshot of this directory yet: a full backup, not an error
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "y").write_text("y")
    third = repo.backup(fresh, parent="latest")
    assert third.stats.unchanged_files == 0 and repo.load_snapshot(third.snapshot_id)["parent"] is None


def test_wrong_passphrase_writes_nothing(storage: FilesystemStorage) -> None:
    make_repo(storage)
    before = _keys(storage)
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        open_repo(storage, passphrase="nope")
    assert _keys(storage) == before


def test_init_refuses_existing_and_open_refuses_missing(storage: FilesystemStorage, tmp_path: Path) -> None:
    make_repo(storage)
    with pytest.raises(RepositoryExistsError):
        make_repo(storage)
    with pytest.raises(RepositoryNotFoundError):
        open_repo(FilesystemStorage(tmp_path / "empty"))


def test_unknown_format_version(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "r", create=True)
    storage.put("config", json.dumps({"format": "kubekeep-repository", "version": 7}).encode())
    with pytest.raises(UnsupportedFormatError, match="version 7 is not supported"):
        open_repo(storage)


def test_tampered_config_is_refused(storage: FilesystemStorage) -> None:
    make_repo(storage)
    config = json.loads(storage.get("config"))
    config["pack_size"] = 1
    storage.delete("config")
    storage.put("config", json.dumps(config).encode())
    with pytest.raises(IntegrityError, match="config"):
        open_repo(storage)


def test_key_slots(storage: FilesystemStorage, tmp_path: Path, source: Path) -> None:
    repo = make_repo(storage, cipher="chacha20-poly1305")
    sid = repo.backup(source).snapshot_id
    [old] = repo.list_keys()
    keyfile = tmp_path / "kms.key"
    keyfile.write_text(LocalKeyWrapper.generate_key())
    ext = repo.add_external_key(LocalKeyWrapper.from_file(keyfile))
    new_slot = repo.change_passphrase(old.slot_id, "new passphrase", kdf=KdfParams.cheap())
    assert {k.slot_id for k in repo.list_keys()} == {ext, new_slot}
    with pytest.raises(WrongKeyError):
        open_repo(storage)  # the old passphrase is gone
    reopened = open_repo(storage, passphrase="new passphrase")
    via_key = open_repo(storage, passphrase=None, key_wrapper=LocalKeyWrapper.from_file(keyfile))
    for r in (reopened, via_key):
        r.restore(sid, tmp_path / f"o{id(r)}")
    with pytest.raises(WrongKeyError):
        open_repo(storage, passphrase=None, key_wrapper=LocalKeyWrapper(b"\x01" * 32))
    reopened.remove_key(ext)
    with pytest.raises(RepositoryError, match="last key slot"):
        reopened.remove_key(new_slot)


def test_external_key_from_env(storage: FilesystemStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KK_TEST_KEY", LocalKeyWrapper.generate_key())
    make_repo(storage, passphrase=None, key_wrapper=LocalKeyWrapper.from_env("KK_TEST_KEY"))
    open_repo(storage, passphrase=None, key_wrapper=LocalKeyWrapper.from_env("KK_TEST_KEY"))


def test_stats(repo: Repository, source: Path) -> None:
    repo.backup(source)
    repo.backup(source)
    s = repo.stats()
    assert s.snapshots == 2 and s.logical_bytes > 0 and s.dedup_ratio >= 1.9 and s.stored_bytes > 0


def test_bad_inputs(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not a directory"):
        repo.backup(tmp_path / "missing")
    with pytest.raises(RepositoryError, match="nothing to back up"):
        repo.backup()
    with pytest.raises(RepositoryError, match="strings"):
        repo.backup_stream("s", [b"x"], metadata={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(RepositoryError, match="cannot lock"):
        from datetime import UTC, datetime

        from kubekeep.repo.storage import RetentionMode

        repo.backup_stream("s", [b"x"], retention=(RetentionMode.GOVERNANCE, datetime.now(UTC)))
    assert repo.snapshots() == []


def test_chunker_params_are_fixed_in_config(storage: FilesystemStorage) -> None:
    make_repo(storage)
    assert json.loads(storage.get("config"))["chunker"]["avg_size"] == CHUNKER["avg_size"]
    assert PASSWORD
