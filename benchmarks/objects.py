"""Benchmark: Kubernetes objects — Kubekeep's backup and restore flows against Velero, in the same run.

A deterministic dataset on a fresh test-bed control plane (N namespaces, each with ConfigMaps,
Secrets, Services and ServiceAccounts whose contents derive from their index) is backed up, then
restored onto an empty second control plane (a migration):

- **Kubekeep**: the ``backup`` and ``restore`` flows, each run in a fresh worker process (this
  file's ``worker`` mode) against a real Prefect API (``prefect server start``, a separate
  process) and the same SeaweedFS as Velero (or ``--location fs``). The worker's peak RSS is its
  own (GNU time), apart from the Prefect API and from creating the objects.
- **Velero** (built from Go modules by ``benchmarks/build-peers.sh``): ``velero server`` runs as a
  local process against the test bed with the AWS plugin, a BackupStorageLocation on the
  SeaweedFS, its CRDs from ``velero install --crds-only --dry-run -o yaml`` and a ``velero``
  Deployment with 0 replicas (its restore item action looks that Deployment up). Backup on the
  source cluster; restore by a second ``velero server`` on another empty control plane that syncs
  the backup from the bucket. Peak RSS is each server's (and plugin's) VmHWM.

    python benchmarks/objects.py [--namespaces 100] [--per-namespace 100] [--out docs/benchmarks.md]
    python benchmarks/objects.py --scale 100k          # 1,000 namespaces x 100 objects
    python benchmarks/objects.py --no-velero --profile /tmp/prof   # py-spy + tracemalloc of the worker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from peers import (  # noqa: E402
    S3Server,
    build_seconds,
    fmt_bytes,
    loadavg,
    machine_info,
    peer_binary,
    replace_section,
    run,
    say,
)

SECTION = "## Kubernetes objects: Kubekeep vs Velero"
VELERO_NS = "velero"
PASSPHRASE = "bench"


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


def count_bench_objects(kubeconfig: Path) -> dict[str, int]:
    from kubekeep.cluster import Cluster

    with Cluster.from_kubeconfig(str(kubeconfig)) as c:
        return {kind: sum(1 for _ in c.list_pages(c.resource_for("v1", kind), label_selector="bench=yes"))
                for kind in ("ConfigMap", "Secret", "Service", "ServiceAccount")}


# ---- Kubekeep: the flows in a worker process ---------------------------------------------------------

def worker_main(argv: list[str]) -> int:
    """``objects.py worker SPEC.json``: run one flow, print its result as JSON on the last line."""
    spec = json.loads(Path(argv[0]).read_text())
    profile_mem = spec.get("tracemalloc")
    sampler = None
    if profile_mem:
        from profiling import PeakSampler

        sampler = PeakSampler(profile_mem)
        sampler.start()
    from blocks import ClusterConnection, EncryptionKey, LocationProfile

    location = LocationProfile.model_validate(spec["location"])
    key = EncryptionKey(passphrase=PASSPHRASE, cheap_kdf=True)
    conn = ClusterConnection(name=spec["cluster_name"], kubeconfig_path=spec["kubeconfig"])
    t0 = time.monotonic()
    if spec["flow"] == "backup":
        from flows.backup import backup

        result: Any = backup(app=spec["app"], namespaces=spec["namespaces"], location=location,
                             encryption_key=key, cluster=conn, init=bool(spec.get("init")))
        out = {"restore_point": result}
    else:
        from flows.restore import restore

        report = restore(location=location, encryption_key=key, restore_point=spec["restore_point"], cluster=conn)
        out = {"status": report["status"], "counts": report["counts"]}
    out["flow_seconds"] = time.monotonic() - t0
    if sampler is not None:
        sampler.stop()
    _drain_prefect()
    print(json.dumps(out))
    return 0


def _drain_prefect() -> None:
    """Logs and events still queued reach the API before the worker exits."""
    try:
        sys.path.insert(0, str(HERE.parent))
        from flows.runtime import drain_prefect_workers

        drain_prefect_workers()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


class KubekeepWorker:
    def __init__(self, scratch: Path, api_url: str, location: dict[str, Any], profile_dir: Path | None) -> None:
        self.scratch = scratch
        self.location = location
        self.profile_dir = profile_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(scratch / "prefect-home"),
                         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                         "PREFECT_LOGGING_LEVEL": "WARNING",
                         "PYTHONPATH": f"{HERE.parent}{os.pathsep}{HERE}"})

    def _cmd(self, spec: dict[str, Any], tag: str) -> list[str]:
        spec_path = self.scratch / f"{tag}.json"
        spec_path.write_text(json.dumps({"location": self.location, **spec}))
        return [sys.executable, str(HERE / "objects.py"), "worker", str(spec_path)]

    def flow(self, name: str, tag: str, *, pyspy: int = 0, **spec: Any) -> dict[str, Any]:
        """Run one flow in a fresh worker process; its result, wall time, CPU time and peak RSS. ``pyspy``: a
        sampling rate (Hz): the timed run itself runs under ``py-spy record`` (raw stacks into the profile
        directory; the peak RSS stays the worker's, the largest process of the tree)."""
        cmd = self._cmd({"flow": name, **spec}, tag)
        if pyspy and self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            cmd = ["py-spy", "record", "-r", str(pyspy), "-f", "raw", "-o",
                   str(self.profile_dir / f"{tag}.pyspy.txt"), "--", *cmd]
        r = run(cmd, self.env)
        # the worker's result is its last JSON line (py-spy, when it wraps the worker, prints after it)
        last = next(ln for ln in reversed(r.output.strip().splitlines()) if ln.startswith("{"))
        result: dict[str, Any] = json.loads(last)
        result.update(wall=r.seconds, peak_rss=r.peak_rss, cpu=r.cpu, load=r.load)
        return result

    def profile(self, tool: str, name: str, tag: str, **spec: Any) -> float:
        """Run one flow under a profiler: ``py-spy`` (CPU samples, raw collapsed stacks) or ``tracemalloc``
        (the Python heap at its peak); the output goes to the profile directory. Returns the wall time."""
        assert self.profile_dir is not None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spec = {"flow": name, **spec}
        if tool == "tracemalloc":
            spec["tracemalloc"] = str(self.profile_dir / f"{tag}.tracemalloc.txt")
            cmd = self._cmd(spec, tag)
        else:
            cmd = ["py-spy", "record", "-r", "100", "-f", "raw", "-o", str(self.profile_dir / f"{tag}.pyspy.txt"),
                   "--", *self._cmd(spec, tag)]
        return run(cmd, self.env).seconds


# ---- Velero ----------------------------------------------------------------------------------------

class Velero:
    """``velero server`` as a local process against one test-bed control plane."""

    def __init__(self, kubeconfig: Path, workdir: Path, s3: Any, bucket: str, qps: int) -> None:
        from kubekeep.process import free_port

        self.binary = peer_binary("velero")
        self.plugin = peer_binary("velero-plugin-for-aws")
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.s3 = s3
        self.bucket = bucket
        self.qps = qps
        self.ports = (free_port(), free_port())
        self.process: Any = None
        self._plugin_peak = 0
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plugin_dir = self.workdir / "plugins"
        self.plugin_dir.mkdir(exist_ok=True)
        link = self.plugin_dir / "velero-plugin-for-aws"
        if not link.exists():
            link.symlink_to(self.plugin)
        self.env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                    "AWS_REGION": s3.region, "VELERO_NAMESPACE": VELERO_NS, "HOME": str(self.workdir)}

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "version", "--client-only"], capture_output=True, text=True,
                             check=False).stdout
        v = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Version" in ln), "?")
        return (f"Velero {v} (built in {build_seconds(self.binary)}), velero-plugin-for-aws "
                f"(built in {build_seconds(self.plugin)}), --client-qps {self.qps} --client-burst {2 * self.qps}")

    def install(self) -> None:
        """CRDs, the namespace, the 0-replica Deployment and the BackupStorageLocation."""
        import yaml

        from kubekeep.cluster import ApiError, Cluster
        from kubekeep.testbed import crds

        text = subprocess.run([str(self.binary), "install", "--crds-only", "--dry-run", "-o", "yaml"],
                              capture_output=True, text=True, check=True, env=self.env).stdout
        docs: list[dict[str, Any]] = []
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            docs += doc.get("items", []) if doc.get("kind") == "List" else [doc]
        crd_docs = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        with Cluster.from_kubeconfig(str(self.kubeconfig)) as c:
            crds.install(c, crd_docs, timeout=120)
            for obj in (
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": VELERO_NS}},
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "velero", "namespace": VELERO_NS},
                 "spec": {"replicas": 0, "selector": {"matchLabels": {"deploy": "velero"}},
                          "template": {"metadata": {"labels": {"deploy": "velero"}},
                                       "spec": {"containers": [{"name": "velero",
                                                                "image": "velero/velero:v1.18.3"}]}}}},
                {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
                 "metadata": {"name": "default", "namespace": VELERO_NS},
                 "spec": {"provider": "aws", "default": True,
                          "objectStorage": {"bucket": self.bucket, "prefix": "velero"},
                          "config": {"region": self.s3.region, "s3ForcePathStyle": "true",
                                     "s3Url": self.s3.endpoint}}},
            ):
                try:
                    c.create(obj)
                except ApiError as exc:
                    if exc.status != 409:
                        raise

    def start(self) -> None:
        from kubekeep.process import ManagedProcess

        metrics, profiler = self.ports
        self.process = ManagedProcess("velero-server", [
            str(self.binary), "server", f"--kubeconfig={self.kubeconfig}", f"--namespace={VELERO_NS}",
            f"--plugin-dir={self.plugin_dir}", f"--metrics-address=127.0.0.1:{metrics}",
            f"--profiler-address=127.0.0.1:{profiler}", "--uploader-type=kopia",
            "--backup-sync-period=5s", "--store-validation-frequency=10s",
            f"--client-qps={self.qps}", f"--client-burst={2 * self.qps}", "--log-level=info",
        ], self.workdir, env=self.env, cwd=self.workdir)
        self.wait(lambda c: (c.get_or_none("velero.io/v1", "BackupStorageLocation", "default", namespace=VELERO_NS)
                             or {}).get("status", {}).get("phase") == "Available", 120, "BackupStorageLocation")

    def wait(self, check: Any, timeout: float, what: str) -> None:
        from kubekeep.cluster import Cluster

        deadline = time.monotonic() + timeout
        with Cluster.from_kubeconfig(str(self.kubeconfig)) as c:
            while not check(c):
                if self.process is not None and not self.process.alive():
                    raise RuntimeError(f"velero server exited:\n{self.process.log_tail(40)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"velero: {what} not ready within {timeout:.0f}s\n"
                                       f"{self.process.log_tail(40) if self.process else ''}")
                time.sleep(0.5)

    def run_cr(self, kind: str, name: str, spec: dict[str, Any], timeout: float) -> tuple[float, dict[str, Any]]:
        """Create a Backup or Restore and wait for its final phase; its wall time and status."""
        from kubekeep.cluster import Cluster

        final = {"Completed", "PartiallyFailed", "Failed", "FailedValidation"}
        with Cluster.from_kubeconfig(str(self.kubeconfig)) as c:
            t0 = time.monotonic()
            c.create({"apiVersion": "velero.io/v1", "kind": kind,
                      "metadata": {"name": name, "namespace": VELERO_NS}, "spec": spec})
            while True:
                obj = c.get_or_none("velero.io/v1", kind, name, namespace=VELERO_NS) or {}
                status = obj.get("status", {})
                if status.get("phase") in final:
                    return time.monotonic() - t0, status
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"velero {kind} {name}: still {status.get('phase')} after {timeout:.0f}s")
                self.process.check_alive()
                self._track_plugins()
                time.sleep(0.5)

    def _track_plugins(self) -> None:
        """Plugin processes live only while a backup or restore runs: read their peak while they do."""
        assert self.process is not None
        for pid in _children(self.process.proc.pid):
            self._plugin_peak = max(self._plugin_peak, _vmhwm(pid))

    def peak_rss(self) -> dict[str, int]:
        """VmHWM (peak RSS) of the server, and the largest of its plugin processes (sampled), in bytes."""
        assert self.process is not None
        self._track_plugins()
        return {"server": _vmhwm(self.process.proc.pid), "plugins": self._plugin_peak}

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def _vmhwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


