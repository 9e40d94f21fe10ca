"""Benchmark: the catalog question "which restore points of app X hold object Y" over 1M object rows.

A catalog on a filesystem location with ``--points`` restore points of ``--apps`` apps, each point
holding ``--objects`` object rows (default 100 x 10,000 = 1,000,000 rows), written the way backups write
them (one objects file per restore point, sorted by kind/namespace/name). The query is
:func:`kubekeep.catalog.restore_points_containing` with ``app`` and the object's kind, namespace and name,
timed warm (catalog files in the local cache, the usual case for a worker that queried before) and cold
(a new cache directory: every file fetched from the location first), before and after ``compact()``.
Process CPU time is printed next to wall time: the machine is shared.

    python benchmarks/catalog_query.py [--points 100] [--objects 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from peers import loadavg  # noqa: E402

from kubekeep.catalog import Catalog, RestorePoint, RestorePointObject, restore_points_containing  # noqa: E402
from kubekeep.repo.storage.filesystem import FilesystemStorage  # noqa: E402

KINDS = ("ConfigMap", "Secret", "Service", "ServiceAccount")


def point(i: int, app: str) -> RestorePoint:
    started = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    return RestorePoint(id=f"rp-{i:05d}-{app}", app=app, cluster="prod", namespaces=(app,), started_at=started,
                        finished_at=started + timedelta(minutes=1), status="succeeded", status_reason=None,
                        snapshot_id=f"snap-{i:05d}", location="file:///bench", policy="hourly", object_count=0,
                        volume_count=0, logical_bytes=0, stored_bytes=0, retain_until=None, tags={})


def objects(point_id: str, app: str, count: int, generation: int) -> list[RestorePointObject]:
    # 100 namespaces of an app, objects named by index; contents change a little per backup
    return [RestorePointObject(point_id, "", "v1", KINDS[i % 4], f"{app}-ns-{i % 100:03d}", f"obj-{i:06d}",
                               f"h{(i * 7 + generation * (i % 13 == 0)) % 1000003:x}", 1000 + i % 500, f"u{i}")
            for i in range(count)]


def timed(fn, repeat: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    walls, cpus, found = [], [], 0
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        found = len(fn())
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return median(walls), median(cpus), found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--apps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the generated catalog here and reuse it on the next run (writing 1M rows is slow)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kubekeep-catalog-bench-"))
    try:
        fresh = not (work / "location").exists()
        storage = FilesystemStorage(str(work / "location"), create=fresh)
        for old in work.glob("cold-*"):
            shutil.rmtree(old)
        catalog = Catalog(storage, cache_dir=work / "cache")
        apps = [f"app{a}" for a in range(args.apps)]
        if fresh:
            t0 = time.perf_counter()
            for i in range(args.points):
                app = apps[i % len(apps)]
                p = point(i, app)
                catalog.add_restore_point(p, objects(p.id, app, args.objects, i))
            rows = args.points * args.objects
            print(f"wrote {rows:,} object rows in {args.points} restore points ({len(apps)} apps) in "
                  f"{time.perf_counter() - t0:.1f}s; load {loadavg():.1f}")

        def ask() -> list[object]:
            return list(restore_points_containing(catalog, app="app1", kind="ConfigMap",
                                                  namespace="app1-ns-040", name="obj-004240"))

        for label in ("small files (as backups write them)", "after compact()"):
            if label.startswith("after"):
                # a copy: the catalog as backups write it stays in --work for the next run
                copy = work / "compacted"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.rmtree(work / "cache-compacted", ignore_errors=True)
                shutil.copytree(work / "location", copy)
                storage = FilesystemStorage(str(copy))
                catalog = Catalog(storage, cache_dir=work / "cache-compacted")
                t0 = time.perf_counter()
                catalog.compact()
                print(f"compact(): {time.perf_counter() - t0:.1f}s")
            cold_cache = work / f"cold-{label[:5]}"
            cold = Catalog(storage, cache_dir=cold_cache)
            w, c = time.perf_counter(), time.process_time()
            found = len(list(restore_points_containing(cold, app="app1", kind="ConfigMap",
                                                       namespace="app1-ns-040", name="obj-004240")))
            cold_w, cold_c = time.perf_counter() - w, time.process_time() - c
            ask()  # warm the cache of `catalog`
            warm_w, warm_c, found = timed(ask, args.repeat)
            files = len(list(storage.list("catalog/v1/restore_point_objects/")))
            points_files = len(list(storage.list("catalog/v1/restore_points/")))
            print(f"{label}: {files} objects files, {points_files} restore points files; "
                  f"warm {warm_w * 1000:.0f} ms (cpu {warm_c * 1000:.0f} ms), "
                  f"cold {cold_w * 1000:.0f} ms (cpu {cold_c * 1000:.0f} ms); {found} restore points; "
                  f"load {loadavg():.1f}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
