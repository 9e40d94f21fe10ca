"""What every Kubekeep task shares: retry only what is worth retrying, keep bytes out of results."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

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
