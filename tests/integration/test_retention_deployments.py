"""prefect.yaml's protection and retention deployments deploy to a real Prefect API, with the policy's
schedule and typed parameters the UI renders as forms (keep rules with their descriptions)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from prefect import get_client

ROOT = Path(__file__).resolve().parents[2]


def _prefect(args: list[str], api: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_protect_retention_and_prune_deployments(prefect_api: str, tmp_path: Path) -> None:
    pool = f"kubekeep-{uuid.uuid4().hex[:6]}"
    _prefect(["block", "register", "-m", "blocks"], prefect_api)
    _prefect(["work-pool", "create", pool, "--type", "process"], prefect_api)
    for name in ("default", "retention-default", "forget-now", "weekly-prune", "sync-policies"):
        _prefect(["--no-prompt", "deploy", "--name", name, "--pool", pool], prefect_api)

    with get_client(sync_client=True) as client:
        protect = client.read_deployment_by_name("protect/default")
        assert [(s.schedule.cron, s.schedule.timezone) for s in protect.schedules] == [  # type: ignore[union-attr]
            ("0 2 * * *", "UTC")]
        assert protect.parameters["policy"] == "default"
        props = protect.parameter_openapi_schema["properties"]
        assert {"policy", "location", "encryption_key", "cluster", "init", "apply_retention",
                "on_approval"} <= set(props)
        assert props["on_approval"]["enum"] == ["pause", "fail"]

        forget = client.read_deployment_by_name("retention/forget-now")
        assert forget.parameters["dry_run"] is True and forget.parameters["rules"]["keep_daily"] == 7
        schema = forget.parameter_openapi_schema
        assert "rules" in schema["properties"] and "approval_timeout" in schema["properties"]
        rules = schema["definitions"]["RetentionRules"]["properties"]
        assert "ISO weeks" in rules["keep_weekly"]["description"]
        assert "latest point" in rules["keep_within"]["description"]
        assert client.read_deployment_by_name("retention/retention-default").parameters["policy"] == "default"

        # `kubekeep policy save` puts the policy's cron and timezone on its deployment protect/<policy>
        policy_file = tmp_path / "default.yaml"
        policy_file.write_text("name: default\napps: {all: true}\nschedule: {cron: '30 1 * * *', timezone: "
                               "Europe/Berlin}\nretention: {keep_daily: 7}\nlocation: default\n")
        saved = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "policy", "save",
                                str(policy_file), "--overwrite"], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "PREFECT_API_URL": prefect_api,
                                    "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}, timeout=300)
        assert saved.returncode == 0 and "protect/default runs on 30 1 * * * (Europe/Berlin)" in saved.stdout, (
            saved.stdout + saved.stderr)
        schedules = client.read_deployment_schedules(protect.id)
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in schedules] == [  # type: ignore[union-attr]
            ("30 1 * * *", "Europe/Berlin", True)]

        sync = client.read_deployment_by_name("sync-policies/sync-policies")
        assert [s.schedule.cron for s in sync.schedules] == ["*/10 * * * *"]  # type: ignore[union-attr]

        prune = client.read_deployment_by_name("prune/weekly-prune")
        assert [s.schedule.cron for s in prune.schedules] == ["0 4 * * 0"]  # type: ignore[union-attr]
        assert "repack_threshold" in prune.parameter_openapi_schema["properties"]
