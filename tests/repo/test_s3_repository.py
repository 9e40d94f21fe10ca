"""A repository on the real S3 test server (SeaweedFS): Object Lock retention and s3:// on the CLI.

No mocks: every request goes to the session's SeaweedFS (tests/plugins/s3.py).
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import INDEX_PREFIX, SNAPSHOTS_PREFIX, pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode, S3Storage
from tests.plugins.s3 import S3TestServer

pytestmark = pytest.mark.s3

PASSWORD = "s3 retention test"
#: small chunks and packs so that a few hundred KiB make several packs and chunk lists
CHUNKER = {"min_size": 1024, "avg_size": 4096, "max_size": 16384}
PACK_SIZE = 64 * 1024


def _write_tree(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    (root / "db").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "db" / "table.bin").write_bytes(rng.randbytes(300_000))
    (root / "db" / "rows.jsonl").write_bytes(b"".join(b'{"id": %d, "seed": %d, "v": "%s"}\n'
                                                    % (i, seed, b"x" * (i % 50)) for i in range(5000)))
    for i in range(20):
        (root / "conf" / f"c{i}.yaml").write_text(f"key: {i}\nvalue: {rng.random()}\n")
    (root / "empty").write_bytes(b"")


def _digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _snapshot_blobs(repo: Repository, snapshot_id: str) -> set[bytes]:
    """Every blob id a snapshot references: trees, chunk lists and data chunks."""
    doc = repo.load_snapshot(snapshot_id)
    blobs: set[bytes] = set()

    def content(c: dict[str, object]) -> None:
        blobs.update(bytes.fromhex(str(x)) for x in c.get("lists", ()))  # type: ignore[attr-defined]
        blobs.update(repo.content_chunks(c))

    def walk(tree: str) -> None:
        blobs.add(bytes.fromhex(tree))
        for entry in repo.load_tree(tree):
            if entry["type"] == "dir":
                walk(entry["subtree"])
            elif entry["type"] == "file":
                content(entry["content"])

    walk(doc["tree"])
    return blobs


@pytest.fixture
def locked_storage(seaweedfs: S3TestServer) -> Iterator[S3Storage]:
    storage = seaweedfs.storage(seaweedfs.locked_bucket)
    yield storage
    storage.close()


def test_backup_with_compliance_retention_survives_prune(locked_storage: S3Storage, tmp_path: Path) -> None:
    repo = Repository.init(locked_storage, passphrase=PASSWORD, kdf=KdfParams.cheap(), chunker=CHUNKER,
                           pack_size=PACK_SIZE)
    assert locked_storage.supports_retention
    source = tmp_path / "src"
    _write_tree(source, seed=1)
    # an unlocked snapshot of other data: dropping it gives prune packs it may delete
    scratch = tmp_path / "scratch"
    _write_tree(scratch, seed=2)
    unlocked = repo.backup(scratch, tags=["scratch"])

    # COMPLIANCE cannot be shortened or removed by anyone, so keep it short-lived
    until = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    locked = repo.backup(source, retention=(RetentionMode.COMPLIANCE, until), tags=["locked"])
    assert locked.stats.packs >= 2

    # every object the snapshot needs carries retain_until >= until
    index = repo.load_index(reload=True)
    packs = set()
    for blob_id in _snapshot_blobs(repo, locked.snapshot_id):
        loc = index.lookup(blob_id)
        assert loc is not None
        packs.add(loc.pack_id)
    keys = {SNAPSHOTS_PREFIX + locked.snapshot_id, "config"}
    keys |= {pack_key(p) for p in packs}
    keys |= {k for p in packs for k in index.sources.get(p, ())}
    assert any(k.startswith(INDEX_PREFIX) for k in keys)
    for key in sorted(keys):
        retained = locked_storage.stat(key).retain_until
        assert retained is not None and retained >= until, (key, retained)

    # prune: asked to drop both snapshots, it removes the unlocked one, keeps the locked one and says so
    result = repo.prune([unlocked.snapshot_id, locked.snapshot_id], wait_timeout=5, poll=0.1)
    assert result.snapshots_removed == [unlocked.snapshot_id]
    assert SNAPSHOTS_PREFIX + locked.snapshot_id in result.locked_skipped
    assert any(f"snapshot {locked.snapshot_id[:12]} is under retention; kept" == m for m in result.messages)
    assert any("under retention were kept" in m for m in result.messages)
    assert result.packs_deleted >= 1, result  # the unlocked snapshot's data did go
    for key in sorted(keys):
        assert locked_storage.exists(key), key
    assert [s.id for s in repo.snapshots()] == [locked.snapshot_id]

    # and the locked snapshot restores byte for byte, from a freshly opened repository
    repo.close()
    reopened = Repository.open(S3Storage(locked_storage.config), passphrase=PASSWORD)
    check = reopened.check(read_data=True)
    assert check.ok, check.errors
    out = tmp_path / "restored"
    reopened.restore(locked.snapshot_id, out)
    assert _digest_tree(out) == _digest_tree(source)
    reopened.close()


def test_cli_s3_location(seaweedfs: S3TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEKEEP_TEST_CHEAP_KDF", "1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", PASSWORD)
    monkeypatch.delenv("KUBEKEEP_REPOSITORY", raising=False)
    monkeypatch.delenv("KUBEKEEP_S3_ADDRESSING_STYLE", raising=False)
    for name, value in seaweedfs.cli_environment().items():
        monkeypatch.setenv(name, value)
    location = f"s3://{seaweedfs.plain_bucket}/cli-{uuid.uuid4().hex[:8]}/repo"
    source = tmp_path / "src"
    _write_tree(source, seed=3)
    runner = CliRunner()

    r = runner.invoke(repo_app, ["init", "--repo", location])
    assert r.exit_code == 0, r.output
    assert location.removeprefix("s3://") in r.output
    r = runner.invoke(repo_app, ["init", "--repo", location])
    assert r.exit_code == 1 and "already holds a repository" in r.output
    r = runner.invoke(repo_app, ["backup", "--repo", location, str(source)])
    assert r.exit_code == 0, r.output
    (source / "conf" / "c0.yaml").write_text("changed\n")
    r = runner.invoke(repo_app, ["backup", "--repo", location, str(source), "--parent", "latest"])
    assert r.exit_code == 0, r.output
    assert "22 unchanged" in r.output
    r = runner.invoke(repo_app, ["restore", "--repo", location, "latest", "--target", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert _digest_tree(tmp_path / "out") == _digest_tree(source)
    r = runner.invoke(repo_app, ["check", "--repo", location, "--read-data"])
    assert r.exit_code == 0, r.output

    # the objects really are in the bucket, under the prefix
    client = seaweedfs.client()
    listed = client.list_objects_v2(Bucket=seaweedfs.plain_bucket, Prefix=location.split("/", 3)[3] + "/")
    keys = {o["Key"].split("/", 2)[2] for o in listed.get("Contents", [])}
    assert "config" in keys and any(k.startswith("snapshots/") for k in keys)

    # wrong credentials and a missing bucket are clear errors
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    r = runner.invoke(repo_app, ["snapshots", "--repo", location])
    assert r.exit_code == 1 and "error" in r.output
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    r = runner.invoke(repo_app, ["snapshots", "--repo", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x"])
    assert r.exit_code == 1 and "error" in r.output
    r = runner.invoke(repo_app, ["snapshots", "--repo", "s3:///prefix-only"])
    assert r.exit_code == 1 and "no bucket" in r.output
