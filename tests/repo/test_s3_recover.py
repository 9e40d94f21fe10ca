"""Issue 14 item 9 and the S3 half of item 13, on the real SeaweedFS (Object Lock bucket).

An attacker with write access (no key) can add a delete marker over a locked snapshot or write a newer
version of `config` or of a snapshot: the locked originals survive. `check` reports it, `repo recover`
makes the originals visible again, and opening the repository verifies `config` and falls back to the
authentic (locked) version. `repo init` refuses a missing bucket unless --create-bucket (which creates it
with Object Lock when a lock is asked for); `repo init`/`backup` take --lock-mode/--lock-days.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode, S3Storage
from tests.plugins.s3 import S3TestServer

pytestmark = pytest.mark.s3

PASSWORD = "recover test"


@pytest.fixture
def locked(seaweedfs: S3TestServer) -> Iterator[tuple[S3Storage, Any, Repository]]:
    storage = seaweedfs.storage(seaweedfs.locked_bucket)
    repo = Repository.init(storage, passphrase=PASSWORD, kdf=KdfParams.cheap())
    yield storage, seaweedfs.client(), repo
    storage.close()


def _full(storage: S3Storage, key: str) -> str:
    return storage.prefix + key


def _lock(minutes: int = 10) -> tuple[RetentionMode, datetime]:
    return RetentionMode.COMPLIANCE, (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0)


def _cli_env(monkeypatch: pytest.MonkeyPatch, seaweedfs: S3TestServer) -> None:
    monkeypatch.setenv("KUBEKEEP_TEST_CHEAP_KDF", "1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", PASSWORD)
    monkeypatch.delenv("KUBEKEEP_REPOSITORY", raising=False)
    monkeypatch.delenv("KUBEKEEP_S3_ADDRESSING_STYLE", raising=False)
    for name, value in seaweedfs.cli_environment().items():
        monkeypatch.setenv(name, value)


def _location(storage: S3Storage) -> str:
    return f"s3://{storage.bucket}/{storage.prefix.rstrip('/')}"


def test_delete_marker_over_a_locked_snapshot(locked: tuple[S3Storage, Any, Repository], tmp_path: Path,
                                             seaweedfs: S3TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, client, repo = locked
    sid = repo.backup_stream("db", [b"precious " * 1000], retention=_lock()).snapshot_id
    client.delete_object(Bucket=storage.bucket, Key=_full(storage, SNAPSHOTS_PREFIX + sid))  # no VersionId
    fresh = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert fresh.snapshots() == []  # hidden

    result = fresh.check()
    assert not result.ok
    assert any(SNAPSHOTS_PREFIX + sid in e and "delete marker" in e and "retained until" in e
               for e in result.errors), result.errors

    _cli_env(monkeypatch, seaweedfs)
    r = CliRunner().invoke(repo_app, ["recover", "--repo", _location(storage)])
    assert r.exit_code == 0, r.output
    assert SNAPSHOTS_PREFIX + sid in r.output
    again = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert [s.id for s in again.snapshots()] == [sid]
    assert b"".join(again.read_stream(sid, "db")) == b"precious " * 1000
    assert again.check(read_data=True).ok


@pytest.mark.parametrize("forgery", ["garbage", "other-repository"])
def test_a_forged_config_version_is_detected_and_the_original_used(
        locked: tuple[S3Storage, Any, Repository], forgery: str) -> None:
    storage, client, repo = locked
    sid = repo.backup_stream("db", [b"x" * 5000], retention=_lock()).snapshot_id  # locks config and keys
    original = storage.get("config")
    if forgery == "garbage":
        forged = os.urandom(200)
    else:
        doc = json.loads(original)
        doc.update(repository_id=os.urandom(32).hex(), pack_size=1, mac="0" * 64)
        forged = json.dumps(doc).encode()
    time.sleep(1.1)  # S3 times have one-second resolution
    client.put_object(Bucket=storage.bucket, Key=_full(storage, "config"), Body=forged)  # a newer version
    assert storage.get("config") == forged

    fresh = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert fresh.config["pack_size"] == repo.config["pack_size"]
    assert any("config" in w and "recover" in w for w in fresh.warnings), fresh.warnings
    assert [s.id for s in fresh.snapshots()] == [sid]
    result = fresh.check()
    assert any("config" in e and "newer version" in e for e in result.errors), result.errors

    report = fresh.recover()
    assert any(a.key == "config" for a in report.actions)
    assert storage.get("config") == original
    clean = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert clean.warnings == [] and clean.check().ok


def test_a_deleted_config_is_found_under_its_delete_marker(locked: tuple[S3Storage, Any, Repository]) -> None:
    storage, client, repo = locked
    repo.backup_stream("db", [b"y" * 5000], retention=_lock())
    client.delete_object(Bucket=storage.bucket, Key=_full(storage, "config"))
    assert not storage.exists("config")
    fresh = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert any("config" in w for w in fresh.warnings)
    fresh.recover()
    assert storage.exists("config")
    assert Repository.open(S3Storage(storage.config), passphrase=PASSWORD).warnings == []


@pytest.mark.parametrize("forged_lock", [False, True])
def test_a_forged_newer_snapshot_version_is_undone(locked: tuple[S3Storage, Any, Repository],
                                                   forged_lock: bool) -> None:
    storage, client, repo = locked
    sid = repo.backup_stream("db", [b"z" * 5000], retention=_lock()).snapshot_id
    time.sleep(1.1)
    extra: dict[str, Any] = {}
    if forged_lock:  # the attacker even locked the forgery: it cannot be deleted, the original is copied back
        mode, until = _lock(3)
        extra = {"ObjectLockMode": mode.value, "ObjectLockRetainUntilDate": until}
    client.put_object(Bucket=storage.bucket, Key=_full(storage, SNAPSHOTS_PREFIX + sid), Body=os.urandom(200),
                      **extra)
    fresh = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    problems: list[str] = []
    assert fresh.snapshots(problems=problems) == [] and problems
    errors = fresh.check().errors
    assert any(SNAPSHOTS_PREFIX + sid in e and "newer version" in e for e in errors), errors
    report = fresh.recover()
    [action] = [a for a in report.actions if a.key == SNAPSHOTS_PREFIX + sid]
    assert ("copied" in action.action) == forged_lock, action
    again = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert [s.id for s in again.snapshots()] == [sid]
    assert b"".join(again.read_stream(sid, "db")) == b"z" * 5000


def test_cli_init_refuses_a_missing_bucket_unless_asked(seaweedfs: S3TestServer, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    _cli_env(monkeypatch, seaweedfs)
    runner = CliRunner()
    bucket = f"kk-missing-{uuid.uuid4().hex[:8]}"
    client = seaweedfs.client()
    r = runner.invoke(repo_app, ["init", "--repo", f"s3://{bucket}/x"])
    assert r.exit_code == 1 and "does not exist" in r.output and "--create-bucket" in r.output, r.output
    assert bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}

    r = runner.invoke(repo_app, ["init", "--repo", f"s3://{bucket}/x", "--create-bucket",
                                 "--lock-mode", "COMPLIANCE", "--lock-days", "1"])
    assert r.exit_code == 0, r.output
    conf = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled"
    assert client.head_object(Bucket=bucket, Key="x/config").get("ObjectLockRetainUntilDate") is not None

    source = tmp_path / "src"
    source.mkdir()
    (source / "f.txt").write_text("locked data\n")
    r = runner.invoke(repo_app, ["backup", "--repo", f"s3://{bucket}/x", str(source),
                                 "--lock-mode", "COMPLIANCE", "--lock-days", "1"])
    assert r.exit_code == 0, r.output
    sid = r.stdout.strip().splitlines()[-1]
    head = client.head_object(Bucket=bucket, Key=f"x/snapshots/{sid}")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)

    plain = f"kk-plain-{uuid.uuid4().hex[:8]}"
    r = runner.invoke(repo_app, ["init", "--repo", f"s3://{plain}/y", "--create-bucket"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(repo_app, ["init", "--repo", f"s3://{plain}/z", "--lock-mode", "GOVERNANCE",
                                 "--lock-days", "1"])
    assert r.exit_code == 1 and "Object Lock" in r.output, r.output
    r = runner.invoke(repo_app, ["init", "--repo", f"s3://{plain}/y2", "--lock-days", "3"])
    assert r.exit_code == 1 and "--lock-mode" in r.output


def test_first_backup_with_init_creates_a_locked_bucket_for_a_locked_location(seaweedfs: S3TestServer) -> None:
    from blocks import EncryptionKey, LocationProfile

    bucket = f"kk-flow-{uuid.uuid4().hex[:8]}"
    location = LocationProfile(kind="s3", bucket=bucket, prefix="app/", endpoint_url=seaweedfs.endpoint_url,
                               region=seaweedfs.region, access_key_id=seaweedfs.access_key,
                               secret_access_key=seaweedfs.secret_key, object_lock_mode="COMPLIANCE",
                               object_lock_days=1)
    key = EncryptionKey(passphrase=PASSWORD, cheap_kdf=True)
    with pytest.raises(Exception, match="does not exist"):
        key.open_repository(location.storage())
    with key.open_repository(location.storage(), create=True, object_lock=True) as repo:
        assert repo.storage.supports_retention
        repo.backup_stream("m", [b"manifests"], retention=location.retention())


def test_a_key_slot_hidden_by_a_delete_marker_still_opens(locked: tuple[S3Storage, Any, Repository]) -> None:
    storage, client, repo = locked
    repo.backup_stream("db", [b"k" * 5000], retention=_lock())
    [slot_key] = [i.key for i in storage.list("keys/")]
    client.delete_object(Bucket=storage.bucket, Key=_full(storage, slot_key))
    assert not list(storage.list("keys/"))
    fresh = Repository.open(S3Storage(storage.config), passphrase=PASSWORD)
    assert any(slot_key in w for w in fresh.warnings), fresh.warnings
    assert any(slot_key in e and "delete marker" in e for e in fresh.check().errors)
    fresh.recover()
    assert [i.key for i in storage.list("keys/")] == [slot_key]
    assert Repository.open(S3Storage(storage.config), passphrase=PASSWORD).warnings == []
