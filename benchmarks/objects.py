"""Benchmark: back up 10,000 objects across 100 namespaces through the backup flow, then restore them
through the restore flow onto a second, empty control plane (a migration).

Deterministic dataset on a fresh test-bed control plane: N namespaces, each
with ConfigMaps, Secrets, Services and ServiceAccounts whose contents derive
from their index. Times the whole flow (ephemeral Prefect API, filesystem
location), plus the collection alone, and prints a markdown section.

    python benchmarks/objects.py [--namespaces 100] [--per-namespace 100] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="kubekeep-bench-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def objects_for(ns: str, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        name = f"obj-{i:04d}"
        labels = {"bench": "yes", "shard": str(i % 7)}
        if kind == 0:
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns,
                        "labels": labels}, "data": {f"k{j}": f"{ns}-{i}-{j}" * 8 for j in range(8)}})
        elif kind == 1:
            out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
                        "labels": labels}, "stringData": {"token": f"secret-{ns}-{i}"}})
        elif kind == 2:
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns,
                        "labels": labels}, "spec": {"selector": {"app": name}, "ports": [{"port": 80 + i % 50}]}})
        else:
            out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns,
                        "labels": labels}})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--per-namespace", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None, help="Replace this benchmark's section in a markdown file.")
    args = ap.parse_args()

    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from flows.backup import backup
    from flows.restore import restore
    from kubekeep.backup.collect import CollectReport, collect
    from kubekeep.backup.scope import BackupScope
    from kubekeep.testbed.controlplane import ControlPlane

    total = args.namespaces * args.per_namespace
    with ControlPlane(scheduler=False, kwok=False, provisioner=False) as cp, cp.cluster() as cluster:
        names = [f"bench-{n:03d}" for n in range(args.namespaces)]
        t0 = time.monotonic()

        def populate(ns: str) -> None:
            cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            for obj in objects_for(ns, args.per_namespace):
                cluster.create(obj)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(populate, names))
        create_s = time.monotonic() - t0
        print(f"created {total} objects in {create_s:.1f}s", file=sys.stderr)

        selection = BackupScope(namespaces=("bench-*",))
        t0 = time.monotonic()
        report = CollectReport()
        listed = sum(1 for _ in collect(cluster, selection, report))
        collect_s = time.monotonic() - t0

        with tempfile.TemporaryDirectory() as loc:
            location = LocationProfile(kind="filesystem", path=loc)
            key = EncryptionKey(passphrase="bench", cheap_kdf=True)
            conn = ClusterConnection(name="bench", kubeconfig_path=str(cp.kubeconfig_path))
            backup(app="warmup", namespaces=["bench-000"], location=location, encryption_key=key, cluster=conn,
                   init=True)
            t0 = time.monotonic()
            rp = backup(app="bench", namespaces=["bench-*"], location=location, encryption_key=key, cluster=conn)
            flow_s = time.monotonic() - t0
            with ControlPlane(scheduler=False, kwok=False, provisioner=False) as target:
                t0 = time.monotonic()
                report = restore(location=location, encryption_key=key, restore_point=rp,
                                 cluster=ClusterConnection(name="target", kubeconfig_path=str(target.kubeconfig_path)))
                restore_s = time.monotonic() - t0
                with target.cluster() as tc:
                    restored = sum(1 for _ in tc.list_pages(tc.resource_for("v1", "ConfigMap"),
                                                            label_selector="bench=yes"))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    section = "\n".join([
        "## Kubernetes objects: backup and restore of 10,000 objects across 100 namespaces",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; test-bed kube-apiserver on 127.0.0.1, filesystem location, "
        "ephemeral Prefect API (started before the timed run by a warm-up backup).",
        "",
        f"Command: `python benchmarks/objects.py --namespaces {args.namespaces} "
        f"--per-namespace {args.per_namespace}`",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| objects created (ConfigMaps, Secrets, Services, ServiceAccounts) | {total} | |",
        f"| objects in the restore point (incl. namespaces, default SAs, root CA ConfigMaps) | {listed} | |",
        f"| collection alone (discovery + paged lists) | {collect_s:.2f} s | |",
        f"| **whole backup flow** (collect, encrypt, store, commit, catalog) | **{flow_s:.2f} s** | < 15 s |",
        f"| **whole restore flow** onto an empty second control plane (plan, apply, report) "
        f"| **{restore_s:.2f} s** | < 60 s |",
        f"| restore outcome | {report['status']}: {report['counts']} | |",
        f"| ConfigMaps found on the target afterwards | {restored} of {total // 4} | |",
        f"| peak RSS of the benchmark process | {peak_mib:.0f} MiB | |",
        f"| restore point | `{rp}` | |",
        "",
    ])
    print(section)
    if args.out:
        _replace_section(args.out, section)
    return 0


def _replace_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading = section.splitlines()[0]
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[nxt + 1:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
