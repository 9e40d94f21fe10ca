"""BlobSaver's claims: a blob is stored once however many threads save it, and the claims do not grow
with the backup (a claim ends once the blob's pack is indexed and the saver sees it there)."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kubekeep.repo import archiver
from kubekeep.repo.archiver import BackupStats, BlobSaver
from kubekeep.repo.crypto import BlobType
from kubekeep.repo.format import INDEX_PREFIX, decode_index, id_from_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode

from .conftest import make_repo
from .memstorage import MemoryStorage


def _stored(repo: Repository) -> Counter[bytes]:
    """In how many packs the index objects list each blob id (the Index would show the first only)."""
    counts: Counter[bytes] = Counter()
    for info in repo.storage.list(INDEX_PREFIX):
        ident = id_from_key(info.key, INDEX_PREFIX)
        assert ident is not None
        payload = repo.keys.open_object(BlobType.INDEX, ident, repo.storage.get(info.key), what=info.key)
        for _pack_id, entries in decode_index(payload, what=info.key):
            counts.update(e.blob_id for e in entries)
    return counts


def _settle(saver: BlobSaver) -> None:
    for fut in list(saver.upload_futures):
        fut.result()


def test_claims_end_once_the_pack_is_indexed(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archiver, "INDEX_FLUSH_PACKS", 2)
    saver = BlobSaver(repo, retention=None, stats=BackupStats())
    blobs = [os.urandom(2000) for _ in range(1500)]  # ~45 packs of 64 KiB
    most_claimed = 0
    for i in range(0, 1000, 50):
        saver.save_blobs(BlobType.DATA, blobs[i:i + 50])
        _settle(saver)
        most_claimed = max(most_claimed, len(saver.claimed))
    # what is claimed: the blobs in the buffers being filled and in packs not indexed yet, not all 1000
    assert most_claimed < 300, most_claimed
    new = saver.stats.new_chunks
    saver.save_blobs(BlobType.DATA, blobs[:1000])  # indexed or claimed: none is stored again
    assert saver.stats.new_chunks == new == 1000
    saver.save_blobs(BlobType.DATA, blobs[1000:])
    saver.finish()
    assert not saver.claimed
    assert saver.stats.new_chunks == 1500
    stored = _stored(repo)
    assert all(stored[repo.blob_id(b)] == 1 for b in blobs)


def test_its_own_packs_are_no_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob found again in a pack the saver wrote is no reused blob: retention is extended for reuse."""
    monkeypatch.setattr(archiver, "INDEX_FLUSH_PACKS", 1)
    repo = make_repo(MemoryStorage())
    old = repo.blob_id(b"stored before")
    saver = BlobSaver(repo, retention=None, stats=BackupStats())
    saver.save_blobs(BlobType.DATA, [b"stored before"])
    saver.finish()
    until = datetime.now(UTC) + timedelta(days=1)
    saver = BlobSaver(repo, retention=(RetentionMode.COMPLIANCE, until), stats=BackupStats())
    blobs = [os.urandom(2000) for _ in range(200)]
    saver.save_blobs(BlobType.DATA, blobs)
    _settle(saver)
    assert saver.own_packs and len(saver.claimed) < 200
    saver.save_blobs(BlobType.DATA, [*blobs, b"stored before"])
    saver.finish()
    assert saver.stats.new_chunks == 200
    assert saver.reused_packs == {repo.index.pack_of(old)}


def test_threads_saving_the_same_blobs_store_each_once(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archiver, "INDEX_FLUSH_PACKS", 1)  # claims end while the other threads save
    saver = BlobSaver(repo, retention=None, stats=BackupStats())
    blobs = [os.urandom(1500) for _ in range(600)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def save(seed: int) -> None:
        order = list(range(len(blobs)))
        random.Random(seed).shuffle(order)
        start.wait()
        try:
            for i in range(0, len(order), 7):
                saver.save_blobs(BlobType.DATA, [blobs[j] for j in order[i:i + 7]])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saver.finish()
    assert not errors
    assert saver.stats.new_chunks == len(blobs)
    stored = _stored(repo)
    assert sorted(stored[repo.blob_id(b)] for b in blobs) == [1] * len(blobs)
