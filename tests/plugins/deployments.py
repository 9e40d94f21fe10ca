"""prefect.yaml's deployments in the harness Prefect server, with a worker that runs them.

``kubekeep_deployments`` (session) registers the block types, saves a location (a
directory of the session), a key (cheap KDF) and a connection to the test cluster
as blocks, creates a process work pool and deploys prefect.yaml's ad-hoc
deployments (``backup-now``, ``restore``) with ``prefect deploy``, their parameters
pointing at those blocks. ``kubekeep_worker`` (session) starts ``prefect worker
start`` on that pool with a one-second polling interval and stops it after the last
test that uses it. The browser tests and the REST API tests (docs/api.md) share them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.lifetime import release_after_last_use

ROOT = Path(__file__).resolve().parents[2]

#: the deployments of prefect.yaml the tests deploy (nightly-backup's cron schedule is tested in
#: tests/integration/test_deployments.py)
AD_HOC = ("backup-now", "restore", "restore-points")


def prefect_cli(args: list[str], api: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``prefect ARGS`` against ``api`` in the repository root; fail the test with its output."""
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


@dataclass
class KubekeepDeployments:
    api: str
    pool: str
    location: str  # block names
    encryption_key: str
    cluster: str
    location_path: Path
    passphrase: str
    deployments: dict[str, str] = field(default_factory=dict)  # name -> id

    def blocks(self) -> dict[str, str]:
        return {"location": self.location, "encryption_key": self.encryption_key, "cluster": self.cluster}


@pytest.fixture(scope="session")
def kubekeep_deployments(prefect_api: str, test_cluster: Any) -> Iterator[KubekeepDeployments]:
    from blocks import ClusterConnection, EncryptionKey, LocationProfile

    # _sync=True: Playwright's sync API runs an event loop in this thread while a browser test is
    # active, and Prefect's dual sync/async methods would otherwise return an unawaited coroutine
    suffix = uuid.uuid4().hex[:6]
    location_path = Path(tempfile.mkdtemp(prefix="kubekeep-deployed-")) / "location"
    passphrase = f"deployed-{suffix}"
    LocationProfile(kind="filesystem", path=str(location_path)).save(f"loc-{suffix}", _sync=True)
    EncryptionKey(passphrase=passphrase, cheap_kdf=True).save(f"key-{suffix}", _sync=True)
    ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)).save(
        f"cluster-{suffix}", _sync=True)
    # the repository exists before the first run: the deployments' runs never pass init
    with EncryptionKey(passphrase=passphrase, cheap_kdf=True).open_repository(
            LocationProfile(kind="filesystem", path=str(location_path)).storage(), create=True):
        pass

    deployed = KubekeepDeployments(prefect_api, f"kubekeep-{suffix}", f"loc-{suffix}", f"key-{suffix}",
                                   f"cluster-{suffix}", location_path, passphrase)
    prefect_cli(["block", "register", "-m", "blocks"], prefect_api)
    prefect_cli(["work-pool", "create", deployed.pool, "--type", "process"], prefect_api)
    for name in AD_HOC:
        prefect_cli(["--no-prompt", "deploy", "--name", name, "--pool", deployed.pool,
                     "--params", json.dumps(deployed.blocks() if name != "restore-points" else
                                            {k: v for k, v in deployed.blocks().items() if k != "cluster"})],
                    prefect_api)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name in AD_HOC:
            flow = "backup" if "backup" in name else name if name == "restore-points" else "restore"
            deployed.deployments[name] = str(client.read_deployment_by_name(f"{flow}/{name}").id)
    yield deployed


@pytest.fixture(scope="session")
def kubekeep_worker(kubekeep_deployments: KubekeepDeployments) -> Iterator[str]:
    """A process worker on the deployments' pool, polling every second; yields the pool name."""
    from kubekeep.process import ManagedProcess

    logs = Path(tempfile.mkdtemp(prefix="kubekeep-worker-"))
    env = {"PREFECT_API_URL": kubekeep_deployments.api, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "5", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    worker = ManagedProcess("prefect-worker", [sys.executable, "-m", "prefect", "worker", "start", "--pool",
                                               kubekeep_deployments.pool, "--type", "process"],
                            logs, env=env, cwd=ROOT)
    release_after_last_use("kubekeep_worker", worker.stop)
    try:
        yield kubekeep_deployments.pool
    finally:
        worker.stop()
