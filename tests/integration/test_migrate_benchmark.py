"""The migration benchmark of issue 10 (docs/benchmarks.md, "Migration downtime"): an app with a 1 GiB volume,
1 % of it changed after the pre-seed; the cutover's downtime against a cold backup + restore of the same app
onto the same target. Opt-in (it writes 1 GiB and takes minutes): ``KUBEKEEP_MIGRATE_BENCHMARK=1``;
``KUBEKEEP_MIGRATE_BENCHMARK_MIB`` sets another size, ``KUBEKEEP_MIGRATE_BENCHMARK_OUT`` a JSON result file."""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.flow_runs import resume_flow_run

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.migrate import migrate
from flows.restore import restore
from kubekeep.testbed import sample_app
from tests.integration.test_migrate_approval import _paused_run

pytestmark = pytest.mark.skipif(os.environ.get("KUBEKEEP_MIGRATE_BENCHMARK") != "1",
                                reason="opt-in benchmark: KUBEKEEP_MIGRATE_BENCHMARK=1")

FILE_MIB = 4


def _fill(root: Path, mib: int) -> None:
    for i in range(mib // FILE_MIB):
        (root / f"blob-{i:04d}.bin").write_bytes(os.urandom(FILE_MIB << 20))


def _change(root: Path, share: float, mib: int) -> int:
    """Rewrite ``share`` of the volume's files (each a whole new 4 MiB); return the bytes changed."""
    files = max(1, round(mib // FILE_MIB * share))
    for i in range(files):
        (root / f"blob-{i * 7 % (mib // FILE_MIB):04d}.bin").write_bytes(os.urandom(FILE_MIB << 20))
    return files * (FILE_MIB << 20)


def _timeline(flow_run_id: Any, began: Any) -> list[str]:
    """The migrate run's task runs from the quiesce on: "name +start s, duration s" (where the downtime goes)."""
    from datetime import datetime

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    start = datetime.fromisoformat(began) if isinstance(began, str) else began
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     limit=200)
    rows = sorted((r.start_time, r.end_time, r.name) for r in runs if r.start_time and r.end_time)
    return [f"{name} +{(t0 - start).total_seconds():.2f} s, {(t1 - t0).total_seconds():.2f} s"
            for t0, t1, name in rows if (t1 - start).total_seconds() > -0.5]


def test_migration_downtime_vs_cold_backup_and_restore(prefect_api: str, two_clusters,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    mib = int(os.environ.get("KUBEKEEP_MIGRATE_BENCHMARK_MIB", "1024"))
    tag = uuid.uuid4().hex[:6]
    ns = f"bench-{tag}"
    new_conn = ClusterConnection(name="new", kubeconfig_path=str(two_clusters.first.kubeconfig))
    old_conn = ClusterConnection(name="old", kubeconfig_path=str(two_clusters.second.kubeconfig))
    key = EncryptionKey(passphrase="bench", cheap_kdf=True)
    results: dict[str, Any] = {"volume_mib": mib}
    with two_clusters.first.connect() as new, two_clusters.second.connect() as old:
        try:
            sample_app.create(new, ns)
            uploads = sample_app.volume_path(new, ns, "uploads")
            _fill(uploads, mib)

            # cold: quiesce, full backup into an empty location, restore onto the target
            cold_loc = LocationProfile(kind="filesystem", path=str(tmp_path / "cold"))
            started = time.monotonic()
            point = backup(app=f"cold-{tag}", namespaces=[ns], location=cold_loc, encryption_key=key,
                           cluster=new_conn, quiesce=["*"], keep_quiesced=True, init=True)
            backed_up = time.monotonic()
            restore(location=cold_loc, encryption_key=key, cluster=old_conn, restore_point=point,
                    namespace_map={ns: f"{ns}-cold"})
            results["cold"] = {"backup_s": backed_up - started, "restore_s": time.monotonic() - backed_up,
                               "total_s": time.monotonic() - started}
            migrate(app=f"cold-{tag}", namespaces=[ns], source_cluster=new_conn, target_cluster=old_conn,
                    action="rollback")  # the source runs again

            # migration: pre-seed, 1 % changed while paused for approval, then the cutover
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    outcome["result"] = migrate(
                        app=f"mig-{tag}", namespaces=[ns], source_cluster=new_conn, target_cluster=old_conn,
                        location=LocationProfile(kind="filesystem", path=str(tmp_path / "mig")), encryption_key=key,
                        namespace_map={ns: f"{ns}-mig"}, approval="pause", approval_timeout=1800, init=True)
                except BaseException as exc:  # noqa: BLE001 - asserted below
                    outcome["error"] = exc

            worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
            pre_seed_started = time.monotonic()
            worker.start()
            paused = _paused_run(f"migrate-mig-{tag}-run", timeout=1800)
            results["pre_seed_s"] = time.monotonic() - pre_seed_started
            results["changed_bytes"] = _change(uploads, 0.01, mib)
            resume_flow_run(paused.id, run_input={"approve": True, "reason": "benchmark"})
            worker.join(timeout=1800)
            assert "error" not in outcome, outcome.get("error")
            result = outcome["result"]
            assert all(v["equal"] for v in result["volumes"])
            downtime = result["downtime"]
            results["migration"] = {"downtime_s": downtime["seconds"],
                                    "stages": {s["name"]: s["seconds"] for s in downtime["stages"]},
                                    "volume_bytes_written": sum(v["bytes"] for v in result["report"]["volumes"])}
            results["ratio"] = downtime["seconds"] / results["cold"]["total_s"]
            results["cutover_tasks"] = _timeline(paused.id, downtime["started_at"])
        finally:
            for name in (ns, f"{ns}-cold", f"{ns}-mig"):
                for cluster in (new, old):
                    if cluster.get_or_none("v1", "Namespace", name) is not None:
                        cluster.delete("v1", "Namespace", name)
    out = os.environ.get("KUBEKEEP_MIGRATE_BENCHMARK_OUT")
    if out:
        Path(out).write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(json.dumps(results, indent=1, default=str))
