"""The worker's memory does not grow with the number of objects (issue 15).

The same backup and restore flows run in a fresh worker process (as a deployment worker runs them) for a
small and a 4x larger set of objects; the worker's peak RSS (VmHWM, reset between the two flows) may grow
by far less than the data grew. The objects are fat ConfigMaps (so that holding every manifest at once is
plain to see at a count the test bed creates in seconds), spread over namespaces of the same size: the
flows may hold one namespace (or one batch) at a time, never every object.

A test, not a benchmark: a small count ratio and a generous limit. ``benchmarks/objects.py`` measures
10k-100k objects.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubekeep.backup.collect import CLUSTER_WIDE_LIST_THRESHOLD
from kubekeep.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
PER_NAMESPACE = 15
OBJECT_BYTES = 192 * 1024
#: namespaces; both counts above the collector's cluster-wide threshold, so both runs list the same way with
#: the same page sizes (with 2 namespaces the small run listed each namespace, one 2.9 MiB page each, and the
#: large run cluster-wide in ~4-5 MiB pages: a fixed difference in page size that read as "growth")
SMALL, LARGE = 4, 16
#: growth of the peak RSS allowed from SMALL to LARGE namespaces; the manifests themselves grow by
#: (LARGE - SMALL) * PER_NAMESPACE * OBJECT_BYTES = 33.8 MiB, and a worker that holds them all (a few
#: copies: decoded, sanitized, transformed, read back) grows by several times that. A worker that holds
#: one namespace at a time still grows a little per namespace (Prefect's task runs, the report): 7 MiB
#: on a quiet machine, 12.4 MiB in a CI run beside another test bed (with 96 KiB objects and a 12 MiB
#: limit, too close); the objects are large enough that the limit sits well between the two
GROWTH_LIMIT = 16 * 2**20


def _fat_config_map(ns: str, i: int) -> dict[str, Any]:
    # distinct contents per object (nothing is shared between copies), compressible like real config
    line = f"{ns}/{i:04d} " + uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{i}").hex + "\n"
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"fat-{i:04d}", "namespace": ns, "labels": {"memtest": "yes"}},
            "data": {"payload": (line * (OBJECT_BYTES // len(line) + 1))[:OBJECT_BYTES]}}


def _populate(cluster: Cluster, namespaces: list[str]) -> None:
    def one(ns: str) -> None:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i in range(PER_NAMESPACE):
            cluster.create(_fat_config_map(ns, i))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, namespaces))


def _vmhwm() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _reset_vmhwm() -> None:
    # the warm-up's garbage freed and handed back first: otherwise the base counts free pages glibc kept
    # (more or fewer from one process to the next: two bases differed by 13.7 MiB), which the measured
    # flow then reuses without a rise in RSS, and "peak - base" varies by as much
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:  # "5": reset the peak RSS to the current RSS
        fh.write("5")


def worker(spec_path: str) -> None:
    """A worker process runs one measured flow (backup, or restore under new namespace names) after a small
    warm-up flow of the same kind (imports, Prefect client, the repository's first open); prints the peaks."""
    spec = json.loads(Path(spec_path).read_text())
    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from flows.backup import backup
    from flows.restore import restore

    location = LocationProfile(kind="filesystem", path=spec["location"])
    key = EncryptionKey(passphrase="memory", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=spec["kubeconfig"])
    out: dict[str, Any] = {}
    if spec["flow"] == "backup":
        out["warmup"] = backup(app="warmup", namespaces=[spec["warmup"]], location=location, encryption_key=key,
                               cluster=conn, init=True)
        _reset_vmhwm()
        out["base"] = _vmhwm()
        out["restore_point"] = backup(app=spec["app"], namespaces=spec["namespaces"], location=location,
                                      encryption_key=key, cluster=conn)
    else:
        restore(location=location, encryption_key=key, cluster=conn, restore_point=spec["warmup"],
                namespace_map={spec["warmup_namespace"]: f"{spec['warmup_namespace']}-w"})
        _reset_vmhwm()
        out["base"] = _vmhwm()
        report = restore(location=location, encryption_key=key, cluster=conn, restore_point=spec["restore_point"],
                         namespace_map={ns: f"{ns}-r" for ns in spec["namespaces"]})
        out.update(created=report["counts"].get("created", 0), failed=report["failed"])
    out["peak"] = _vmhwm()
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # the peak is measured; leave without waiting for Prefect's background workers


def _run_worker(prefect_api: str, tmp: Path, tag: str, spec: dict[str, Any]) -> dict[str, Any]:
    path = tmp / f"{tag}.json"
    path.write_text(json.dumps(spec))
    # two malloc arenas: glibc otherwise gives threads that start while another holds the main arena
    # (likelier under load) arenas of their own, whose free pages stay resident: +/-10 MiB of noise in
    # the peak from one process to the next (one backup pair measured +15.5 and then +3.8 MiB)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "WARNING",
           "MALLOC_ARENA_MAX": "2"}
    result = subprocess.run([sys.executable, "-c", "import sys; from tests.integration.test_memory_scale import "
                             "worker; worker(sys.argv[1])", str(path)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _growth(small: dict[str, Any], large: dict[str, Any]) -> int:
    # the peaks compared as they are: both workers ran the same warm-up, so their peaks differ only by the
    # measured flow; the base (RSS after the warm-up) varied by up to 16 MiB from one worker to the next
    # even after malloc_trim, and subtracting it added that noise (two runs of one commit: -9.4 and +7.1)
    return int(large["peak"] - small["peak"])


def test_worker_memory_does_not_grow_with_the_object_count(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                                          namespace: str, tmp_path: Path) -> None:
    assert SMALL > CLUSTER_WIDE_LIST_THRESHOLD, "both runs must list the same way (see SMALL)"
    prefix = f"mem-{uuid.uuid4().hex[:5]}"
    small = [f"{prefix}-s{i}" for i in range(SMALL)]
    large = [f"{prefix}-l{i}" for i in range(LARGE)]
    _populate(cluster, small + large)
    peaks: dict[str, dict[str, Any]] = {}
    try:
        for tag, names in (("small", small), ("large", large)):
            common = {"location": str(tmp_path / f"loc-{tag}"), "kubeconfig": str(test_cluster.kubeconfig),
                      "namespaces": names, "app": f"mem-{tag}", "warmup_namespace": namespace}
            b = _run_worker(prefect_api, tmp_path, f"{tag}-backup", {**common, "flow": "backup", "warmup": namespace})
            r = _run_worker(prefect_api, tmp_path, f"{tag}-restore", {**common, "flow": "restore",
                                                                      "warmup": b["warmup"],
                                                                      "restore_point": b["restore_point"]})
            peaks[f"{tag}-backup"], peaks[f"{tag}-restore"] = b, r
            assert not r["failed"] and r["created"] >= len(names) * PER_NAMESPACE, r
    finally:
        for ns in [*small, *large, f"{namespace}-w"]:
            for name in (ns, f"{ns}-r"):
                _delete_quietly(cluster, name)
    mib = 2**20
    detail = {tag: {k: round(v / mib, 1) for k, v in p.items() if k in ("base", "peak")} for tag, p in peaks.items()}
    print(f"worker peaks (MiB): {detail}")  # shown with -s: the figures docs/benchmarks.md quotes
    for flow in ("backup", "restore"):
        growth = _growth(peaks[f"small-{flow}"], peaks[f"large-{flow}"])
        assert growth <= GROWTH_LIMIT, (
            f"{flow}: the worker's peak grew by {growth / mib:.1f} MiB for {LARGE // SMALL}x the objects "
            f"(limit {GROWTH_LIMIT / mib:.0f} MiB; MiB: {detail})")


def _delete_quietly(cluster: Cluster, name: str) -> None:
    from kubekeep.cluster import ApiError

    try:
        cluster.delete("v1", "Namespace", name)
    except ApiError as exc:
        if exc.status != 404:
            raise
