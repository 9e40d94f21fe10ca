"""The signals cost of issue 13 measured where users pay it (docs/benchmarks.md, "Signals ... in the backup
flow"): the backup flow of an app whose claim holds the 1 GiB benchmark volume (``benchmarks/volume.py``), a
full point then incrementals after the volume's 1 % daily change (or its revert), on the real test bed and
Prefect API. Each flow run's ``score-restore-point`` task against the flow run's whole duration, from the
Prefect API's task and flow runs.

Opt-in (it writes 1 GiB and takes minutes): ``KUBEKEEP_SIGNALS_BENCHMARK=1``; ``..._SIZE`` sets another size
(``64MiB``), ``..._POINTS`` the incrementals (4), ``..._OUT`` a JSON result file."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks.volume import apply_changes, generate, parse_size, revert_changes
from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app

pytestmark = pytest.mark.skipif(os.environ.get("KUBEKEEP_SIGNALS_BENCHMARK") != "1",
                                reason="opt-in benchmark: KUBEKEEP_SIGNALS_BENCHMARK=1")

STEP = "score-restore-point"


def _runs(flow_run_id: Any) -> dict[str, Any]:
    """The flow run's duration, its score task's, and its slowest tasks (where the rest goes)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                      limit=200)
    assert run.start_time and run.end_time, run
    durations = sorted((((t.end_time - t.start_time).total_seconds(), t.name) for t in tasks
                        if t.start_time and t.end_time), reverse=True)
    step = [seconds for seconds, name in durations if name.startswith(STEP)]
    assert len(step) == 1, durations
    return {"flow_s": (run.end_time - run.start_time).total_seconds(), "step_s": step[0],
            "tasks": [f"{name} {seconds:.3f} s" for seconds, name in durations[:6]]}


def test_signals_step_share_of_the_backup_flow(prefect_api: str, test_cluster: Any, cluster: Cluster,
                                                tmp_path: Path) -> None:
    total = parse_size(os.environ.get("KUBEKEEP_SIGNALS_BENCHMARK_SIZE", "1GiB"))
    incrementals = int(os.environ.get("KUBEKEEP_SIGNALS_BENCHMARK_POINTS", "4"))
    ns = f"sigbench-{uuid.uuid4().hex[:6]}"
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="bench", cheap_kdf=True)
    rows: list[dict[str, Any]] = []
    sample_app.create(cluster, ns)
    try:
        volume = sample_app.volume_path(cluster, ns, "uploads") / "bench"
        generate(volume, total)
        changed = False
        for n in range(incrementals + 1):
            if n:
                (revert_changes if changed else apply_changes)(volume, total)
                changed = not changed
            state = backup(app=f"sig-{ns}", namespaces=[ns], location=location, encryption_key=key, cluster=conn,
                           init=not n, return_state=True)
            assert state.is_completed(), state
            row = {"kind": "full" if not n else ("incremental, 1 % changed" if changed else "incremental, reverted"),
                   **_runs(state.state_details.flow_run_id)}
            row["share"] = row["step_s"] / row["flow_s"]
            rows.append(row)
            print(f"{row['kind']:26s} flow {row['flow_s']:6.2f} s  {STEP} {row['step_s'] * 1000:6.0f} ms  "
                  f"share {row['share'] * 100:5.2f} %  ({'; '.join(row['tasks'])})", flush=True)
    finally:
        cluster.delete("v1", "Namespace", ns)
    out = os.environ.get("KUBEKEEP_SIGNALS_BENCHMARK_OUT")
    if out:
        Path(out).write_text(json.dumps({"size": total, "rows": rows}, indent=1) + "\n")
    assert all(0 < r["step_s"] < r["flow_s"] for r in rows)
