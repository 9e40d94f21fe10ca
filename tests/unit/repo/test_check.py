"""check (kubekeep/repo/maintenance/check.py): what it finds, and that it changes nothing."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from kubekeep.repo.crypto import BlobType
from kubekeep.repo.errors import RepositoryError
from kubekeep.repo.format import INDEX_PREFIX, BlobEntry, pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage


def _flip(storage: FilesystemStorage, key: str, offset: int) -> None:
    path = storage.root / key
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_clean_repository_checks_clean_and_counts(repo: Repository, source: Path) -> None:
    repo.backup(source)
    repo.backup_stream("s", [os.urandom(50_000)])
    result = repo.check(read_data=True)
    assert result.ok and not result.warnings
    assert result.snapshots == 2
    assert result.packs == len(list(repo.storage.list("data/")))
    assert result.blobs_read == len(repo.load_index(reload=True))


def test_truncated_pack(repo: Repository, storage: FilesystemStorage, source: Path) -> None:
    repo.backup(source)
    key = next(i.key for i in storage.list("data/"))
    path = storage.root / key
    path.write_bytes(path.read_bytes()[:100])
    result = repo.check()
    assert any("truncated" in e for e in result.errors)
    assert not repo.check(read_data=True).ok


def test_missing_pack(repo: Repository, storage: FilesystemStorage, source: Path, tmp_path: Path) -> None:
    sid = repo.backup(source).snapshot_id
    key = next(i.key for i in storage.list("data/"))
    os.unlink(storage.root / key)
    assert any("missing" in e for e in repo.check().errors)
    with pytest.raises(RepositoryError):
        repo.restore(sid, tmp_path / "o")


def test_an_index_object_that_fails_authentication_is_named(repo: Repository, storage: FilesystemStorage,
                                                            source: Path) -> None:
    repo.backup(source)
    key = next(i.key for i in storage.list(INDEX_PREFIX))
    _flip(storage, key, 40)
    result = repo.check()
    assert any(e.startswith(f"index object {key}") and "authentication failed" in e for e in result.errors)
    # the blobs it named are now unindexed: said once, with the way out
    assert any("not in the index; run repair-index" in e for e in result.errors)


def test_an_unreadable_chunk_list_is_named_with_its_stream(repo: Repository, storage: FilesystemStorage) -> None:
    data = os.urandom(2200 * 5 * 1024)  # listed through chunk lists
    sid = repo.backup_stream("dump", [data[i:i + 65536] for i in range(0, len(data), 65536)]).snapshot_id
    list_id = bytes.fromhex(repo.load_snapshot(sid)["streams"]["dump"]["lists"][0])
    loc = repo.index.lookup(list_id)
    assert loc is not None
    _flip(storage, pack_key(loc.pack_id), loc.entry.offset + loc.entry.length // 2)
    result = repo.check()
    assert any(e.startswith(f"snapshot {sid[:12]} stream dump:") and "authentication failed" in e
               for e in result.errors), result.errors


def test_an_unindexed_pack_is_a_warning(repo: Repository, storage: FilesystemStorage, source: Path) -> None:
    """What an interrupted backup leaves: a pack no index names (prune or repair-index deals with it)."""
    repo.backup(source)
    payload = b"left over by a backup that was killed"
    blob_id = repo.blob_id(payload)
    sealed = repo.envelope.seal(BlobType.DATA, blob_id, 0, payload)
    pack_id = secrets.token_bytes(32)
    body = sealed + repo.pack_tail(pack_id, [BlobEntry(BlobType.DATA, blob_id, 0, len(sealed), len(payload))])
    storage.put(pack_key(pack_id), body)
    result = repo.check(read_data=True)
    assert result.ok
    assert [w for w in result.warnings if pack_id.hex() in w and "not indexed" in w]
    assert storage.exists(pack_key(pack_id))  # check changes nothing
