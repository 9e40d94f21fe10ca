"""The restore flow's approval after its dry run (``approval: pause``): the run dry-runs, pauses with the typed
approval form (flows.approval, shared with the migrate flow's cutover), and is resumed with input through the
real Prefect API: an abort changes nothing, an approval restores."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.artifacts import Artifact
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.restore import RestoreAborted, restore
from kubekeep.cluster import Cluster
from kubekeep.ui import restore_run_name
from tests.plugins.prefect import flow_in_thread


def _paused_run(name: str, outcome: dict[str, Any], timeout: float = 180) -> Any:
    async def find() -> Any:
        async with get_client() as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not outcome:
                runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
                paused = [r for r in runs if r.state is not None and r.state.is_paused()]
                if paused:
                    return paused[0]
                await asyncio.sleep(0.5)
        raise AssertionError(f"flow run {name} never paused; it ended with {outcome}")
    return asyncio.run(find())


def _start(**parameters: Any) -> tuple[threading.Thread, dict[str, Any]]:
    return flow_in_thread(restore, **parameters)


def test_a_restore_dry_runs_then_waits_for_approval_abort_changes_nothing(  # type: ignore[no-untyped-def]
        prefect_api: str, test_cluster, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"color": "green"}})
    app = namespace[-12:]
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="approve-pw", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    point = backup(app=app, namespaces=[namespace], location=location, encryption_key=key, cluster=conn, init=True)
    copy = f"{namespace[:50]}-ok"
    name = restore_run_name(app=None, restore_point=point, namespace_map=[(namespace, copy)], dry_run=False)
    common: dict[str, Any] = {"location": location, "encryption_key": key, "cluster": conn, "restore_point": point,
                              "namespace_map": [{"source": namespace, "target": copy}], "approval": "pause",
                              "approval_timeout": 300}
    try:
        # abort: the dry run was published, the form waits, nothing is created
        thread, outcome = _start(**common)
        paused = _paused_run(name, outcome)
        assert paused.state.state_details.run_input_keyset  # a typed input form waits
        report = Artifact.get(f"restore-{app}")
        assert report is not None and "Dry run" in (report.description or ""), report
        assert cluster.get_or_none("v1", "ConfigMap", "settings", copy) is None
        resume_flow_run(paused.id, run_input={"approve": False, "reason": "wrong point"})
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert isinstance(outcome.get("error"), RestoreAborted), outcome
        assert "not approved: wrong point; nothing was changed" in str(outcome["error"])
        assert cluster.get_or_none("v1", "Namespace", copy) is None

        # approve: the same restore goes on after the form and restores
        thread, outcome = _start(**common)
        paused = _paused_run(name, outcome)
        resume_flow_run(paused.id, run_input={"approve": True, "reason": "ticket 42"})
        thread.join(timeout=180)
        assert not thread.is_alive()
        assert "error" not in outcome, outcome
        assert outcome["outcome"]["dry_run"] is False and outcome["outcome"]["restore_point_id"] == point
        assert cluster.get("v1", "ConfigMap", "settings", copy)["data"] == {"color": "green"}
    finally:
        if cluster.get_or_none("v1", "Namespace", copy) is not None:
            cluster.delete("v1", "Namespace", copy)
