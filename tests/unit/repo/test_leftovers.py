"""Issue 14 item 8: crash leftovers never block later runs.

Locks record host, pid, process start time and operation start; a lock whose process is gone on this
host is stale and removed; `repo unlock [--remove-all]`; prune reclaims old temp files and the packs of
killed backups, also while other backups run (age rule), and never a pack a running backup may use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.repo import repository_lock
from kubekeep.repo.format import DATA_PREFIX, INDEX_PREFIX, SNAPSHOTS_PREFIX, pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.repository_lock import read_locks
from kubekeep.repo.storage import FilesystemStorage, ObjectInfo

from .conftest import PASSWORD, make_repo, open_repo

ROOT = Path(__file__).resolve().parents[3]
TWO_HOURS_AGO = time.time() - 7200


def _child(storage: FilesystemStorage, body: str) -> subprocess.Popen[bytes]:
    """A separate process working on the repository (killed with SIGKILL by the test)."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from kubekeep.repo.repository import Repository
        from kubekeep.repo.storage import FilesystemStorage
        repo = Repository.open(FilesystemStorage({str(storage.root)!r}), passphrase={PASSWORD!r})
    """) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def _kill_a_lock_holder(storage: FilesystemStorage, kind: str) -> None:
    """Leave the lock of a process killed with SIGKILL (nothing released it)."""
    proc = _child(storage, f"""
        repo.lock({kind!r})
        print("locked", flush=True)
        time.sleep(3600)
    """)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    finally:
        _kill(proc)


def _packs(storage: FilesystemStorage) -> set[str]:
    return {i.key for i in storage.list(DATA_PREFIX)}


def test_a_lock_records_who_holds_it(repo: Repository) -> None:
    with repo.lock("backup"):
        [lock], bad = read_locks(repo.storage, repo.envelope)
    assert not bad
    assert lock.pid == os.getpid() and lock.host and lock.kind == "backup"
    assert lock.started <= lock.created <= lock.expires
    if sys.platform.startswith("linux"):
        assert lock.pid_start is not None and lock.boot_id
    assert lock.stale() is None


def test_a_killed_backup_leaves_nothing_that_blocks_or_stays(storage: FilesystemStorage) -> None:
    make_repo(storage).close()
    before = _packs(storage)
    proc = _child(storage, """
        def stream():
            yield os.urandom(1_000_000)
            time.sleep(3600)
        repo.backup_stream("db", stream())
    """)
    try:
        _wait_for(lambda: len(_packs(storage) - before) >= 3 and any(storage.list("locks/")))
    finally:
        _kill(proc)
    orphans = _packs(storage) - before
    repo = open_repo(storage)
    [lock], _ = read_locks(repo.storage, repo.envelope)
    assert lock.stale() is not None and "gone" in lock.stale()  # type: ignore[operator]
    start = time.monotonic()
    result = repo.prune([], wait_timeout=60, poll=0.1)
    assert time.monotonic() - start < 20  # no waiting for the dead backup's lock to expire
    assert result.deferred_packs == 0
    assert not orphans & _packs(storage), "the killed backup's packs were reclaimed"
    assert result.packs_deleted >= len(orphans)
    assert not list(storage.list("locks/"))
    assert repo.check(read_data=True).ok


def test_a_killed_prune_does_not_refuse_the_next(storage: FilesystemStorage) -> None:
    make_repo(storage).close()
    _kill_a_lock_holder(storage, "prune")
    open_repo(storage).prune([], wait_timeout=5, poll=0.1)  # no LockedError


def test_a_lock_of_another_host_is_trusted_until_it_expires(repo: Repository,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_lock.socket, "gethostname", lambda: "other-host")
    lock = repo.lock("backup")
    monkeypatch.undo()
    lock._stop.set()  # the other host does not refresh it here
    [info], _ = read_locks(repo.storage, repo.envelope)
    assert info.host == "other-host" and info.stale() is None
    result = repo.prune([], wait_timeout=0.3, poll=0.1)
    assert any("1 other operation(s) still running" in m for m in result.messages), result.messages
    assert any(repo.storage.list("locks/"))


def test_unlock_removes_stale_locks_and_remove_all_removes_every_lock(
        storage: FilesystemStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(storage)
    _kill_a_lock_holder(storage, "backup")
    held = repo.lock("backup")  # a live lock of this process
    monkeypatch.setenv("KUBEKEEP_PASSWORD", PASSWORD)
    runner = CliRunner()
    r = runner.invoke(repo_app, ["unlock", "--repo", str(storage.root)])
    assert r.exit_code == 0, r.output
    assert "removed 1 stale lock" in r.output
    [left], _ = read_locks(storage, repo.envelope)
    assert left.pid == os.getpid()
    r = runner.invoke(repo_app, ["unlock", "--repo", str(storage.root), "--remove-all"])
    assert r.exit_code == 0 and "removed 1 lock" in r.output, r.output
    assert not list(storage.list("locks/"))
    held.release()


def test_prune_reclaims_old_temp_files_only(repo: Repository, storage: FilesystemStorage) -> None:
    repo.backup_stream("s", [b"x" * 100_000])
    pack_dir = storage.root / next(iter(_packs(storage))).rsplit("/", 1)[0]
    old = pack_dir / ".tmp-deadbeef.0123456789abcdef"
    old.write_bytes(b"o" * 5000)
    os.utime(old, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    fresh = storage.root / INDEX_PREFIX / ".tmp-cafe.fedcba9876543210"
    fresh.write_bytes(b"f" * 10)
    result = repo.prune([], wait_timeout=0, leftover_age=3600)
    assert not old.exists() and fresh.exists()
    assert result.temp_files_removed == 1 and result.temp_bytes_freed == 5000
    assert repo.check().ok


@pytest.fixture
def live_backup(storage: FilesystemStorage) -> Iterator[dict[str, object]]:
    """A backup running in this process (its lock is live), blocked in the middle of its stream."""
    release = threading.Event()
    state: dict[str, object] = {"release": release}

    def stream() -> Iterator[bytes]:
        yield os.urandom(200_000)
        state["streaming"] = True
        release.wait(60)
        yield b"end"

    def run() -> None:
        state["result"] = open_repo(storage).backup_stream("live", stream())

    thread = threading.Thread(target=run)
    state["thread"] = thread
    yield state
    release.set()
    thread.join(60)


def _orphan_old_backup(repo: Repository, storage: FilesystemStorage) -> set[str]:
    """Packs of a backup that never finished: no index names them and no snapshot needs them."""
    before = _packs(storage)
    indexes = {i.key for i in storage.list(INDEX_PREFIX)}
    sid = repo.backup_stream("lost", [os.urandom(300_000)]).snapshot_id
    storage.delete(SNAPSHOTS_PREFIX + sid)
    for key in {i.key for i in storage.list(INDEX_PREFIX)} - indexes:
        storage.delete(key)
    orphans = _packs(storage) - before
    assert len(orphans) >= 3
    return orphans


def _age(storage: FilesystemStorage, keys: set[str], when: float = TWO_HOURS_AGO) -> None:
    for key in keys:
        os.utime(storage.root / key, (when, when))


def test_old_orphans_are_reclaimed_while_another_backup_runs(
        repo: Repository, storage: FilesystemStorage, live_backup: dict[str, object]) -> None:
    old_orphans = _orphan_old_backup(repo, storage)
    _age(storage, old_orphans)
    new_orphans = _orphan_old_backup(repo, storage)  # written minutes (here: now) before the live backup
    live_backup["thread"].start()  # type: ignore[attr-defined]
    _wait_for(lambda: live_backup.get("streaming") is True)
    # the live backup's workers may still be uploading packs: count those prune saw when it listed
    listed: set[str] = set()
    list_packs = repo.list_packs

    def recording_list_packs() -> dict[bytes, ObjectInfo]:
        packs = list_packs()
        listed.update(pack_key(p) for p in packs)
        return packs

    repo.list_packs = recording_list_packs  # type: ignore[method-assign]
    result = repo.prune([], wait_timeout=0.2, poll=0.05, leftover_age=3600)
    live_packs = listed - old_orphans - new_orphans
    assert not old_orphans & _packs(storage), "old unindexed packs were reclaimed"
    assert new_orphans <= _packs(storage), "packs younger than the age threshold were kept"
    assert live_packs <= _packs(storage)
    assert result.deferred_packs == len(new_orphans) + len(live_packs)  # the live backup's unindexed packs too
    live_backup["release"].set()  # type: ignore[attr-defined]
    live_backup["thread"].join(60)  # type: ignore[attr-defined]
    sid = live_backup["result"].snapshot_id  # type: ignore[attr-defined]
    fresh = open_repo(storage)
    assert fresh.check(read_data=True).ok
    assert b"".join(fresh.read_stream(sid, "live"))[-3:] == b"end"


def test_packs_a_running_backup_may_use_are_never_reclaimed(
        repo: Repository, storage: FilesystemStorage, live_backup: dict[str, object]) -> None:
    doomed = repo.backup_stream("doomed", [os.urandom(300_000)]).snapshot_id
    doomed_packs = set(_packs(storage))
    live_backup["thread"].start()  # type: ignore[attr-defined]
    _wait_for(lambda: live_backup.get("streaming") is True)  # it loaded an index naming doomed_packs
    first = repo.prune([doomed], wait_timeout=0.2, poll=0.05, leftover_age=3600)
    assert first.deferred_packs >= len(doomed_packs)
    assert doomed_packs <= _packs(storage)
    assert any(storage.list("prune/")), "the deindexed packs are recorded"
    _age(storage, doomed_packs)  # even when old, they were in an index the running backup loaded
    second = repo.prune([], wait_timeout=0.2, poll=0.05, leftover_age=3600)
    assert doomed_packs <= _packs(storage) and second.packs_deleted == 0
    live_backup["release"].set()  # type: ignore[attr-defined]
    live_backup["thread"].join(60)  # type: ignore[attr-defined]
    third = repo.prune([], wait_timeout=5, poll=0.05, leftover_age=3600)
    assert not doomed_packs & _packs(storage)
    assert third.deferred_packs == 0 and not list(storage.list("prune/"))
    assert open_repo(storage).check(read_data=True).ok
