"""Prefect's v2 UI shows a cron schedule in words without its timezone ("At 02:00 AM"), so each scheduled
deployment's description (the deployment page's Description tab) says when it runs and in which timezone."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_every_scheduled_deployment_names_its_timezone_in_its_description() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    scheduled = [d for d in deployments if d.get("schedules")]
    assert scheduled
    for deployment in scheduled:
        for schedule in deployment["schedules"]:
            zone = schedule.get("timezone")
            assert zone, f"{deployment['name']}: a schedule without a timezone"
            assert f"timezone {zone}" in deployment.get("description", ""), deployment["name"]
