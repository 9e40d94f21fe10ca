"""What every Kubekeep task shares: retry only what is worth retrying, keep bytes out of results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from kubekeep.cluster import ApiError
from kubekeep.repo.storage import TransientStorageError


def is_transient(exc: BaseException | None) -> bool:
    """Classify once: API 429/5xx/connection errors and transient storage errors are worth a retry."""
    while exc is not None:
        if isinstance(exc, TransientStorageError | ConnectionError | TimeoutError):
            return True
        if isinstance(exc, ApiError):
            return exc.transient
        exc = exc.__cause__
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry a failed task only for transient errors."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - the task's own exception, re-raised by result()
        return is_transient(exc)
    return False


#: options of tasks that move data: never cache on (large, secret) inputs, never persist results
DATA_TASK: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retries": 3,
    "retry_delay_seconds": [1, 5, 15],
    "retry_condition_fn": retry_if_transient,
}


T = TypeVar("T")
R = TypeVar("R")


def run_bounded(items: Sequence[T], submit: Callable[[T], PrefectFuture[R]], concurrency: int,
                on_error: Callable[[T, Exception], R], on_done: Callable[[int], object] | None = None) -> list[R]:
    """Submit one task (or a task wrapping a subflow) per item, at most ``concurrency`` running at once;
    return the results in completion order. An item whose task failed after its retries becomes
    ``on_error(item, exc)``: recorded, never dropped. ``on_done(n)`` after each of the n results. Call it
    from a flow."""
    results: list[R] = []
    pending = list(items)
    running: dict[PrefectFuture[R], T] = {}
    while pending or running:
        while pending and len(running) < max(1, concurrency):
            item = pending.pop(0)
            running[submit(item)] = item
        done = next(as_completed(list(running)))
        item = running.pop(done)
        try:
            results.append(done.result())
        except Exception as exc:  # noqa: BLE001 - retries are exhausted: record, never drop
            results.append(on_error(item, exc))
        if on_done is not None:
            on_done(len(results))
    return results
