"""A ProtectionPolicy saved from the UI or the API (a block save, not `kubekeep policy save`) reschedules its
deployment protect/<policy>: the ``sync-policies`` flow puts every saved policy's cron and timezone on its
deployment through the real Prefect API, and leaves a schedule that already matches untouched."""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule

from blocks import ProtectionPolicy
from flows.protect import sync_policies


def _schedules(deployment_id: object) -> list[tuple[str, str, bool, object]]:
    with get_client(sync_client=True) as client:
        return [(s.schedule.cron, s.schedule.timezone, s.active, s.id)  # type: ignore[union-attr]
                for s in client.read_deployment_schedules(deployment_id)]  # type: ignore[arg-type]


def test_a_policy_saved_as_a_block_reschedules_its_protect_deployment(prefect_api: str) -> None:
    name = f"ps-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("protect")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name=name, parameters={"policy": name},
            schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron="0 2 * * *", timezone="UTC"), active=True)])

    def save(cron: str, timezone: str, overwrite: bool = False) -> None:
        # what the UI's block form does: a block document written through the API
        ProtectionPolicy(name=name, apps={"namespaces": [f"{name}-*"]}, schedule={"cron": cron, "timezone": timezone},
                         retention={"keep_daily": 7}, location="primary").save(name, overwrite=overwrite)

    save("45 3 * * *", "Europe/Berlin")
    assert sync_policies()[name] == "rescheduled"
    first = _schedules(deployment_id)
    assert [s[:3] for s in first] == [("45 3 * * *", "Europe/Berlin", True)]
    # nothing changed: the schedule (and the runs it already planned) stays as it is
    assert sync_policies()[name] == "unchanged"
    assert _schedules(deployment_id) == first
    # edited in the UI later: the next sync follows
    save("15 1 * * 1-5", "America/New_York", overwrite=True)
    assert sync_policies()[name] == "rescheduled"
    assert [s[:3] for s in _schedules(deployment_id)] == [("15 1 * * 1-5", "America/New_York", True)]