# ---- the run -----------------------------------------------------------------------------------------

def _kubekeep_location(kind: str, scratch: Path, weed: Any) -> dict[str, Any]:
    """Kubekeep's location for the run: a bucket of ``weed`` (SeaweedFS) for ``s3``, else a directory."""
    if kind == "s3":
        s3 = S3Server(weed.endpoint_url, weed.access_key, weed.secret_key, weed.region)
        return {"kind": "s3", "bucket": weed.create_bucket("kubekeep-objects"), "prefix": "bench/",
                "endpoint_url": s3.endpoint, "region": s3.region,
                "access_key_id": s3.access_key, "secret_access_key": s3.secret_key}
    (scratch / "location").mkdir()
    return {"kind": "filesystem", "path": str(scratch / "location")}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        return worker_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--per-namespace", type=int, default=100)
    ap.add_argument("--scale", choices=["10k", "30k", "100k"], default=None,
                    help="shorthand: 100/300/1000 namespaces x 100 objects")
    ap.add_argument("--no-velero", action="store_true", help="Kubekeep only")
    ap.add_argument("--no-kubekeep", action="store_true", help="Velero only")
    ap.add_argument("--velero-qps", type=int, default=1000, help="velero server --client-qps (burst: twice)")
    ap.add_argument("--location", choices=["s3", "fs"], default="s3", help="Kubekeep's location kind")
    ap.add_argument("--profile", type=Path, default=None,
                    help="also profile Kubekeep's worker: py-spy (CPU) and tracemalloc (memory) into this dir")
    ap.add_argument("--profile-tools", default="tracemalloc,py-spy",
                    help="with --profile: which profilers (comma-separated: tracemalloc, py-spy)")
    ap.add_argument("--profile-flows", default="backup,restore",
                    help="with --profile: which flows are profiled (comma-separated: backup, restore)")
    ap.add_argument("--out", type=Path, default=None, help="Replace this benchmark's section in a markdown file.")
    ap.add_argument("--scales", default=None,
                    help="growth mode, Kubekeep only: e.g. 10k,100k — each scale's namespaces are added to the same "
                         "source, backed up and restored onto a new empty control plane, in one run")
    ap.add_argument("--no-restore", action="store_true",
                    help="growth mode: back up each scale, restore none (the backup's growth alone, in far less time)")
    ap.add_argument("--workers", type=int, default=8, help="threads creating the dataset (bounded concurrency)")
    ap.add_argument("--results", type=Path, default=None,
                    help="growth mode: the results as JSON, rewritten after every step (a partial run keeps them)")
    ap.add_argument("--pyspy-rate", type=int, default=0,
                    help="growth mode with --profile: run the timed flows of the largest scale under py-spy at this "
                         "rate (Hz)")
    args = ap.parse_args()
    if args.scales:
        return scales_main(args)
    if args.scale:
        args.namespaces, args.per_namespace = {"10k": 100, "30k": 300, "100k": 1000}[args.scale], 100


    from kubekeep.testbed.controlplane import ControlPlane
    from kubekeep.testbed.seaweedfs import SeaweedFS
    from tests.plugins.prefect import prefect_server

    total = args.namespaces * args.per_namespace
    names = [f"bench-{n:04d}" for n in range(args.namespaces)]
    res: dict[str, Any] = {"loads": []}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubekeep-objbench-")))
        weed = stack.enter_context(SeaweedFS(data_dir=scratch / "seaweedfs"))  # Velero's storage too
        s3 = S3Server(weed.endpoint_url, weed.access_key, weed.secret_key, weed.region)
        location = _kubekeep_location(args.location, scratch, weed)
        api_url = stack.enter_context(prefect_server())
        worker = KubekeepWorker(scratch, api_url, location, args.profile)
        cp = stack.enter_context(ControlPlane(scheduler=False, kwok=False, provisioner=False))
        with cp.cluster() as cluster:
            t0 = time.monotonic()

            def populate(ns: str) -> None:
                cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                for obj in objects_for(ns, args.per_namespace):
                    cluster.create(obj)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(populate, names))
            res["create_s"] = time.monotonic() - t0
            say(f"created {total} objects in {res['create_s']:.1f}s")

            from kubekeep.backup.collect import CollectReport, collect
            from kubekeep.backup.scope import BackupScope

            t0 = time.monotonic()
            res["listed"] = sum(1 for _ in collect(cluster, BackupScope(namespaces=("bench-*",)), CollectReport()))
            res["collect_s"] = time.monotonic() - t0

        conn = {"kubeconfig": str(cp.kubeconfig_path), "cluster_name": "source"}
        if not args.no_kubekeep:
            # Kubekeep: a warm-up flow run (first registration of flows/blocks with the API), then the timed ones
            worker.flow("backup", "warmup", app="warmup", namespaces=[names[0]], init=True, **conn)
            res["loads"].append(loadavg())
            kb = worker.flow("backup", "kubekeep-backup", app="bench", namespaces=["bench-*"], **conn)
            say(f"Kubekeep backup: flow {kb['flow_seconds']:.1f}s, worker {kb['wall']:.1f}s, "
                f"rss {fmt_bytes(kb['peak_rss'])}")
            res["kubekeep_backup"] = kb
            with ControlPlane(scheduler=False, kwok=False, provisioner=False) as target:
                tconn = {"kubeconfig": str(target.kubeconfig_path), "cluster_name": "target"}
                res["loads"].append(loadavg())
                kr = worker.flow("restore", "kubekeep-restore", restore_point=kb["restore_point"], **tconn)
                kr["found"] = count_bench_objects(target.kubeconfig_path)
                say(f"Kubekeep restore: flow {kr['flow_seconds']:.1f}s, worker {kr['wall']:.1f}s, "
                    f"rss {fmt_bytes(kr['peak_rss'])}, found {kr['found']}")
                res["kubekeep_restore"] = kr
            if args.profile is not None:
                # profiled runs come after the timed ones; each restore goes onto its own empty control plane
                flows = args.profile_flows.split(",")
                for tool in args.profile_tools.split(","):
                    if "backup" in flows:
                        s = worker.profile(tool, "backup", f"kubekeep-backup-{total}", app="bench-prof",
                                           namespaces=["bench-*"], **conn)
                        say(f"  {tool} run of the backup: {s:.1f}s")
                    if "restore" not in flows:
                        continue
                    with ControlPlane(scheduler=False, kwok=False, provisioner=False) as target:
                        s = worker.profile(tool, "restore", f"kubekeep-restore-{total}",
                                           restore_point=kb["restore_point"], kubeconfig=str(target.kubeconfig_path),
                                           cluster_name="target")
                        say(f"  {tool} run of the restore: {s:.1f}s")

        if not args.no_velero:
            v_bucket = weed.create_bucket("velero")
            velero = Velero(cp.kubeconfig_path, scratch / "velero-source", s3, v_bucket, args.velero_qps)
            res["velero_version"] = velero.version()
            velero.install()
            velero.start()
            try:
                res["loads"].append(loadavg())
                secs, status = velero.run_cr("Backup", "bench", {
                    "includedNamespaces": names, "snapshotVolumes": False, "defaultVolumesToFsBackup": False,
                    "storageLocation": "default", "ttl": "720h0m0s"}, timeout=3600)
                res["velero_backup"] = {"seconds": secs, "status": status, "rss": velero.peak_rss()}
                say(f"Velero backup: {secs:.1f}s {status.get('phase')} {status.get('progress')} "
                    f"rss {res['velero_backup']['rss']}")
            finally:
                velero.stop()
            with ControlPlane(scheduler=False, kwok=False, provisioner=False) as target:
                vt = Velero(target.kubeconfig_path, scratch / "velero-target", s3, v_bucket, args.velero_qps)
                vt.install()
                vt.start()
                try:
                    vt.wait(lambda c: (c.get_or_none("velero.io/v1", "Backup", "bench", namespace=VELERO_NS)
                                       or {}).get("status", {}).get("phase") == "Completed", 300, "backup sync")
                    res["loads"].append(loadavg())
                    secs, status = vt.run_cr("Restore", "bench", {"backupName": "bench"}, timeout=7200)
                    rss = vt.peak_rss()
                    found = count_bench_objects(target.kubeconfig_path)
                    res["velero_restore"] = {"seconds": secs, "status": status, "rss": rss, "found": found}
                    say(f"Velero restore: {secs:.1f}s {status.get('phase')} rss {rss} found {found}")
                finally:
                    vt.stop()

    section = render(args, total, res)
    print(section)
    if args.out:
        replace_section(args.out, section)
    return 0


