"""One open Repository shared by the concurrent tasks (threads) of one run.

backup(), backup_stream(), restore(), restore_stream(), read_stream(), write_snapshot(),
load_snapshot(), snapshots(), stats() and index reloads may run at the same time on one instance
(docs/repository-api.md, "One open repository, many threads").
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubekeep.repo.repository import Repository

from .conftest import snapshot_of, write_tree


def _blocking_stream(first: bytes, gate: threading.Event, started: threading.Event, rest: bytes) -> Iterator[bytes]:
    yield first
    started.set()
    assert gate.wait(30), "the test never released the stream"
    yield rest


def test_a_backup_that_ends_after_another_backup_reloaded_the_index_is_readable(repo: Repository, source: Path,
                                                                                 tmp_path: Path) -> None:
    """Backup A loads the index, backup B reloads it and finishes, then A finishes: both snapshots
    must be readable from the same instance without reopening it."""
    first, rest = os.urandom(200_000), os.urandom(200_000)
    gate, started = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(repo.backup_stream, "a", _blocking_stream(first, gate, started, rest))
        assert started.wait(30)
        b = repo.backup(source).snapshot_id  # reloads the index while A is running
        gate.set()
        a_id = a.result().snapshot_id
    assert b"".join(repo.read_stream(a_id, "a")) == first + rest
    repo.restore(b, tmp_path / "b")
    assert snapshot_of(tmp_path / "b") == snapshot_of(source)
    assert repo.check(read_data=True).ok


def test_a_backup_dedups_only_against_what_it_read_after_its_lock(repo: Repository) -> None:
    """Backup B indexes its packs while backup A (same instance) runs: A must not deduplicate against
    them (prune's protocol assumes a backup uses only the index it read after taking its lock)."""
    shared = os.urandom(300_000)
    gate_a, started_a, gate_b, started_b = (threading.Event() for _ in range(4))
    with ThreadPoolExecutor(2) as pool:
        b = pool.submit(repo.backup_stream, "b", _blocking_stream(shared[:100_000], gate_b, started_b,
                                                                   shared[100_000:]))
        assert started_b.wait(30)  # B has read the index
        a = pool.submit(repo.backup_stream, "a", _blocking_stream(b"", gate_a, started_a, shared))
        assert started_a.wait(30)  # A has read the index: B's packs are not in it yet
        gate_b.set()
        b.result()  # B's index objects are written (and added to the index readers share)
        gate_a.set()
        stats = a.result().stats
    assert stats.new_chunks == stats.chunks > 10  # no chunk taken from B's packs
    assert repo.check(read_data=True).ok
    # a backup that starts now reads B's index objects and stores nothing new
    again = repo.backup_stream("c", [shared]).stats
    assert again.new_chunks == 0 and again.chunks == stats.chunks


def test_concurrent_backups_restores_and_snapshot_writes_on_one_instance(repo: Repository,
                                                                        tmp_path: Path) -> None:
    sources = []
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        write_tree(src, seed=10 + i, files=10)
        sources.append(src)
    base = repo.backup(sources[0]).snapshot_id
    rng = random.Random(7)
    streams = {f"s{i}": rng.randbytes(150_000 + 20_000 * i) for i in range(3)}
    errors: list[BaseException] = []
    written: dict[str, str] = {}  # snapshot id -> what it holds
    lock = threading.Lock()

    def backup_tree(i: int) -> None:
        sid = repo.backup(sources[i], parent=base if i == 0 else None).snapshot_id
        with lock:
            written[sid] = f"tree{i}"

    def backup_stream(name: str) -> None:
        sid = repo.backup_stream(name, [streams[name][:70_000], streams[name][70_000:]]).snapshot_id
        with lock:
            written[sid] = name

    def restore_base(n: int) -> None:
        out = tmp_path / f"restore-base-{n}"
        repo.restore(base, out)
        assert snapshot_of(out) == snapshot_of(sources[0])

    def copy_snapshot() -> None:
        doc = dict(repo.load_snapshot(base))
        doc["id"] = os.urandom(32).hex()
        doc["tags"] = ["copy"]
        repo.write_snapshot(doc)
        with lock:
            written[doc["id"]] = "tree0"

    def reload_index() -> None:
        for _ in range(5):
            repo.load_index(reload=True)

    def list_and_count() -> None:
        for _ in range(3):
            assert base in {i.id for i in repo.snapshots()}
            assert repo.stats().snapshots >= 1

    jobs = ([lambda i=i: backup_tree(i) for i in range(3)] + [lambda n=n: backup_stream(n) for n in streams]
            + [lambda n=n: restore_base(n) for n in range(3)]
            + [copy_snapshot, copy_snapshot, reload_index, list_and_count])
    rng.shuffle(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(job: object) -> None:
        barrier.wait(30)
        try:
            job()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(written) == 3 + 3 + 2
    # every snapshot written by any thread reads back from this same instance, without a reopen
    for sid, what in written.items():
        if what.startswith("tree"):
            out = tmp_path / f"out-{sid[:8]}"
            repo.restore(sid, out)
            assert snapshot_of(out) == snapshot_of(sources[int(what[4:])])
        else:
            assert b"".join(repo.read_stream(sid, what)) == streams[what]
            target = tmp_path / f"stream-{sid[:8]}"
            assert repo.restore_stream(sid, what, target) == len(streams[what])
            assert target.read_bytes() == streams[what]
    result = repo.check(read_data=True)
    assert result.ok, result.errors
    assert not result.warnings, result.warnings
