"""The backup's worker jobs: a read block's chunks go to one worker, small files go in batches.

Per-chunk jobs cost more CPU than zstd (docs/benchmarks.md, issue 15): a future, a semaphore and a
GIL hand-off per ~100 KiB chunk, and a job per small file. These tests pin what the batching must
keep: a file's consecutive chunks land together, few jobs, the progress throttled and complete, and a
small file that grows after its stat is still read whole.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kubekeep.repo import archiver
from kubekeep.repo.archiver import SMALL_FILE, BlobSaver
from kubekeep.repo.protocols import PROGRESS_SECONDS
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import make_repo, snapshot_of


def _file_chunks(repo: Repository, sid: str, name: str) -> list[bytes]:
    entries = {e["name"]: e for e in repo.load_tree_blob(repo.load_snapshot(sid)["tree"])[1]}
    return list(repo.content_chunks(entries[name]["content"]))


def test_a_files_consecutive_chunks_share_a_pack(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(SMALL_FILE + 700_000))  # ~230 chunks, ~15 packs of 64 KiB
    sid = repo.backup(src).snapshot_id
    chunks = _file_chunks(repo, sid, "big.bin")
    index = repo.index_for_backup()
    packs = [loc.pack_id for loc in (index.lookup(c) for c in chunks) if loc is not None]
    assert len(packs) == len(chunks) > 100
    switches = sum(1 for a, b in zip(packs, packs[1:], strict=False) if a != b)
    # one worker takes a whole read block: the file's chunks fill one pack after the other (chunk by
    # chunk, two workers interleaved them: a switch at most chunks)
    assert switches <= len(set(packs)) + 2, (switches, len(set(packs)), len(chunks))


def test_small_files_go_to_the_workers_in_batches(repo: Repository, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker reads, cuts and stores a batch of small files in one job; the walk's thread reads none."""
    import threading

    src = tmp_path / "src"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (src / f"d{d}" / f"f{i:03d}").write_bytes(os.urandom(100 + 37 * i))
    jobs: list[tuple[int, str]] = []
    real = archiver.Archiver._small_job

    def counted(self: archiver.Archiver, files: list[tuple[str, int]]) -> Any:
        jobs.append((len(files), threading.current_thread().name))
        return real(self, files)

    monkeypatch.setattr(archiver.Archiver, "_small_job", counted)
    sid = repo.backup(src).snapshot_id
    assert sum(n for n, _ in jobs) == 600
    assert len(jobs) <= 12, jobs  # 600 files, ~2.3 MB: a few 1 MiB batches and one per directory
    assert all(name.startswith("kubekeep-chunk") for _, name in jobs), jobs
    repo.restore(sid, tmp_path / "T")
    assert snapshot_of(tmp_path / "T") == snapshot_of(src)


