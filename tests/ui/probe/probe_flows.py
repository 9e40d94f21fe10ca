"""Flows that probe how the Prefect UI renders what Kubekeep relies on (tests/ui/test_prefect_ui.py).

Deployed from this directory into the harness server; the harness worker runs them.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import BaseModel, Field


class NamespaceMapping(BaseModel):
    source: str = Field(description="Namespace in the restore point.")
    target: str = Field(description="Namespace to restore into.")


def _probe_name() -> str:
    params = flow_run.parameters
    targets = ", ".join(m["target"] if isinstance(m, dict) else m.target for m in params.get("mappings") or ())
    return f"probe {params['app']}→{targets or 'in place'}"


@flow(name="form-probe", flow_run_name=_probe_name)
def form_probe(app: str, existing: Literal["skip", "update", "recreate"] = "skip",
               mappings: list[NamespaceMapping] = [],  # noqa: B006 - an empty default renders a form directly
               dry_run: bool = True) -> dict[str, object]:
    """Echo the parameters the run form sent.

    Args:
        app: Application whose restore points are used.
        existing: What to do with objects that exist.
        mappings: Source namespace -> target namespace, one entry per namespace.
        dry_run: Validate only.
    """
    result = {"app": app, "existing": existing, "mappings": [m.model_dump() for m in mappings], "dry_run": dry_run}
    get_run_logger().info("form-probe got %s", result)
    return result


@flow(name="pause-probe")
def pause_probe(ids: list[str]) -> str:
    """Pause for a pick among ``ids``.

    Args:
        ids: The choices, newest first.
    """
    choice_type = Literal[tuple(ids)]  # type: ignore[valid-type]

    class PickPoint(RunInput):
        restore_point: choice_type = Field(description="Restore point to restore.")  # type: ignore[valid-type]

    pick = pause_flow_run(wait_for_input=PickPoint.with_initial_data(
        description="Pick one of the newest restore points", restore_point=ids[0]), timeout=300, poll_interval=1)
    get_run_logger().info("pause-probe picked %s", pick.restore_point)
    return str(pick.restore_point)
