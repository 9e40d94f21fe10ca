"""Listing snapshots costs one LIST and, with the local manifest cache, no GET per snapshot."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, Storage
from kubekeep.repo.storage.wrappers import _Wrapper


class CountingStorage(_Wrapper):
    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    def get(self, key: str) -> bytes:
        self.calls[f"get {key.split('/')[0]}"] += 1
        return self.inner.get(key)

    def list(self, prefix: str = ""):  # type: ignore[no-untyped-def]
        self.calls[f"list {prefix}"] += 1
        return self.inner.list(prefix)


def test_snapshots_use_one_listing_and_the_manifest_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEKEEP_CACHE_DIR", str(tmp_path / "cache"))
    inner = FilesystemStorage(tmp_path / "repo", create=True)
    repo = Repository.init(inner, passphrase="pw", kdf=KdfParams.cheap())
    ids = [repo.backup_stream(f"s{i}", [f"data {i}".encode()], tags=["t"]).snapshot_id for i in range(12)]

    counting = CountingStorage(inner)
    first = Repository.open(counting, passphrase="pw", retry=False)
    assert sorted(i.id for i in first.snapshots()) == sorted(ids)
    assert counting.calls["list snapshots/"] == 1 and counting.calls["get snapshots"] == 12

    counting.calls.clear()
    again = Repository.open(counting, passphrase="pw", retry=False)
    assert sorted(i.id for i in again.snapshots(tags=["t"])) == sorted(ids)
    assert counting.calls["list snapshots/"] == 1 and counting.calls["get snapshots"] == 0

    # a damaged cache entry is not trusted: the location's copy is read instead
    cached = next((tmp_path / "cache" / "snapshots").rglob(ids[0]))
    cached.write_bytes(b"garbage")
    counting.calls.clear()
    assert ids[0] in {i.id for i in Repository.open(counting, passphrase="pw", retry=False).snapshots()}
    assert counting.calls["get snapshots"] == 1
