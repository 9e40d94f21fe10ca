"""prefect.yaml's scheduled backup deployment runs through a real work pool and worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
from prefect.states import Scheduled

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from kubekeep.catalog import latest_restore_point
from kubekeep.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def _prefect(args: list[str], api: str, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=kw.pop("timeout", 300), **kw)
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_scheduled_backup_deployment_runs(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                          namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"a": "b"}})
    suffix = uuid.uuid4().hex[:6]
    location = tmp_path / "location"
    LocationProfile(kind="filesystem", path=str(location)).save(f"loc-{suffix}")
    EncryptionKey(passphrase="scheduled", cheap_kdf=True).save(f"key-{suffix}")
    ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)).save(f"cluster-{suffix}")

    pool = f"kubekeep-{suffix}"
    _prefect(["block", "register", "-m", "blocks"], prefect_api)
    _prefect(["work-pool", "create", pool, "--type", "process"], prefect_api)
    params = {"app": f"sched-{suffix}", "namespaces": [namespace], "location": f"loc-{suffix}",
              "encryption_key": f"key-{suffix}", "cluster": f"cluster-{suffix}", "init": True}
    out = _prefect(["--no-prompt", "deploy", "--name", "nightly-backup", "--pool", pool,
                    "--params", json.dumps(params)], prefect_api)
    assert "nightly-backup" in out.stdout

    async def scheduled_run() -> tuple[object, str]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("backup/nightly-backup")
            assert deployment.work_pool_name == pool
            assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]  # type: ignore[union-attr]
            # the server's scheduler fills in runs from the cron schedule
            deadline = time.monotonic() + 90
            runs = []
            while time.monotonic() < deadline and not runs:
                runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[deployment.id])), flow_run_filter=FlowRunFilter())
                if not runs:
                    await asyncio.sleep(1)
            assert runs, "the scheduler created no run for the cron schedule"
            run = min(runs, key=lambda r: r.expected_start_time)  # type: ignore[arg-type,return-value]
            assert run.state is not None and run.state.is_scheduled()
            assert run.expected_start_time is not None and run.expected_start_time.hour == 2
            # bring the next scheduled run forward to now, so the worker picks it up at once
            await client.set_flow_run_state(run.id, Scheduled(scheduled_time=datetime.now(UTC)), force=True)
            return run.id, pool

    run_id, _ = asyncio.run(scheduled_run())
    _prefect(["worker", "start", "--pool", pool, "--run-once", "--type", "process"], prefect_api, timeout=300)

    async def final_state() -> str:
        async with get_client() as client:
            for _ in range(120):
                run = await client.read_flow_run(run_id)  # type: ignore[arg-type]
                if run.state is not None and run.state.is_final():
                    return f"{run.state.type.value}: {run.state.message}"
                await asyncio.sleep(1)
            return "not final"

    state = asyncio.run(final_state())
    assert state.startswith("COMPLETED"), state
    with EncryptionKey(passphrase="scheduled", cheap_kdf=True).catalog(
            LocationProfile(kind="filesystem", path=str(location)), cache_dir=tmp_path / "cache") as catalog:
        point = latest_restore_point(catalog, f"sched-{suffix}")
    assert point is not None and point.status == "succeeded" and point.object_count >= 3