def test_a_small_file_that_grew_after_its_stat_is_read_whole(repo: Repository, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    grows = src / "grows.log"
    grows.write_bytes(b"first line\n")
    (src / "steady.txt").write_bytes(b"steady\n" * 100)
    real_open = os.open
    extra = os.urandom(SMALL_FILE + 123_457)

    def open_after_growth(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(grows) and grows.stat().st_size < len(extra):
            with open(grows, "ab") as fh:  # written between the walk's stat and the archiver's open
                fh.write(extra)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(archiver.os, "open", open_after_growth)
    result = repo.backup(src)
    monkeypatch.undo()
    assert not result.errors
    repo.restore(result.snapshot_id, tmp_path / "T")
    assert (tmp_path / "T" / "grows.log").read_bytes() == b"first line\n" + extra
    assert (tmp_path / "T" / "steady.txt").read_bytes() == b"steady\n" * 100


def test_backup_progress_is_throttled_and_ends_with_every_byte(tmp_path: Path) -> None:
    repo = make_repo(FilesystemStorage(tmp_path / "repo", create=True))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(30_000 + 10_000 * (i % 3)))
    (src / "big.bin").write_bytes(os.urandom(3 * SMALL_FILE))
    total = sum(p.stat().st_size for p in src.iterdir())
    calls: list[int] = []
    started = time.monotonic()
    repo.backup(src, progress=lambda done, _total, _item: calls.append(done))
    took = time.monotonic() - started
    assert calls[-1] == total
    assert calls == sorted(calls)
    assert len(calls) <= took / PROGRESS_SECONDS + 2, (len(calls), took)


def test_the_walk_waits_for_the_tree_thread_instead_of_queueing_every_directory(
        repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    for d in range(120):
        (src / f"d{d:03d}").mkdir(parents=True)
        (src / f"d{d:03d}" / "f").write_bytes(b"%d" % d)
    first = repo.backup(src).snapshot_id
    queued: list[int] = []
    real_walk, real_tree = archiver.Archiver._walk, archiver.Archiver._save_tree

    def walk(self: archiver.Archiver, directory: str, parent_tree: str | None) -> Any:
        queued.append(self.trees._work_queue.qsize())
        return real_walk(self, directory, parent_tree)

    def slow_tree(self: archiver.Archiver, *args: Any) -> bytes:
        time.sleep(0.002)  # storing trees slower than an incremental walks unchanged files
        return real_tree(self, *args)

    monkeypatch.setattr(archiver, "TREE_BACKLOG", 4, raising=False)
    monkeypatch.setattr(archiver.Archiver, "_walk", walk)
    monkeypatch.setattr(archiver.Archiver, "_save_tree", slow_tree)
    second = repo.backup(src, parent=first)
    monkeypatch.undo()
    assert second.stats.unchanged_files == 120
    # every queued directory holds its entries and its parent tree: the backlog is what memory holds
    assert max(queued) <= 4, max(queued)
    repo.restore(second.snapshot_id, tmp_path / "T")
    assert snapshot_of(tmp_path / "T") == snapshot_of(src)


class _GatedReader:
    """A file object whose first read waits until every gated file has started reading."""

    def __init__(self, fh: Any, barrier: Any) -> None:
        self.fh, self.barrier, self.started = fh, barrier, False

    def readinto(self, buf: Any) -> int:
        if not self.started:
            self.started = True
            self.barrier.wait(timeout=10)
        return int(self.fh.readinto(buf))

    def __enter__(self) -> _GatedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def test_large_files_are_read_and_cut_by_the_workers_side_by_side(repo: Repository, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk's thread opens a large file and hands it over; a worker reads, cuts and stores it, so
    two large files are read at once (the walk read and cut every file itself: one at a time)."""
    import threading

    src = tmp_path / "src"
    src.mkdir()
    data = {name: os.urandom(3 * SMALL_FILE + i) for i, name in enumerate(("a.bin", "b.bin"))}
    for name, content in data.items():
        (src / name).write_bytes(content)
    barrier = threading.Barrier(2)
    readers: list[str] = []

    def gated_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        fh = open(file, *args, **kwargs)  # noqa: SIM115 (returned to the archiver, which closes it)
        if isinstance(file, int):  # a large file, opened by descriptor
            readers.append(threading.current_thread().name)
            return _GatedReader(fh, barrier)
        return fh

    monkeypatch.setattr(archiver, "open", gated_open, raising=False)
    result = repo.backup(src)
    monkeypatch.undo()
    assert not result.errors
    assert not barrier.broken, "the two large files were not read at the same time"
    assert sorted(readers) == sorted(set(readers)) and all(r.startswith("kubekeep-chunk") for r in readers), readers
    repo.restore(result.snapshot_id, tmp_path / "T")
    for name, content in data.items():
        assert (tmp_path / "T" / name).read_bytes() == content


@pytest.mark.parametrize(("size", "named_by"), [(3 * SMALL_FILE, "chunks"), (6 * 2**20, "lists"),
                                               (30 * 2**20, "lists")], ids=["inline", "one-list", "lists"])
def test_a_file_read_by_a_worker_is_named_as_the_same_bytes_as_a_stream(repo: Repository, tmp_path: Path,
                                                                       size: int, named_by: str) -> None:
    """Same chunk boundaries, same chunk lists: a worker reading a whole file (its own block, the chunk at
    a block's end carried to its front) names its content exactly as the walk's block ring does."""
    src = tmp_path / "src"
    src.mkdir()
    content = os.urandom(size)
    (src / "f.bin").write_bytes(content)
    result = repo.backup(src, streams={"f": [content[i:i + 1_000_003] for i in range(0, size, 1_000_003)]})
    doc = repo.load_snapshot(result.snapshot_id)
    entry = next(e for e in repo.load_tree(doc["tree"]) if e["name"] == "f.bin")
    assert entry["content"] == doc["streams"]["f"]
    assert entry["size"] == size and set(entry["content"]) == {"size", named_by}
    if size == 30 * 2**20:  # more chunks than one list holds
        assert len(entry["content"]["lists"]) >= 2


def test_a_file_a_worker_cannot_read_is_left_out_and_not_counted(repo: Repository, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.bin").write_bytes(os.urandom(2 * SMALL_FILE))
    (src / "good.bin").write_bytes(os.urandom(2 * SMALL_FILE))
    bad_ino = (src / "bad.bin").stat().st_ino

    class Failing:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def readinto(self, buf: Any) -> int:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    def failing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        fh = open(file, *args, **kwargs)  # noqa: SIM115 (returned to the archiver, which closes it)
        if isinstance(file, int) and os.fstat(file).st_ino == bad_ino:
            return Failing(fh)
        return fh

    monkeypatch.setattr(archiver, "open", failing_open, raising=False)
    result = repo.backup(src)
    monkeypatch.undo()
    assert result.errors == [f"{src / 'bad.bin'}: read failed: {os.strerror(errno.EIO)}"]
    assert result.stats.files == 1 and result.stats.bytes == 2 * SMALL_FILE
    names = [e["name"] for e in repo.load_tree(repo.load_snapshot(result.snapshot_id)["tree"])]
    assert names == ["good.bin"]


def test_a_huge_file_is_cut_by_the_walk_and_its_blocks_go_to_the_workers(repo: Repository, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Above HUGE_FILE one worker would read a file alone while the other idles: the walk's thread reads and
    cuts it, and each block's chunks go to a worker job of its own (both workers compress it)."""
    src = tmp_path / "src"
    src.mkdir()
    content = os.urandom(9 * 2**20 + 12_345)
    (src / "huge.bin").write_bytes(content)
    monkeypatch.setattr(archiver, "HUGE_FILE", 2**20)
    jobs: list[int] = []
    real = BlobSaver.save_chunks_async

    def counted(self: BlobSaver, chunks: Any) -> Any:
        jobs.append(len(chunks))
        return real(self, chunks)

    monkeypatch.setattr(BlobSaver, "save_chunks_async", counted)
    result = repo.backup(src, streams={"same": [content]})
    monkeypatch.undo()
    assert not result.errors
    assert len(jobs) >= 2 * 3, jobs  # three 4 MiB blocks for the file, as many for the stream
    doc = repo.load_snapshot(result.snapshot_id)
    entry = next(e for e in repo.load_tree(doc["tree"]) if e["name"] == "huge.bin")
    assert entry["content"] == doc["streams"]["same"] and entry["size"] == len(content)
    repo.restore(result.snapshot_id, tmp_path / "T")
    assert (tmp_path / "T" / "huge.bin").read_bytes() == content
