"""Cancelling a verification through the Prefect API tears its sandbox down.

prefect.yaml's ``verify`` deployment runs on the session's process worker (tests/plugins/deployments.py). Its
run waits in an exec check that cannot pass (no pod matches) while its sandbox exists; the test cancels it the
way the UI does (the run is set to Cancelling), and the sandbox of that run must be gone once the run is
Cancelled (docs/verification.md, "Cancelled runs").
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.states import Cancelling
from prefect.utilities.callables import parameter_schema

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.verify import sandbox_run_id, verify
from kubekeep.cluster import Cluster
from kubekeep.verify import SANDBOX_LABEL
from tests.plugins.deployments import KubekeepDeployments

ROOT = Path(__file__).resolve().parents[2]


def _deploy_verify(client: Any, deployed: KubekeepDeployments) -> UUID:
    """prefect.yaml's ``verify`` deployment on the session's pool, made through the API (what ``prefect deploy``
    makes of it, without the CLI's start-up time under load): its entrypoint, run in the repository root."""
    entry = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"] if d["name"] == "verify")
    flow_id = client.create_flow_from_name("verify")
    return client.create_deployment(  # type: ignore[no-any-return]
        flow_id, "verify", entrypoint=entry["entrypoint"], work_pool_name=deployed.pool, parameters=deployed.blocks(),
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
        parameter_openapi_schema=parameter_schema(verify).model_dump())


def _sandbox(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    return list(cluster.list_pages(cluster.resource_for("v1", "Namespace"),
                                   label_selector=f"{SANDBOX_LABEL}={run_id}"))


def test_cancelling_a_verify_run_through_the_api_removes_its_sandbox(
        kubekeep_deployments: KubekeepDeployments, kubekeep_worker: str, test_cluster: Any, cluster: Cluster,
        namespace: str) -> None:
    deployed = kubekeep_deployments
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"a": "b"}})
    app = f"vcancel-{uuid.uuid4().hex[:6]}"
    backup(app=app, namespaces=[namespace],
           location=LocationProfile(kind="filesystem", path=str(deployed.location_path)),
           encryption_key=EncryptionKey(passphrase=deployed.passphrase, cheap_kdf=True),
           cluster=ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)))
    # a check that waits for a pod that never comes: the run stays in its sandbox until cancelled
    waits = {"type": "exec", "name": "waits", "pod_selector": "app=never", "command": ["true"],
             "timeout_seconds": 120, "interval_seconds": 1}
    with get_client(sync_client=True) as client:
        deployment = _deploy_verify(client, deployed)
        run = client.create_flow_run_from_deployment(deployment, parameters={"app": app, "checks": [waits]})
        run_id = sandbox_run_id(str(run.id))
        assert run_id
        deadline = time.monotonic() + 60
        while not _sandbox(cluster, run_id):
            state = client.read_flow_run(run.id).state
            assert state is None or not state.is_final(), f"the run ended before its sandbox existed: {state}"
            assert time.monotonic() < deadline, "the run created no sandbox within 60 s"
            time.sleep(0.5)

        client.set_flow_run_state(run.id, Cancelling(message="cancelled by the test"))
        deadline = time.monotonic() + 60
        while True:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                break
            assert time.monotonic() < deadline, f"the cancelled run did not end within 60 s: {state}"
            time.sleep(0.5)
        logs = [entry.message for entry in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))]
    assert state.type.value == "CANCELLED", (state.type, state.message, logs)
    # the hook runs before the run is Cancelled, and waits until the namespaces are gone
    assert _sandbox(cluster, run_id) == [], "the cancelled run's sandbox is still there"
    # which one removed it: the sandbox bracket in the run's own process (the termination signal unwinds it
    # through teardown-sandbox), and the on_cancellation hook in the runner's, for a run killed before that
    assert any(f"flow run cancelled: sandbox {run_id} torn down: complete" in line for line in logs), logs
