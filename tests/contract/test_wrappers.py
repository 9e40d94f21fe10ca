"""Retry, fault-injection and read-only wrappers around real backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from kubekeep.repo.storage import (
    FaultInjectingStorage,
    FaultPlan,
    ObjectExistsError,
    ObjectNotFoundError,
    ReadOnlyStorage,
    ReadOnlyStorageError,
    RetentionMode,
    RetryingStorage,
    Storage,
    StorageError,
    TransientStorageError,
)
from kubekeep.repo.storage.wrappers import InjectedPermanentError


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _retrying(inner: Storage, clock: FakeClock, **kwargs: object) -> RetryingStorage:
    return RetryingStorage(inner, sleep=clock.sleep, clock=clock, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def test_transient_faults_are_retried_to_success(plain_storage: Storage) -> None:
    clock = FakeClock()
    faulty = FaultInjectingStorage(plain_storage, FaultPlan(
        fail_first={"put": 2, "get": 3, "get_range": 1, "stat": 2, "list": 2, "delete": 1}))
    storage = _retrying(faulty, clock, max_attempts=5)
    storage.put("r/obj", b"payload")
    assert storage.get("r/obj") == b"payload"
    assert storage.get_range("r/obj", 3, 4) == b"load"
    assert storage.stat("r/obj").size == 7
    assert [info.key for info in storage.list("r/")] == ["r/obj"]
    storage.delete("r/obj")
    assert not plain_storage.exists("r/obj")
    assert faulty.injected == {"put": 2, "get": 3, "get_range": 1, "stat": 2, "list": 2, "delete": 1}
    assert storage.retries == 11
    # exponential backoff with full jitter: each wait within its doubling cap
    caps = [0.2 * 2 ** n for n in (0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 0)]
    assert all(0 <= wait <= cap for wait, cap in zip(clock.sleeps, caps, strict=True))


def test_retries_are_bounded(plain_storage: Storage) -> None:
    clock = FakeClock()
    faulty = FaultInjectingStorage(plain_storage, FaultPlan(fail_first={"get": 100}))
    plain_storage.put("b/obj", b"x")
    with pytest.raises(TransientStorageError):
        _retrying(faulty, clock, max_attempts=4).get("b/obj")
    assert faulty.calls["get"] == 4
    # and by elapsed time: no attempt starts after max_elapsed
    clock2 = FakeClock()
    faulty2 = FaultInjectingStorage(plain_storage, FaultPlan(fail_first={"get": 100},
                                                             timeout_seconds=0))
    with pytest.raises(TransientStorageError):
        _retrying(faulty2, clock2, max_attempts=1000, base_delay=1.0, max_delay=1.0,
                  max_elapsed=10.0).get("b/obj")
    assert clock2.now <= 10.0
    assert faulty2.calls["get"] < 1000


def test_permanent_errors_surface_at_once(plain_storage: Storage) -> None:
    clock = FakeClock()
    faulty = FaultInjectingStorage(plain_storage, FaultPlan(permanent=frozenset({"put"})))
    storage = _retrying(faulty, clock)
    with pytest.raises(InjectedPermanentError):
        storage.put("p/obj", b"x")
    assert faulty.calls["put"] == 1 and clock.sleeps == []
    # real permanent errors of the backend, too
    storage = _retrying(plain_storage, clock)
    with pytest.raises(ObjectNotFoundError):
        storage.get("p/missing")
    plain_storage.put("p/there", b"x")
    with pytest.raises(ObjectExistsError):
        storage.put("p/there", b"y")
    assert clock.sleeps == []


def test_lost_put_response_is_recognised(plain_storage: Storage) -> None:
    """The write landed but its response was lost: the retry sees our own bytes and succeeds."""
    clock = FakeClock()
    faulty = FaultInjectingStorage(plain_storage, FaultPlan(fail_first={"put": 1}, fail_after_write=True))
    storage = _retrying(faulty, clock)
    storage.put("lost/obj", b"mine")
    assert plain_storage.get("lost/obj") == b"mine"
    # ...but someone else's bytes under the key are still an ObjectExistsError
    plain_storage.put("lost/other", b"theirs")
    faulty2 = FaultInjectingStorage(plain_storage, FaultPlan(fail_first={"put": 1}))
    with pytest.raises(ObjectExistsError):
        _retrying(faulty2, clock).put("lost/other", b"mine!!")


def test_timeouts_wait_then_fail_transiently(plain_storage: Storage) -> None:
    clock = FakeClock()
    faulty = FaultInjectingStorage(plain_storage, FaultPlan(timeout_rate=1.0, timeout_seconds=30.0),
                                   sleep=clock.sleep)
    plain_storage.put("t/obj", b"x")
    with pytest.raises(TransientStorageError, match="timeout"):
        faulty.get("t/obj")
    assert clock.sleeps == [30.0]


def test_fault_injection_is_deterministic(plain_storage: Storage) -> None:
    plain_storage.put("d/obj", b"0123456789" * 10)

    def run(seed: int) -> list[str]:
        faulty = FaultInjectingStorage(plain_storage, FaultPlan(transient_rate=0.3, corrupt_rate=0.3,
                                                                truncate_rate=0.2), seed=seed)
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(faulty.get("d/obj").hex())
            except TransientStorageError:
                outcomes.append("transient")
        return outcomes

    first = run(42)
    assert first == run(42)
    assert first != run(43)
    assert "transient" in first
    damaged = [o for o in first if o not in ("transient", (b"0123456789" * 10).hex())]
    assert damaged, "corruption/truncation never happened"


def test_read_only_refuses_writes(plain_storage: Storage) -> None:
    plain_storage.put("ro/obj", b"x")
    storage = ReadOnlyStorage(plain_storage)
    assert storage.get("ro/obj") == b"x"
    assert storage.stat("ro/obj").size == 1
    assert [info.key for info in storage.list("ro/")] == ["ro/obj"]
    until = datetime.now(UTC) + timedelta(minutes=1)
    for call in (lambda: storage.put("ro/new", b"y"), lambda: storage.delete("ro/obj"),
                 lambda: storage.set_retention("ro/obj", RetentionMode.COMPLIANCE, until)):
        with pytest.raises(ReadOnlyStorageError, match="read-only"):
            call()
    assert not plain_storage.exists("ro/new")
    assert plain_storage.exists("ro/obj")
    assert issubclass(ReadOnlyStorageError, StorageError)
    assert not issubclass(ReadOnlyStorageError, TransientStorageError)
    # a retry wrapper does not retry it
    clock = FakeClock()
    with pytest.raises(ReadOnlyStorageError):
        _retrying(storage, clock).put("ro/new", b"y")
    assert clock.sleeps == []


def test_wrappers_report_inner_retention_support(plain_storage: Storage) -> None:
    stacked = RetryingStorage(FaultInjectingStorage(ReadOnlyStorage(plain_storage)))
    assert stacked.supports_retention == plain_storage.supports_retention
    assert stacked.url.startswith(plain_storage.url)


def test_block_caching_reader_serves_ranges_exactly_and_saves_requests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import random
    from concurrent.futures import ThreadPoolExecutor

    from kubekeep.repo.storage import FilesystemStorage
    from kubekeep.repo.storage.wrappers import BlockCachingReader

    inner = FilesystemStorage(tmp_path)
    data = random.Random(7).randbytes(3_000_000)
    inner.put("data/ab/pack", data)
    reader = BlockCachingReader(inner, block_size=256 * 1024, max_blocks=4)
    rng = random.Random(11)
    ranges = [(o, rng.randrange(0, 600_000)) for o in (rng.randrange(0, 3_100_000) for _ in range(300))]
    ranges += [(0, 0), (2_999_999, 10), (3_000_000, 5), (0, 3_000_000)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: reader.get_range("data/ab/pack", *r), ranges))
    assert got == [data[o:o + n] for o, n in ranges]
    # neighbouring small reads share blocks: far fewer requests than reads
    reader.fetches = 0
    small = [(o, 4096) for o in range(0, 1_000_000, 8192)]
    assert [reader.get_range("data/ab/pack", *r) for r in small] == [data[o:o + n] for o, n in small]
    assert reader.fetches <= 4 + 1
