"""The migrate flow's approval before the cutover (a typed Prefect input form, real Prefect API) and its
deployment in prefect.yaml."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.migrate import MigrationAborted, migrate
from kubekeep.migrate import MIGRATION_ANNOTATION
from kubekeep.testbed import sample_app

ROOT = Path(__file__).resolve().parents[2]


def _paused_run(name: str, timeout: float = 240) -> Any:
    async def find() -> Any:
        async with get_client() as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
                paused = [r for r in runs if r.state is not None and r.state.is_paused()]
                if paused:
                    return paused[0]
                await asyncio.sleep(1)
        raise AssertionError(f"flow run {name} never paused")
    return asyncio.run(find())


def test_the_cutover_waits_for_approval_and_a_refusal_leaves_the_source_running(  # type: ignore[no-untyped-def]
        prefect_api: str, two_clusters, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    ns, app = f"appr-{tag}", f"appr-{tag}"
    with two_clusters.first.connect() as new, two_clusters.second.connect() as old:
        try:
            sample_app.create(new, ns)
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    migrate(app=app, namespaces=[ns], approval="pause", approval_timeout=300,
                            source_cluster=ClusterConnection(name="new", kubeconfig_path=str(
                                two_clusters.first.kubeconfig)),
                            target_cluster=ClusterConnection(name="old", kubeconfig_path=str(
                                two_clusters.second.kubeconfig)),
                            location=LocationProfile(kind="filesystem", path=str(tmp_path / "loc")),
                            encryption_key=EncryptionKey(passphrase="pw", cheap_kdf=True), init=True)
                except BaseException as exc:  # noqa: BLE001 - the test asserts on it
                    outcome["error"] = exc

            # the thread runs in this context: the test's Prefect API settings are context variables
            worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
            worker.start()
            try:
                paused = _paused_run(f"migrate-{app}-run")
            except AssertionError:
                raise AssertionError(f"never paused; the run ended with {outcome.get('error')!r}") from None
            assert paused.state.state_details.run_input_keyset  # a typed input form waits
            # paused after the pre-seed and before the cutover: the claims are on the target, the source runs
            claim = old.get("v1", "PersistentVolumeClaim", "uploads", ns)
            assert claim["metadata"]["annotations"][MIGRATION_ANNOTATION] == app
            assert old.get_or_none("apps/v1", "Deployment", "web", ns) is None
            assert new.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2
            resume_flow_run(paused.id, run_input={"approve": False, "reason": "not today"})
            worker.join(timeout=120)
            assert not worker.is_alive()
            assert isinstance(outcome.get("error"), MigrationAborted), outcome
            assert "not today" in str(outcome["error"])
            assert new.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2
            assert new.get("apps/v1", "StatefulSet", "db", ns)["spec"]["replicas"] == 1
            assert old.get_or_none("apps/v1", "Deployment", "web", ns) is None
        finally:
            new.delete("v1", "Namespace", ns)
            if old.get_or_none("v1", "Namespace", ns) is not None:
                old.delete("v1", "Namespace", ns)


def test_prefect_yaml_deploys_the_migrate_flow_with_typed_parameters(prefect_api: str) -> None:
    pool = f"kubekeep-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def prefect(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    prefect("block", "register", "-m", "blocks")
    prefect("work-pool", "create", pool, "--type", "process")
    prefect("--no-prompt", "deploy", "--name", "migrate", "--pool", pool)

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment_by_name("migrate/migrate")

    deployment = asyncio.run(read())
    schema = deployment.parameter_openapi_schema
    props = schema["properties"]
    assert deployment.parameters["approval"] == "pause" and deployment.parameters["action"] == "plan"
    action = schema["definitions"]["MigrateAction"]
    assert action["enum"] == ["plan", "run", "rollback"]
    assert props["approval"]["enum"] == ["none", "pause"]
    assert "JsonPatchRule" in json.dumps(props["json_patches"])
    assert props["pre_seed_rounds"]["description"].startswith("Backups restored to the target")
