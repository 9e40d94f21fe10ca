"""Behaviour layered around any Storage: retries, fault injection, read-only access.

Each wrapper is itself a Storage, so they stack:
``RetryingStorage(FaultInjectingStorage(FilesystemStorage(tmp), ...))`` is how
the tests prove that retries restore correctness under faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from .base import (
    DeadlineExceededError,
    ObjectExistsError,
    ObjectInfo,
    ObjectVersion,
    Retention,
    RetentionMode,
    Storage,
    StorageError,
    TransientStorageError,
)

T = TypeVar("T")

OPERATIONS = ("put", "get", "get_range", "list", "stat", "delete", "set_retention")


class _Wrapper(Storage):
    """Forwards everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url

    @property
    def supports_retention(self) -> bool:
        return self.inner.supports_retention

    @supports_retention.setter
    def supports_retention(self, value: bool) -> None:
        raise AttributeError("supports_retention is a property of the wrapped storage")

    @property
    def remote(self) -> bool:
        return self.inner.remote

    @remote.setter
    def remote(self, value: bool) -> None:
        raise AttributeError("remote is a property of the wrapped storage")

    @property
    def missing_hint(self) -> str:
        return self.inner.missing_hint

    @missing_hint.setter
    def missing_hint(self, value: str) -> None:
        raise AttributeError("missing_hint is a property of the wrapped storage")

    def location_exists(self) -> bool:
        return self.inner.location_exists()

    def create_location(self, *, object_lock: bool = False) -> None:
        self.inner.create_location(object_lock=object_lock)

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        return self.inner.remove_leftovers(older_than)

    def versioned(self) -> bool:
        return self.inner.versioned()

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        return self.inner.list_versions(prefix)

    def get_version(self, key: str, version_id: str) -> bytes:
        return self.inner.get_version(key, version_id)

    def version_retained_until(self, key: str, version_id: str) -> datetime | None:
        return self.inner.version_retained_until(key, version_id)

    def delete_version(self, key: str, version_id: str) -> None:
        self.inner.delete_version(key, version_id)

    def restore_version(self, key: str, version_id: str) -> None:
        self.inner.restore_version(key, version_id)

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        self.inner.put(key, data, retention=retention)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    @property
    def reads_into(self) -> bool:  # type: ignore[override]
        """Forwarded; a wrapper that changes what get_range returns sets it False (reads go through it)."""
        return self.inner.reads_into

    def get_range_into(self, key: str, offset: int, buffer: memoryview) -> int:
        return self.inner.get_range_into(key, offset, buffer)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        return self.inner.set_retention(key, mode, retain_until)

    def close(self) -> None:
        self.inner.close()


# -- retries ------------------------------------------------------------------------------