SCALES = {"1k": 10, "10k": 100, "30k": 300, "100k": 1000}


def _pattern(count: int) -> list[str]:
    """Namespace patterns selecting bench-0000 .. bench-{count-1}: a glob when it matches exactly."""
    if count == 1000:
        return ["bench-*"]
    if count % 100 == 0 and count < 1000:
        return [f"bench-0{h}*" for h in range(count // 100)]
    return [f"bench-{n:04d}" for n in range(count)]


def scales_main(args: argparse.Namespace) -> int:
    """Kubekeep at several object counts in one run: the growth of time and of the worker's peak RSS."""

    from kubekeep.testbed.controlplane import ControlPlane
    from kubekeep.testbed.seaweedfs import SeaweedFS
    from tests.plugins.prefect import prefect_server

    scales = sorted(args.scales.split(","), key=lambda s: SCALES[s])
    res: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
                           "location": args.location, "workers": args.workers, "scales": {}}

    def save() -> None:
        if args.results:
            args.results.write_text(json.dumps(res, indent=1, default=str))

    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubekeep-objbench-")))
        weed = (stack.enter_context(SeaweedFS(data_dir=scratch / "seaweedfs")) if args.location == "s3"
                else None)
        location = _kubekeep_location(args.location, scratch, weed)
        api_url = stack.enter_context(prefect_server())
        worker = KubekeepWorker(scratch, api_url, location, args.profile)
        cp = stack.enter_context(ControlPlane(scheduler=False, kwok=False, provisioner=False))
        conn = {"kubeconfig": str(cp.kubeconfig_path), "cluster_name": "source"}
        created = 0
        for n, scale in enumerate(scales):
            count = SCALES[scale]
            total = count * args.per_namespace
            row: dict[str, Any] = res["scales"].setdefault(scale, {"namespaces": count, "objects": total})
            names = [f"bench-{i:04d}" for i in range(created, count)]
            with cp.cluster() as cluster:
                row["create_load"] = loadavg()
                t0 = time.monotonic()

                def populate(ns: str, cluster: Any = cluster) -> None:
                    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                    for obj in objects_for(ns, args.per_namespace):
                        cluster.create(obj)

                with ThreadPoolExecutor(args.workers) as pool:
                    list(pool.map(populate, names))
                row["created"] = len(names) * (args.per_namespace + 1)
                row["create_s"] = time.monotonic() - t0
                row["create_rate"] = row["created"] / row["create_s"]
            created = count
            say(f"{scale}: created {row['created']} objects (with namespaces) in {row['create_s']:.1f}s "
                f"({row['create_rate']:.0f}/s, {args.workers} threads, load {row['create_load']:.1f})")
            save()
            if n == 0:
                worker.flow("backup", "warmup", app="warmup", namespaces=["bench-0000"], init=True, **conn)
            last = n == len(scales) - 1
            rate = args.pyspy_rate if last else 0
            kb = worker.flow("backup", f"backup-{scale}", pyspy=rate, app=f"bench-{scale}",
                             namespaces=_pattern(count), **conn)
            row["backup"] = kb
            say(f"{scale}: backup flow {kb['flow_seconds']:.1f}s, worker {kb['wall']:.1f}s, cpu {kb['cpu']:.1f}s, "
                f"rss {fmt_bytes(kb['peak_rss'])}, load {kb['load']:.1f}")
            save()
            if args.no_restore:
                continue
            with ControlPlane(scheduler=False, kwok=False, provisioner=False) as target:
                tconn = {"kubeconfig": str(target.kubeconfig_path), "cluster_name": "target"}
                kr = worker.flow("restore", f"restore-{scale}", pyspy=rate, restore_point=kb["restore_point"],
                                 **tconn)
                kr["found"] = count_bench_objects(target.kubeconfig_path)
            row["restore"] = kr
            say(f"{scale}: restore flow {kr['flow_seconds']:.1f}s, worker {kr['wall']:.1f}s, cpu {kr['cpu']:.1f}s, "
                f"rss {fmt_bytes(kr['peak_rss'])}, load {kr['load']:.1f}, {kr['status']} {kr['counts']}, "
                f"found {sum(kr['found'].values())}")
            save()
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    save()
    print(render_scales(res))
    return 0


def render_scales(res: dict[str, Any]) -> str:
    """The growth table of a ``--scales`` run (from its results JSON)."""
    mib = 2**20
    rows = res["scales"]
    lines = ["| objects | create (rate, load) | backup flow (worker) | restore flow (worker) | worker CPU b / r | "
             "peak RSS backup / restore | restore outcome |", "|---|---|---|---|---|---|---|"]
    for r in rows.values():
        b, t = r.get("backup"), r.get("restore")
        lines.append(
            f"| {r['objects']:,} in {r['namespaces']:,} ns | {r.get('create_s', 0):.0f} s "
            f"({r.get('create_rate', 0):.0f}/s, load {r.get('create_load', 0):.1f}) | "
            + (f"{b['flow_seconds']:.1f} s ({b['wall']:.1f} s, load {b['load']:.1f})" if b else "—") + " | "
            + (f"{t['flow_seconds']:.1f} s ({t['wall']:.1f} s, load {t['load']:.1f})" if t else "—") + " | "
            + (f"{b['cpu']:.1f} / " if b else "— / ") + (f"{t['cpu']:.1f} s" if t else "—") + " | "
            + (f"{b['peak_rss'] / mib:.0f} / " if b else "— / ") + (f"{t['peak_rss'] / mib:.0f} MiB" if t else "—")
            + " | "
            + (f"{t['status']}: {t['counts']}; {sum(t['found'].values())} bench objects found" if t else "—") + " |")
    backed = [r for r in rows.values() if r.get("backup")]
    if len(backed) >= 2 and not all(r.get("restore") for r in backed):
        a, z = backed[0], backed[-1]
        lines += ["", f"Growth {a['objects']:,} → {z['objects']:,} objects ({z['objects'] / a['objects']:.0f}×), "
                  f"backups only: backup flow {z['backup']['flow_seconds'] / a['backup']['flow_seconds']:.2f}×, "
                  f"worker peak RSS {z['backup']['peak_rss'] / a['backup']['peak_rss']:.2f}×."]
    done = [r for r in rows.values() if r.get("restore")]
    if len(done) >= 2:
        a, z = done[0], done[-1]
        k = z["objects"] / a["objects"]
        lines += ["", f"Growth {a['objects']:,} → {z['objects']:,} objects ({k:.0f}×): restore flow "
                  f"{z['restore']['flow_seconds'] / a['restore']['flow_seconds']:.2f}×, backup flow "
                  f"{z['backup']['flow_seconds'] / a['backup']['flow_seconds']:.2f}×, worker peak RSS backup "
                  f"{z['backup']['peak_rss'] / a['backup']['peak_rss']:.2f}×, restore "
                  f"{z['restore']['peak_rss'] / a['restore']['peak_rss']:.2f}×."]
    return "\n".join(lines)


def render(args: argparse.Namespace, total: int, res: dict[str, Any]) -> str:
    kb, kr = res.get("kubekeep_backup"), res.get("kubekeep_restore")
    vb, vr = res.get("velero_backup"), res.get("velero_restore")
    loads = res["loads"]
    mib = 2**20

    def v(cell: Any) -> str:
        return "—" if cell is None else str(cell)

    vel_backup = f"{vb['seconds']:.1f} s ({vb['status'].get('phase')})" if vb else None
    vel_restore = f"{vr['seconds']:.1f} s ({vr['status'].get('phase')})" if vr else None

    def rss(run: dict[str, Any] | None) -> str | None:
        if run is None:
            return None
        return f"server {run['rss']['server'] / mib:.0f} MiB, plugin {run['rss']['plugins'] / mib:.0f} MiB"

    vel_rss_b, vel_rss_r = rss(vb), rss(vr)
    found_k = sum(kr["found"].values()) if kr else None
    k_backup = f"**{kb['flow_seconds']:.1f} s** flow ({kb['wall']:.1f} s worker process)" if kb else "—"
    k_restore = f"**{kr['flow_seconds']:.1f} s** flow ({kr['wall']:.1f} s worker process)" if kr else "—"
    k_rss_b = f"{kb['peak_rss'] / mib:.0f} MiB (worker)" if kb else "—"
    k_rss_r = f"{kr['peak_rss'] / mib:.0f} MiB (worker)" if kr else "—"
    k_cpu = f"{kb['cpu']:.1f} s / {kr['cpu']:.1f} s" if kb and kr else "—"
    k_outcome = f"{kr['status']}: {kr['counts']}" if kr else "—"
    found_v = sum(vr["found"].values()) if vr else None
    heading = f"{SECTION} ({total:,} objects)"
    lines = [
        heading, "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}: {machine_info()}; load average (1 min) at the start "
        f"of the timed steps {', '.join(f'{x:.1f}' for x in loads)} (other helpers' tests ran at the same time). "
        "One run each.", "",
        f"Command: `python benchmarks/objects.py --namespaces {args.namespaces} --per-namespace "
        f"{args.per_namespace}{' --no-velero' if args.no_velero else ''}` — Kubekeep location: {args.location} "
        "(S3 = the same SeaweedFS as Velero's BackupStorageLocation).", "",
        *([f"- {res['velero_version']}"] if "velero_version" in res else []),
        f"- dataset: {total} objects (ConfigMaps, Secrets, Services, ServiceAccounts) in {args.namespaces} "
        f"namespaces, created in {res['create_s']:.1f} s; {res['listed']} objects in scope with namespaces, "
        f"default ServiceAccounts and root CA ConfigMaps; collection alone (discovery + paged lists) "
        f"{res['collect_s']:.2f} s",
        "- Kubekeep: each flow in a fresh worker process against a real Prefect API (a separate process); "
        "'flow' is the flow call inside the worker, 'worker process' adds interpreter start, imports and "
        "Prefect client start-up; peak RSS is the worker's alone",
        "- Velero: time from creating the Backup/Restore to its final phase (polled every 0.5 s); the restore "
        "runs on another empty control plane with its own velero server, after the backup synced from the "
        "bucket; peak RSS is the server's VmHWM and the largest plugin process's (sampled every 0.5 s while "
        "it lives)", "",
        "| measure | Kubekeep | Velero |",
        "|---|---|---|",
        f"| backup | {k_backup} | {v(vel_backup)} |",
        f"| restore onto an empty control plane | {k_restore} | {v(vel_restore)} |",
        f"| peak RSS, backup | {k_rss_b} | {v(vel_rss_b)} |",
        f"| peak RSS, restore | {k_rss_r} | {v(vel_rss_r)} |",
        f"| CPU time of the worker (user + sys), backup / restore | {k_cpu} | |",
        f"| restore outcome | {k_outcome} | "
        f"{v(vr and {k: vr['status'].get(k) for k in ('phase', 'warnings', 'errors')})} |",
        f"| bench objects on the target afterwards (of {total}) | {found_k} | {v(found_v)} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "render-scales":
        print(render_scales(json.loads(Path(sys.argv[2]).read_text())))
        raise SystemExit(0)
    raise SystemExit(main())
