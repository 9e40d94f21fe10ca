"""prefect.yaml's verify-latest deployment: deployed as written (weekly schedule), run by a real process worker
with blocks by name and a policy from the deployment's parameters; a point that does not pass ends the flow
run Failed (what Prefect notifications fire on), and the verdict is in the catalog."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
from prefect.states import Scheduled

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from kubekeep.catalog import list_verifications
from kubekeep.cluster import Cluster
from tests.integration.test_deployments import _prefect


def test_verify_latest_deployment_runs_weekly_and_fails_on_a_failed_verification(
        prefect_api: str, test_cluster: Any, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"a": "b"}})
    suffix = uuid.uuid4().hex[:6]
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "location"))
    key = EncryptionKey(passphrase="verify-deployment", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    location.save(f"loc-{suffix}")
    key.save(f"key-{suffix}")
    conn.save(f"cluster-{suffix}")
    app = f"vdep-{suffix}"
    backup(app=app, namespaces=[namespace], location=location, encryption_key=key, cluster=conn, init=True)

    pool = f"kubekeep-{suffix}"
    _prefect(["block", "register", "-m", "blocks"], prefect_api)
    _prefect(["work-pool", "create", pool, "--type", "process"], prefect_api)
    # a check that cannot pass: there is no pod in this app
    params = {"location": f"loc-{suffix}", "encryption_key": f"key-{suffix}", "cluster": f"cluster-{suffix}",
              "policy": {"checks": [{"type": "exec", "name": "needs-a-pod", "pod_selector": "app=none",
                                     "command": ["true"], "timeout_seconds": 2, "interval_seconds": 1}]}}
    out = _prefect(["--no-prompt", "deploy", "--name", "verify-latest", "--pool", pool, "--params",
                    json.dumps(params)], prefect_api)
    assert "verify-latest" in out.stdout

    async def run_now() -> Any:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("verify-latest/verify-latest")
            assert [s.schedule.cron for s in deployment.schedules] == ["0 4 * * 0"]  # type: ignore[union-attr]
            runs = []
            for _ in range(90):
                runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[deployment.id])), flow_run_filter=FlowRunFilter())
                if runs:
                    break
                await asyncio.sleep(1)
            assert runs, "the scheduler created no run for the weekly schedule"
            run = min(runs, key=lambda r: r.expected_start_time)  # type: ignore[arg-type,return-value]
            assert run.expected_start_time is not None and run.expected_start_time.weekday() == 6
            await client.set_flow_run_state(run.id, Scheduled(scheduled_time=datetime.now(UTC)), force=True)
            return run.id

    run_id = asyncio.run(run_now())
    _prefect(["worker", "start", "--pool", pool, "--run-once", "--type", "process"], prefect_api, timeout=400)

    async def final_state() -> tuple[str, str]:
        async with get_client() as client:
            for _ in range(120):
                run = await client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    return run.state.type.value, run.state.message or ""
                await asyncio.sleep(1)
            return "not final", ""

    state, message = asyncio.run(final_state())
    assert state == "FAILED", (state, message)
    assert app in message and "needs-a-pod" in message, message
    with key.catalog(location, cache_dir=tmp_path / "cache") as catalog:
        rows = list_verifications(catalog, app=app)
    assert [r.result for r in rows] == ["failed"] and "needs-a-pod: no pod in" in (rows[0].reason or ""), rows
    assert rows[0].teardown == "complete"
    left = list(cluster.list_pages(cluster.resource_for("v1", "Namespace"), label_selector="kubekeep.io/sandbox"))
    assert all((n.get("status") or {}).get("phase") == "Terminating" for n in left), left
