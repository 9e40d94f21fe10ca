"""The storage contract (kubekeep/repo/storage/base.py), checked on every backend."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from kubekeep.repo.storage import (
    InvalidKeyError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    RetentionMode,
    RetentionNotSupportedError,
    Storage,
)


def _soon(seconds: int) -> datetime:
    # S3 keeps retain-until dates to the second
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


# -- put / get round trips -----------------------------------------------------------------


def test_binary_round_trip(storage: Storage) -> None:
    data = bytes(range(256)) * 64 + os.urandom(4096)
    storage.put("bin/all-bytes", data)
    assert storage.get("bin/all-bytes") == data


def test_empty_object(storage: Storage) -> None:
    storage.put("bin/empty", b"")
    assert storage.get("bin/empty") == b""
    assert storage.stat("bin/empty").size == 0
    assert storage.get_range("bin/empty", 0, 10) == b""


def test_put_accepts_bytearray_and_memoryview(storage: Storage) -> None:
    storage.put("buf/bytearray", bytearray(b"abc"))
    storage.put("buf/memoryview", memoryview(b"0123456789")[2:5])
    assert storage.get("buf/bytearray") == b"abc"
    assert storage.get("buf/memoryview") == b"234"


def test_put_never_overwrites(storage: Storage) -> None:
    storage.put("once/key", b"first")
    with pytest.raises(ObjectExistsError) as info:
        storage.put("once/key", b"second, longer")
    assert info.value.key == "once/key"
    assert storage.get("once/key") == b"first"
    assert storage.stat("once/key").size == len(b"first")


def test_racing_writers_exactly_one_wins(storage: Storage) -> None:
    for round_number in range(6):
        key = f"race/{round_number}"
        barrier = threading.Barrier(2)
        outcomes: dict[int, str] = {}

        def write(writer: int, key: str = key, barrier: threading.Barrier = barrier,
                  outcomes: dict[int, str] = outcomes) -> None:
            payload = f"writer-{writer}-".encode() * 5000
            barrier.wait()
            try:
                storage.put(key, payload)
                outcomes[writer] = "won"
            except ObjectExistsError:
                outcomes[writer] = "exists"

        threads = [threading.Thread(target=write, args=(writer,)) for writer in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [writer for writer, outcome in outcomes.items() if outcome == "won"]
        assert sorted(outcomes.values()) == ["exists", "won"], outcomes
        assert storage.get(key) == f"writer-{winners[0]}-".encode() * 5000


def test_large_object(storage: Storage) -> None:
    # Above the test multipart threshold (6 MiB, 5 MiB parts): three parts on S3.
    data = os.urandom(12 * 1024 * 1024 + 123)
    storage.put("large/blob", data)
    assert storage.stat("large/blob").size == len(data)
    assert storage.get("large/blob") == data
    boundary = 5 * 1024 * 1024
    assert storage.get_range("large/blob", boundary - 10, 20) == data[boundary - 10:boundary + 10]
    with pytest.raises(ObjectExistsError):
        storage.put("large/blob", data)


# -- reads ------------------------------------------------------------------------------------


def test_missing_key(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError):
        storage.get("missing/key")
    with pytest.raises(ObjectNotFoundError):
        storage.get_range("missing/key", 0, 10)
    with pytest.raises(ObjectNotFoundError):
        storage.get_range("missing/key", 0, 0)
    with pytest.raises(ObjectNotFoundError):
        storage.stat("missing/key")
    assert not storage.exists("missing/key")


def test_get_range(storage: Storage) -> None:
    data = bytes(range(100))
    storage.put("range/obj", data)
    assert storage.get_range("range/obj", 0, 10) == data[:10]
    assert storage.get_range("range/obj", 42, 8) == data[42:50]
    assert storage.get_range("range/obj", 90, 10) == data[90:]
    assert storage.get_range("range/obj", 95, 50) == data[95:]  # partly past the end
    assert storage.get_range("range/obj", 100, 5) == b""  # at the end
    assert storage.get_range("range/obj", 500, 5) == b""  # past the end
    assert storage.get_range("range/obj", 10, 0) == b""
    with pytest.raises(ValueError):
        storage.get_range("range/obj", -1, 5)


def test_get_range_into_reads_what_get_range_returns(storage: Storage) -> None:
    data = bytes(range(100))
    storage.put("into/obj", data)
    buffer = bytearray(b"\xee" * 64)
    with memoryview(buffer) as view:
        assert storage.get_range_into("into/obj", 42, view[:8]) == 8
        assert buffer[:8] == data[42:50] and buffer[8:] == b"\xee" * 56
        assert storage.get_range_into("into/obj", 90, view[:50]) == 10  # partly past the end
        assert buffer[:10] == data[90:]
        assert storage.get_range_into("into/obj", 100, view[:5]) == 0  # at the end
        assert storage.get_range_into("into/obj", 0, view) == 64
        assert buffer == data[:64]
        with pytest.raises(ObjectNotFoundError):
            storage.get_range_into("missing/key", 0, view[:10])
        with pytest.raises(ValueError):
            storage.get_range_into("into/obj", -1, view[:5])


def test_stat(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    storage.put("stat/obj", b"x" * 1234)
    info = storage.stat("stat/obj")
    assert info.key == "stat/obj"
    assert info.size == 1234
    assert info.modified is not None and info.modified.tzinfo is not None
    assert before < info.modified < datetime.now(UTC) + timedelta(minutes=5)
    assert info.retain_until is None
    assert storage.exists("stat/obj")


# -- list -------------------------------------------------------------------------------------


def test_list_by_prefix(storage: Storage) -> None:
    keys = ["a/1", "a/2", "a/sub/3", "ab/4", "abc", "b/5", "b/a/6"]
    for key in keys:
        storage.put(key, key.encode())
    assert _keys(storage, "") == sorted(keys)
    assert _keys(storage, "a") == ["a/1", "a/2", "a/sub/3", "ab/4", "abc"]  # a plain string prefix
    assert _keys(storage, "a/") == ["a/1", "a/2", "a/sub/3"]
    assert _keys(storage, "a/s") == ["a/sub/3"]
    assert _keys(storage, "b/a/6") == ["b/a/6"]
    assert _keys(storage, "nothing/") == []
    assert {info.key: info.size for info in storage.list("b/")} == {"b/5": 3, "b/a/6": 5}


def test_list_is_lazy(storage: Storage) -> None:
    storage.put("lazy/1", b"1")
    listing = storage.list("lazy/")
    assert iter(listing) is listing  # an iterator, not a materialized list
    assert [info.key for info in listing] == ["lazy/1"]


def test_list_many_objects(storage: Storage) -> None:
    # more than one S3 ListObjectsV2 page (1000 keys)
    count = 1100
    keys = [f"many/{index:05d}" for index in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: storage.put(key, b"."), keys))
    storage.put("manyother/x", b".")
    listed = _keys(storage, "many/")
    assert listed == keys
    assert len(set(listed)) == count


def _keys(storage: Storage, prefix: str) -> list[str]:
    return sorted(info.key for info in storage.list(prefix))


# -- delete -----------------------------------------------------------------------------------


def test_delete(storage: Storage) -> None:
    storage.put("del/obj", b"data")
    storage.put("del/other", b"keep")
    storage.delete("del/obj")
    assert not storage.exists("del/obj")
    with pytest.raises(ObjectNotFoundError):
        storage.get("del/obj")
    assert _keys(storage, "del/") == ["del/other"]
    storage.delete("del/obj")  # idempotent
    storage.delete("del/never-existed")


def test_delete_then_put_again(storage: Storage) -> None:
    # Deleting really removes the object (no delete marker hiding data in a
    # versioned bucket), so the key is free again.
    storage.put("again/obj", b"one")
    storage.delete("again/obj")
    storage.put("again/obj", b"two")
    assert storage.get("again/obj") == b"two"


# -- keys -------------------------------------------------------------------------------------

INVALID_KEYS = ["", "/abs", "a//b", "a/", "../x", "a/../b", "./a", "a/./b", "..", ".",
                "sp ace", "back\\slash", "uml\u00e4ut", "new\nline", "q?x", "star*"]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    for call in (lambda: storage.put(key, b"x"), lambda: storage.get(key),
                 lambda: storage.get_range(key, 0, 1), lambda: storage.stat(key),
                 lambda: storage.delete(key)):
        with pytest.raises(InvalidKeyError):
            call()
    assert isinstance(InvalidKeyError("x"), ValueError)


def test_valid_unusual_keys(storage: Storage) -> None:
    for key in ["A.b-c_d/0", "..dots/x..y", "-dash/_under", "deep/a/b/c/d/e/f/g"]:
        storage.put(key, key.encode())
        assert storage.get(key) == key.encode()


# -- retention --------------------------------------------------------------------------------


def test_retention_unsupported(storage: Storage) -> None:
    if storage.supports_retention:
        pytest.skip("this backend locks objects")
    with pytest.raises(RetentionNotSupportedError):
        storage.put("ret/obj", b"x", retention=(RetentionMode.COMPLIANCE, _soon(60)))
    assert not storage.exists("ret/obj")
    storage.put("ret/obj", b"x")
    with pytest.raises(RetentionNotSupportedError):
        storage.set_retention("ret/obj", RetentionMode.COMPLIANCE, _soon(60))


def test_retention_only_extends(storage: Storage) -> None:
    if not storage.supports_retention:
        pytest.skip("this backend cannot lock objects")
    first = _soon(60)
    storage.put("ret/obj", b"locked", retention=(RetentionMode.COMPLIANCE, first))
    assert storage.stat("ret/obj").retain_until == first
    # earlier: a no-op returning the date in force
    assert storage.set_retention("ret/obj", RetentionMode.COMPLIANCE, first - timedelta(seconds=30)) == first
    assert storage.stat("ret/obj").retain_until == first
    later = first + timedelta(seconds=120)
    assert storage.set_retention("ret/obj", RetentionMode.COMPLIANCE, later) == later
    assert storage.stat("ret/obj").retain_until == later
    # and a request for GOVERNANCE never weakens COMPLIANCE
    even_later = later + timedelta(seconds=60)
    assert storage.set_retention("ret/obj", RetentionMode.GOVERNANCE, even_later) == even_later


def test_locked_object_cannot_be_deleted(storage: Storage) -> None:
    if not storage.supports_retention:
        pytest.skip("this backend cannot lock objects")
    until = _soon(60)
    storage.put("ret/locked", b"keep me", retention=(RetentionMode.COMPLIANCE, until))
    with pytest.raises(ObjectLockedError) as info:
        storage.delete("ret/locked")
    assert info.value.retain_until == until
    assert storage.get("ret/locked") == b"keep me"
    assert [i.key for i in storage.list("ret/")] == ["ret/locked"]
    with pytest.raises(ObjectExistsError):
        storage.put("ret/locked", b"replacement")
    assert storage.get("ret/locked") == b"keep me"


def test_retention_date_must_be_aware(storage: Storage) -> None:
    if not storage.supports_retention:
        pytest.skip("this backend cannot lock objects")
    with pytest.raises(ValueError):
        storage.put("ret/naive", b"x", retention=(RetentionMode.COMPLIANCE, datetime.now() + timedelta(1)))


# -- the location itself, leftovers, versions ---------------------------------------------------


def test_location_exists_and_leftovers_of_nobody(storage: Storage) -> None:
    assert storage.location_exists()
    storage.put("left/obj", b"kept")
    count, _ = storage.remove_leftovers(datetime.now(UTC) - timedelta(hours=1))
    assert count == 0
    assert storage.get("left/obj") == b"kept"


def test_versions_are_listed_only_where_they_exist(storage: Storage) -> None:
    storage.put("ver/a", b"1")
    if not storage.versioned():
        return
    [version] = [v for v in storage.list_versions("ver/") if v.key == "ver/a"]
    assert version.latest and not version.delete_marker and version.size == 1
    assert storage.get_version("ver/a", version.version_id) == b"1"
    storage.delete("ver/a")  # Kubekeep's delete leaves no version and no delete marker behind
    assert [v for v in storage.list_versions("ver/") if v.key == "ver/a"] == []
