"""A Prefect flow with a retried task runs against the real Prefect API of the test session."""

from __future__ import annotations

import asyncio

from prefect import flow, get_client, task
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

_attempts: dict[str, int] = {}


@task(retries=2, retry_delay_seconds=0)
def flaky(key: str) -> int:
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < 3:
        raise ConnectionError(f"transient failure {_attempts[key]}")
    return _attempts[key]


@flow
def retrying_flow(key: str) -> int:
    return flaky(key)


def test_flow_with_retried_task_runs_against_the_api(prefect_api: str) -> None:
    state = retrying_flow("a", return_state=True)
    assert state.is_completed()
    assert state.result() == 3 and _attempts["a"] == 3

    async def read() -> tuple[str, list[str]]:
        async with get_client() as client:
            assert str(client.api_url).rstrip("/") == prefect_api.rstrip("/")
            run = await client.read_flow_run(state.state_details.flow_run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            return run.state_type.value, [t.state_type.value for t in tasks]

    run_state, task_states = asyncio.run(read())
    assert run_state == "COMPLETED"
    assert task_states == ["COMPLETED"]