class RetryingStorage(_Wrapper):
    """Retries TransientStorageError with exponential backoff and full jitter.

    Permanent errors surface at once. Attempts are bounded by ``max_attempts``
    and by ``max_elapsed`` seconds (no new attempt starts after that).

    A put whose earlier attempt failed transiently may have reached the store
    anyway (the response was lost); when a retry then meets ObjectExistsError
    and the stored bytes equal ours, the put counts as done.

    ``list`` is retried only until its first object is yielded: restarting a
    half-consumed listing would repeat objects.
    """

    def __init__(self, inner: Storage, *, max_attempts: int = 5, base_delay: float = 0.2,
                 max_delay: float = 10.0, max_elapsed: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        super().__init__(inner)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_elapsed = max_elapsed
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        #: attempts that failed transiently and were retried, for tests and metrics
        self.retries = 0

    def _delay(self, attempt: int) -> float:
        with self._rng_lock:
            return self._rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))

    def _call(self, fn: Callable[[], T]) -> T:
        start = self._clock()
        attempt = 0
        while True:
            try:
                return fn()
            except DeadlineExceededError:
                raise  # the backend already spent the request's whole deadline
            except TransientStorageError:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise
                delay = self._delay(attempt - 1)
                if self._clock() - start + delay > self.max_elapsed:
                    raise
                self.retries += 1
                self._sleep(delay)

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        failed_before = False

        def attempt() -> None:
            nonlocal failed_before
            try:
                self.inner.put(key, data, retention=retention)
            except ObjectExistsError:
                if failed_before and self._stored_equals(key, data):
                    return
                raise
            except TransientStorageError:
                failed_before = True
                raise

        self._call(attempt)

    def _stored_equals(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        view = memoryview(data).cast("B")
        if self._call(lambda: self.inner.stat(key)).size != view.nbytes:
            return False
        return self._call(lambda: self.inner.get(key)) == view

    def get(self, key: str) -> bytes:
        return self._call(lambda: self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self.inner.get_range(key, offset, length))

    def get_range_into(self, key: str, offset: int, buffer: memoryview) -> int:
        return self._call(lambda: self.inner.get_range_into(key, offset, buffer))

    def _listing(self, start: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Retry a listing only until its first item is yielded (a restart would repeat items)."""
        def first() -> tuple[Iterator[T], T | None]:
            iterator = start()
            return iterator, next(iterator, None)

        iterator, head = self._call(first)
        if head is None:
            return
        yield head
        yield from iterator

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._listing(lambda: self.inner.list(prefix))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        return self._call(lambda: self.inner.set_retention(key, mode, retain_until))

    def location_exists(self) -> bool:
        return self._call(self.inner.location_exists)

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        return self._call(lambda: self.inner.remove_leftovers(older_than))

    def versioned(self) -> bool:
        return self._call(self.inner.versioned)

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        return self._listing(lambda: self.inner.list_versions(prefix))

    def get_version(self, key: str, version_id: str) -> bytes:
        return self._call(lambda: self.inner.get_version(key, version_id))

    def version_retained_until(self, key: str, version_id: str) -> datetime | None:
        return self._call(lambda: self.inner.version_retained_until(key, version_id))

    def delete_version(self, key: str, version_id: str) -> None:
        self._call(lambda: self.inner.delete_version(key, version_id))

    def restore_version(self, key: str, version_id: str) -> None:
        self._call(lambda: self.inner.restore_version(key, version_id))


# -- fault injection ----------------------------------------------------------------------


class InjectedTransientError(TransientStorageError):
    """A transient failure made up by FaultInjectingStorage."""


class InjectedPermanentError(StorageError):
    """A permanent failure made up by FaultInjectingStorage."""


@dataclass(frozen=True)
class FaultPlan:
    """What FaultInjectingStorage breaks. Rates are probabilities per call (0..1)."""

    #: every call of these operations raises a transient error at this rate
    transient_rate: float = 0.0
    #: the first N calls of an operation fail transiently, e.g. {"put": 2}
    fail_first: Mapping[str, int] = field(default_factory=dict)
    #: operations that always fail with a permanent error
    permanent: frozenset[str] = frozenset()
    #: calls that "time out": wait ``timeout_seconds`` (via the injected sleep), then fail transiently
    timeout_rate: float = 0.0
    timeout_seconds: float = 0.0
    #: a failing write first reaches the store, then reports failure (a lost response)
    fail_after_write: bool = False
    #: get/get_range results cut short / with one flipped bit, at these rates
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    #: restrict injection to these operations (None: all)
    operations: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = (set(self.fail_first) | set(self.permanent) | set(self.operations or ())) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown storage operations: {sorted(unknown)}")


class FaultInjectingStorage(_Wrapper):
    """Deterministically (seeded) breaks calls to ``inner`` according to a FaultPlan."""

    reads_into = False  # reads go through get_range, where the faults are

    def __init__(self, inner: Storage, plan: FaultPlan | None = None, *, seed: int = 0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(inner)
        self.plan = plan or FaultPlan()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sleep = sleep
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _fault(self, op: str) -> tuple[StorageError | None, bool]:
        """Decide (under the lock, so decisions are reproducible per call order) what to inject.

        Returns the error to raise (or None) and whether it is a timeout.
        """
        plan = self.plan
        with self._lock:
            self.calls[op] += 1
            if plan.operations is not None and op not in plan.operations:
                return None, False
            if op in plan.permanent:
                self.injected[op] += 1
                return InjectedPermanentError(f"injected permanent failure in {op}"), False
            if self.calls[op] <= plan.fail_first.get(op, 0) or self._roll(plan.transient_rate):
                self.injected[op] += 1
                return InjectedTransientError(f"injected transient failure in {op}"), False
            if self._roll(plan.timeout_rate):
                self.injected[op] += 1
                return InjectedTransientError(f"injected timeout in {op}"), True
        return None, False

    def _before(self, op: str) -> StorageError | None:
        fault, is_timeout = self._fault(op)
        if fault is None:
            return None
        if is_timeout and self.plan.timeout_seconds:
            self._sleep(self.plan.timeout_seconds)
        if self.plan.fail_after_write and op in ("put", "delete", "set_retention") \
                and isinstance(fault, TransientStorageError):
            return fault  # let the write happen, then report the failure
        raise fault

    def _damage(self, data: bytes) -> bytes:
        with self._lock:
            truncate = self._roll(self.plan.truncate_rate)
            corrupt = self._roll(self.plan.corrupt_rate)
            cut = self._rng.randrange(len(data)) if data and truncate else len(data)
            bit = self._rng.randrange(len(data) * 8) if data and corrupt else -1
        if cut < len(data):
            data = data[:cut]
        if 0 <= bit < len(data) * 8:
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            data = bytes(damaged)
        return data

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        late = self._before("put")
        self.inner.put(key, data, retention=retention)
        if late is not None:
            raise late

    def get(self, key: str) -> bytes:
        self._before("get")
        return self._damage(self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._before("get_range")
        return self._damage(self.inner.get_range(key, offset, length))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._before("list")
        return self.inner.list(prefix)

    def stat(self, key: str) -> ObjectInfo:
        self._before("stat")
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        late = self._before("delete")
        self.inner.delete(key)
        if late is not None:
            raise late

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        late = self._before("set_retention")
        result = self.inner.set_retention(key, mode, retain_until)
        if late is not None:
            raise late
        return result


# -- read-only ----------------------------------------------------------------------------


class ReadOnlyStorageError(StorageError):
    """A write was attempted through a read-only view of a location (permanent)."""


class ReadOnlyStorage(_Wrapper):
    """Reads pass through; every write raises ReadOnlyStorageError without touching ``inner``."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.url = f"{inner.url} (read-only)"

    def _refuse(self, what: str) -> ReadOnlyStorageError:
        return ReadOnlyStorageError(f"{self.url}: refusing to {what}: this location is opened read-only")

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        raise self._refuse(f"write {key}")

    def delete(self, key: str) -> None:
        raise self._refuse(f"delete {key}")

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        raise self._refuse(f"change the retention of {key}")

    def create_location(self, *, object_lock: bool = False) -> None:
        raise self._refuse("create the location")

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        raise self._refuse("remove leftovers")

    def delete_version(self, key: str, version_id: str) -> None:
        raise self._refuse(f"delete a version of {key}")

    def restore_version(self, key: str, version_id: str) -> None:
        raise self._refuse(f"restore a version of {key}")


class BlockCachingReader(_Wrapper):
    """Serves ``get_range`` from aligned blocks kept in a small LRU cache (writes pass through).

    For backends where each request costs far more than its bytes (S3: a round trip
    per ranged GET), many small neighbouring reads - a restore reading the chunks
    of small files that backup workers interleaved in a pack - become a few large
    ones. Objects are immutable, so cached blocks never go stale; memory stays
    below ``block_size * max_blocks``. Concurrent readers of one block share its fetch.

    The default, 9 blocks of 4 MiB (36 MiB), is for a restore's four fetch threads: in the S3 restore of
    the 1 GiB benchmark volume it made 180 ranged GETs where 12 blocks made 164 and 10 made 166, and the
    peak RSS fell from 199-207 to 188-190 MiB; 8 blocks made 214-242 GETs, and 16 blocks of 2 MiB twice the
    requests at ~5 ms of CPU each (docs/benchmarks.md, issue 15).
    """

    reads_into = False  # reads are served from its blocks

    def __init__(self, inner: Storage, *, block_size: int = 4 * 1024 * 1024, max_blocks: int = 9) -> None:
        super().__init__(inner)
        if block_size < 1 or max_blocks < 1:
            raise ValueError("block_size and max_blocks must be positive")
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[str, int], Future[bytes]] = OrderedDict()
        self.fetches = 0

    def _block(self, key: str, index: int) -> bytes:
        with self._lock:
            fut = self._blocks.get((key, index))
            owner = fut is None
            if fut is None:
                fut = Future()
                self._blocks[(key, index)] = fut
                while len(self._blocks) > self.max_blocks:
                    self._blocks.popitem(last=False)
            else:
                self._blocks.move_to_end((key, index))
        if owner:
            try:
                data = self.inner.get_range(key, index * self.block_size, self.block_size)
                self.fetches += 1
            except BaseException as exc:
                with self._lock:
                    if self._blocks.get((key, index)) is fut:
                        del self._blocks[(key, index)]
                fut.set_exception(exc)
                raise
            fut.set_result(data)
        return fut.result()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        if length == 0:
            return b""
        first, last = offset // self.block_size, (offset + length - 1) // self.block_size
        if last - first + 1 > self.max_blocks:  # larger than the cache: read it directly
            return self.inner.get_range(key, offset, length)
        if first == last:
            block = self._block(key, first)
            start = offset - first * self.block_size
            return block[start:start + length]
        # views, not slices: a range over several blocks is copied once, by the join (a run of 8 MiB was
        # copied twice, and four fetch threads held both copies at once)
        parts: list[memoryview] = []
        for index in range(first, last + 1):
            block = self._block(key, index)
            start = offset - index * self.block_size if index == first else 0
            end = min(len(block), offset + length - index * self.block_size)
            parts.append(memoryview(block)[start:end])
            if len(block) < self.block_size:
                break  # end of the object
        return b"".join(parts)
