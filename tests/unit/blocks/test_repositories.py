"""The pool behind "one open repository per run": shared by leases of one location and key, opened once, closed
by the last lease; other keys and other locations never share (filesystem locations, no servers)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from blocks import EncryptionKey, LocationProfile, keep_open, repository
from blocks.repositories import POOL
from kubekeep.repo.errors import WrongKeyError


@pytest.fixture
def location(tmp_path: Path) -> LocationProfile:
    loc = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    EncryptionKey(passphrase="pw", cheap_kdf=True).open_repository(loc.storage(), create=True).close()
    return loc


def test_leases_inside_a_hold_share_one_repository_closed_when_the_hold_ends(location: LocationProfile) -> None:
    key = EncryptionKey(passphrase="pw", cheap_kdf=True)
    with keep_open(location, key):
        assert POOL.open_count() == 0  # lazy: the first task opens it
        with repository(location, key) as first:
            pass
        assert POOL.open_count() == 1  # the run still holds it
        same_settings = EncryptionKey(passphrase="pw", cheap_kdf=True)  # a block loaded again by another task
        with repository(LocationProfile(kind="filesystem", path=location.path), same_settings) as second:
            assert second is first
    assert POOL.open_count() == 0


def test_without_a_hold_each_lease_opens_and_closes(location: LocationProfile) -> None:
    key = EncryptionKey(passphrase="pw", cheap_kdf=True)
    with repository(location, key) as first:
        assert POOL.open_count() == 1
    assert POOL.open_count() == 0
    with repository(location, key) as again:
        assert again is not first


def test_another_passphrase_never_gets_the_open_repository(location: LocationProfile) -> None:
    with keep_open(location, EncryptionKey(passphrase="pw", cheap_kdf=True)), \
            repository(location, EncryptionKey(passphrase="pw", cheap_kdf=True)), \
            pytest.raises(WrongKeyError), repository(location, EncryptionKey(passphrase="other", cheap_kdf=True)):
        pass
    assert POOL.open_count() == 0


def test_tasks_starting_at_once_open_the_repository_once(location: LocationProfile) -> None:
    key = EncryptionKey(passphrase="pw", cheap_kdf=True)
    seen: list[object] = []
    start = threading.Barrier(6)

    def task() -> None:
        start.wait()
        with repository(location, key) as repo:
            seen.append(repo)
            start.wait()  # every lease is held at once

    with keep_open(location, key):
        threads = [threading.Thread(target=task) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(seen) == 6 and len({id(r) for r in seen}) == 1
    assert POOL.open_count() == 0
