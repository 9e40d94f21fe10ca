"""Cost of the backup flow's signals step (score-restore-point) as a share of the backup, on the 1 GiB volume.

    python benchmarks/signals_step.py --work /tmp/kk-signals [--size 1GiB] [--repeat 4] [--s3]

What the backup flow runs for one point, in its order, without Prefect (one process, the repository
open as in a run): the backup part is export-volume (the volume, benchmarks/volume.py), the manifest
snapshot (200 objects), commit-restore-point and record-catalog; the signals step is what the
score-restore-point task does: read the app's history from the catalog, diff the volume against the
previous point's snapshot, score against the baseline, write the record and its catalog rows.
The first point is a full backup (its signals walk the whole tree once, for the extension histogram);
then ``--repeat`` incremental points, each after benchmarks/volume.py's daily change (or its revert).
``benchmarks/signals_cost.py`` measures the volume diff alone.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.signals_cost import prepare  # noqa: E402
from benchmarks.volume import apply_changes, revert_changes  # noqa: E402
from kubekeep.backup.volumes import export_directory  # noqa: E402
from kubekeep.catalog import Catalog  # noqa: E402
from kubekeep.repo.crypto import KdfParams  # noqa: E402
from kubekeep.repo.repository import Repository  # noqa: E402
from kubekeep.restorepoint import (  # noqa: E402
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    catalog_rows,
    manifest_stream,
    write_restore_point,
)
from kubekeep.restorepoint.ids import new_restore_point_id  # noqa: E402
from kubekeep.signals import CatalogHistory, SignalPolicy, compute_signals, record_signals  # noqa: E402
from kubekeep.signals.points import point_ref  # noqa: E402

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def _objects(namespace: str) -> list[dict[str, Any]]:
    kinds = [("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment")]
    return [{"apiVersion": api, "kind": kind, "metadata": {"name": f"{kind.lower()}-{i}", "namespace": namespace,
                                                            "uid": f"uid-{kind}-{i}"}, "data": {"k": "v" * 200}}
            for api, kind in kinds for i in range(50)]


def main() -> None:
    bench = prepare(__doc__, repeat=4, prefix="kk-signals-step-")
    args, work, volume, state, total = bench.args, bench.work, bench.volume, bench.state, bench.total
    storage, server = bench.storage, bench.server
    rows: list[dict[str, Any]] = []
    objects = _objects("bench")
    policy = SignalPolicy()
    try:
        repo = Repository.init(storage, passphrase="bench", kdf=KdfParams.cheap())
        catalog = Catalog(repo.storage, cache_dir=work / "catalog-cache", codec=repo.catalog_codec())
        changed = False
        for n in range(args.repeat + 1):
            if n:
                (revert_changes if changed else apply_changes)(volume, total)
                changed = not changed
                state.write_text("2" if changed else "1")
            finished = START + timedelta(days=n)
            # named as the backup flow names its points (the signals step finds the app's newest by name)
            rp_id = new_restore_point_id("bench", finished - timedelta(minutes=5))
            t, c = time.perf_counter(), time.process_time()
            vol = export_directory(repo, volume, namespace="bench", pvc="data", storage_class="standard",
                                   size_bytes=total, restore_point_id=rp_id)
            manifests = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(objects)},
                                    tags=[MANIFESTS_TAG, "app:bench"], metadata={"restore_point": rp_id,
                                                                                 "app": "bench", "cluster": "b"})
            record = RestorePointRecord(
                id=rp_id, app="bench", cluster="b", namespaces=["bench"],
                started_at=(finished - timedelta(minutes=5)).isoformat(), finished_at=finished.isoformat(),
                status="succeeded", location=repo.storage.url, manifest_snapshot=manifests.snapshot_id,
                object_count=len(objects), volumes=[vol])
            sid = write_restore_point(repo, record)
            point, object_rows, volume_rows = catalog_rows(repo, record, sid)
            catalog.add_restore_point(point, object_rows, volume_rows)
            backup_s, backup_cpu = time.perf_counter() - t, time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            signals = compute_signals(repo, CatalogHistory(catalog), point_ref(record), policy)
            record_signals(repo, catalog, signals)
            step_s, step_cpu = time.perf_counter() - t, time.process_time() - c
            volume_s = sum(v.seconds for v in signals.volumes)
            rows.append({"point": rp_id, "kind": "incremental" if n else "full", "backup_s": backup_s,
                         "backup_cpu_s": backup_cpu, "signals_step_s": step_s, "signals_step_cpu_s": step_cpu,
                         "volume_diff_s": volume_s, "score": signals.score, "suspect": signals.suspect,
                         "share": step_s / backup_s, "cpu_share": step_cpu / backup_cpu})
            _print(rows[-1])
        if changed:
            revert_changes(volume, total)
            state.write_text("1")
    finally:
        if server is not None:
            server.stop()
    incr = [r for r in rows if r["kind"] == "incremental"]
    for key, what in (("share", "wall-clock"), ("cpu_share", "CPU")):
        values = sorted(r[key] for r in incr) or [0.0]
        print(f"incremental {what} share: median {values[len(values) // 2] * 100:.2f} %, "
              f"worst {values[-1] * 100:.2f} %")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "storage": "s3" if args.s3 else "filesystem",
                                         "cpus": os.cpu_count(), "python": platform.python_version(),
                                         "rows": rows}, indent=1))


def _print(row: dict[str, Any]) -> None:
    print(f"{row['kind']:12s} backup {row['backup_s']:7.3f} s ({row['backup_cpu_s']:6.2f} s CPU)  signals step "
              f"{row['signals_step_s'] * 1000:7.1f} ms ({row['signals_step_cpu_s'] * 1000:6.1f} ms CPU; volume diff "
              f"{row['volume_diff_s'] * 1000:6.1f} ms)  share {row['share'] * 100:5.2f} % (CPU "
              f"{row['cpu_share'] * 100:5.2f} %)  score {row['score']:.1f}{' SUSPECT' if row['suspect'] else ''}")


if __name__ == "__main__":
    main()
