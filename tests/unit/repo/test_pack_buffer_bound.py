"""Pack buffers are bounded when uploads are slower than the workers (S3, issue 15): at most one per
filled pack and per upload slot exist at once, instead of every worker holding a full pack waiting for
a slot while the other fill buffers fill on (8 packs for 2 workers: 219 MiB peak RSS of the 1 GiB S3
backup, 16.5 MiB per pack)."""

from __future__ import annotations

import random
import threading
import time
import weakref
from pathlib import Path

import pytest

from kubekeep.repo import archiver
from kubekeep.repo.errors import RepositoryError
from kubekeep.repo.storage import FilesystemStorage, Retention, StorageError
from kubekeep.repo.storage.wrappers import _Wrapper
from tests.unit.repo.conftest import make_repo

PACK = 4 * 2**20
#: the default chunk sizes: the small test chunker's 16k futures would weigh more than the packs
CHUNKER = {"min_size": 32 * 1024, "avg_size": 96 * 1024, "max_size": 512 * 1024}


class SlowPacks(_Wrapper):
    """Pack uploads take ``delay`` seconds (a loaded S3 server); ``fail`` makes them fail after it."""

    def __init__(self, inner: FilesystemStorage, delay: float, fail: bool = False) -> None:
        super().__init__(inner)
        self.delay = delay
        self.fail = fail
        self.packs = 0

    def put(self, key: str, data: bytes | bytearray | memoryview, *, retention: Retention | None = None) -> None:
        if key.startswith("data/"):
            time.sleep(self.delay)
            if self.fail:
                raise StorageError(f"{key}: refused")
            self.packs += 1
        self.inner.put(key, data, retention=retention)


def _volume(root: Path, mib: int) -> None:
    root.mkdir()
    rng = random.Random(7)
    for i in range(mib // 4):  # incompressible: every byte goes into packs
        (root / f"f{i}").write_bytes(rng.randbytes(4 * 2**20))


class _CountedBytes(bytearray):
    """A pack buffer's bytes, counted while they exist (whichever _PackBuffer holds them)."""

    live = 0
    most = 0
    lock = threading.Lock()

    def __init__(self, size: int) -> None:
        super().__init__(size)
        with _CountedBytes.lock:
            _CountedBytes.live += 1
            _CountedBytes.most = max(_CountedBytes.most, _CountedBytes.live)
        weakref.finalize(self, _CountedBytes._gone)

    @staticmethod
    def _gone() -> None:
        with _CountedBytes.lock:
            _CountedBytes.live -= 1


class _CountedPackBuffer(archiver._PackBuffer):
    def __init__(self, capacity: int = 0) -> None:
        super().__init__(capacity)
        if capacity:
            self.data = _CountedBytes(len(self.data))


def test_slow_uploads_hold_at_most_one_pack_per_fill_and_upload_slot(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    slow = SlowPacks(FilesystemStorage(tmp_path / "repo", create=True), delay=0.15)
    repo = make_repo(slow, pack_size=PACK, workers=2, chunker=CHUNKER)
    _volume(tmp_path / "vol", 64)
    monkeypatch.setattr(archiver, "_PackBuffer", _CountedPackBuffer)
    monkeypatch.setattr(_CountedBytes, "most", 0)
    repo.backup(tmp_path / "vol")
    assert slow.packs >= 12
    # 2 workers: 3 packs filled + 2 uploaded; the unbounded saver reached 6 here (7 with a slower store)
    assert _CountedBytes.most <= 5, f"{_CountedBytes.most} pack buffers at once"


def test_a_failed_upload_ends_the_backup_while_threads_wait_for_a_buffer(tmp_path: Path) -> None:
    slow = SlowPacks(FilesystemStorage(tmp_path / "repo", create=True), delay=0.05)
    repo = make_repo(slow, pack_size=PACK, workers=2, chunker=CHUNKER, retry=False)
    _volume(tmp_path / "vol", 48)
    slow.fail = True
    outcome: list[BaseException | None] = []

    def backup() -> None:
        try:
            repo.backup(tmp_path / "vol")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=backup, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the backup hung after a failed pack upload"
    with pytest.raises((StorageError, RepositoryError), match="refused"):
        if outcome[0] is not None:
            raise outcome[0]
