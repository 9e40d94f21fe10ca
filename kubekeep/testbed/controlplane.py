"""A real, throwaway Kubernetes control plane on 127.0.0.1.

etcd + kube-apiserver + kube-controller-manager (namespace finalization,
garbage collection, PV binding, Deployments/ReplicaSets/StatefulSets) +
kube-scheduler + kwok (fake nodes whose pods become Running/Ready), plus a
small hostPath provisioner so that PVCs of the test bed's StorageClass get
real directories that backups can read directly.

``pods/exec`` works: kube-apiserver reaches kwok's kubelet API (TLS, the
node's ``daemonEndpoints`` port) and kwok runs the command as a local process,
in ``<workdir>/exec`` by default (a ClusterExec) or in a per-pod directory with
its own env (``pod_exec_dir`` / ``configure_pod_exec`` create a kwok Exec).

The Kubernetes version is chosen per control plane (``ControlPlane(version=...)``):
the default is ``K8S_VERSION``; ``K8S_OLDER_VERSION`` (alias ``"older"``) is an
older minor for migration tests. Both run with the same etcd and kwok. Versions
live in ``versions.sh`` beside this file (environment ``KUBEKEEP_<NAME>`` wins).

Binaries are found the envtest way (for the default version only):
``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_ETCD``,
``TEST_ASSET_KUBE_CONTROLLER_MANAGER``, ``TEST_ASSET_KUBE_SCHEDULER``,
``TEST_ASSET_KWOK`` (one file each), else ``KUBEBUILDER_ASSETS`` (a directory
holding them), else the cache ``$KUBEKEEP_CACHE_DIR/bin/<component>-<version>/``,
else they are built from Go modules into that cache by
``build-control-plane.sh`` beside this file.

Any number of control planes may run at once, in one process or several: each
has its own work directory (etcd data, certificates, logs, volumes), its own
kwok and hostPath provisioner, and ports reserved through
:func:`~kubekeep.process.reserve_ports` until it stops.

kwok keeps its node's Lease in ``kube-node-lease`` renewed every 10 s
(``--node-lease-duration-seconds=40``) and then also posts the node status every
20-25 s. Without the flag kwok v0.7.0 keeps no Lease, yet picks its slow
"heartbeat-with-lease" node stage (status every 600-610 s): kube-controller-manager
then marks the node NotReady after its 50 s grace period, and every pod on it
NotReady, for good (kwok does not make them Ready again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from kubekeep.cluster import ApiError, Cluster, has_condition
from kubekeep.process import ManagedProcess, PortReservation, reserve_ports, wait_until

from . import certs, crds

BUILD_SCRIPT = Path(__file__).with_name("build-control-plane.sh")
VERSIONS_FILE = Path(__file__).with_name("versions.sh")


def _versions() -> dict[str, str]:
    """versions.sh's NAME=value lines, each overridden by the environment's KUBEKEEP_<NAME>."""
    found: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        match = re.fullmatch(r"([A-Z0-9_]+)=(\S+)", line.strip())
        if match:
            found[match[1]] = os.environ.get(f"KUBEKEEP_{match[1]}") or match[2]
    return found


_V = _versions()
K8S_VERSION = _V["K8S_VERSION"]
K8S_OLDER_VERSION = _V["K8S_OLDER_VERSION"]
ETCD_VERSION = _V["ETCD_VERSION"]
KWOK_VERSION = _V["KWOK_VERSION"]
#: names ``ControlPlane(version=...)`` and ``kubekeep testbed up --version`` accept besides vX.Y.Z
VERSION_ALIASES = {"default": K8S_VERSION, "newer": K8S_VERSION, "older": K8S_OLDER_VERSION}

#: switches for a K8S_OLDER_VERSION cluster that serve, in beta, APIs the newer version serves as GA
#: (so that migrations must convert them: VolumeAttributesClass storage.k8s.io/v1 <-> v1beta1,
#: DeviceClass & co. resource.k8s.io/v1 <-> v1beta2); ``ControlPlane(**OLDER_BETA_APIS)``.
#: resource.k8s.io/v1beta1 too: with DynamicResourceAllocation on, v1.33's scheduler watches it
#: and schedules no pod while it is not served.
OLDER_BETA_APIS: dict[str, dict[str, bool]] = {
    "runtime_config": {"storage.k8s.io/v1beta1": True, "resource.k8s.io/v1beta1": True,
                       "resource.k8s.io/v1beta2": True},
    "feature_gates": {"VolumeAttributesClass": True, "DynamicResourceAllocation": True},
}

STORAGE_CLASS = "kubekeep-hostpath"
PROVISIONER = "testbed.kubekeep.io/hostpath"
NODE_NAME = "kwok-node-0"
#: kwok renews the node's Lease every quarter of this (10 s), well inside
#: kube-controller-manager's node-monitor grace period (50 s)
NODE_LEASE_SECONDS = 40

_K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
_ENVTEST_VARS = {
    "kube-apiserver": "TEST_ASSET_KUBE_APISERVER",
    "kube-controller-manager": "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    "kube-scheduler": "TEST_ASSET_KUBE_SCHEDULER",
    "etcd": "TEST_ASSET_ETCD",
    "kwok": "TEST_ASSET_KWOK",
}


class VersionError(ValueError):
    pass


def resolve_version(version: str | None) -> str:
    """``None`` or an alias (default, newer, older) or ``vX.Y.Z`` -> ``vX.Y.Z``."""
    if version is None:
        return K8S_VERSION
    version = VERSION_ALIASES.get(version, version)
    if not re.fullmatch(r"v1\.\d+\.\d+", version):
        raise VersionError(f"Kubernetes version must look like v1.33.13 or be one of "
                           f"{', '.join(VERSION_ALIASES)}, not {version!r}")
    return version


def _cache_subdir(name: str, version: str) -> str:
    if name in _K8S_BINARIES:
        return f"k8s-{version}"
    return f"etcd-{ETCD_VERSION}" if name == "etcd" else f"kwok-{KWOK_VERSION}"


def cache_dir() -> Path:
    base = os.environ.get("KUBEKEEP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubekeep")
    return Path(base)


def find_binary(name: str, version: str | None = None) -> Path | None:
    """The binary ``name`` for Kubernetes ``version`` (default K8S_VERSION), or None.

    TEST_ASSET_* and KUBEBUILDER_ASSETS name one set of binaries of unknown version:
    they serve the default version (and etcd and kwok, which are shared) only.
    """
    version = resolve_version(version)
    if version == K8S_VERSION or name not in _K8S_BINARIES:
        explicit = os.environ.get(_ENVTEST_VARS[name])
        if explicit:
            return Path(explicit)
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        if assets and (Path(assets) / name).is_file():
            return Path(assets) / name
    cached = cache_dir() / "bin" / _cache_subdir(name, version) / name
    return cached if cached.is_file() else None


def ensure_binaries(*, build_missing: bool = True, version: str | None = None) -> dict[str, Path]:
    """The five binaries for Kubernetes ``version``; missing ones are built (serialized across
    processes by the build script's lock) unless ``build_missing`` is false."""
    version = resolve_version(version)
    found = {name: find_binary(name, version) for name in _ENVTEST_VARS}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        if not build_missing:
            raise FileNotFoundError(
                f"control-plane binaries for Kubernetes {version} not found: {', '.join(missing)}; set "
                f"KUBEBUILDER_ASSETS or TEST_ASSET_* or run {BUILD_SCRIPT}")
        env = {**os.environ, "KUBEKEEP_CACHE_DIR": str(cache_dir()), "KUBEKEEP_K8S_VERSION": version,
               "KUBEKEEP_ETCD_VERSION": ETCD_VERSION, "KUBEKEEP_KWOK_VERSION": KWOK_VERSION}
        subprocess.run(["bash", str(BUILD_SCRIPT), "all"], check=True, env=env)
        found = {name: find_binary(name, version) for name in _ENVTEST_VARS}
        still = [n for n, p in found.items() if p is None]
        if still:
            raise FileNotFoundError(f"building did not produce: {', '.join(still)}")
    return {n: p for n, p in found.items() if p is not None}


class ControlPlane:
    """Start with ``with ControlPlane() as cp: cp.cluster() ...``; everything stops on exit.

    ``version`` picks the Kubernetes version (see :func:`resolve_version`).
    ``runtime_config`` and ``feature_gates`` turn API versions and features on or off
    (kube-apiserver ``--runtime-config``; ``--feature-gates`` for every component), e.g.
    ``runtime_config={"storage.k8s.io/v1beta1": True}, feature_gates={"VolumeAttributesClass": True}``
    makes a v1.33 cluster serve VolumeAttributesClass in v1beta1.
    """

    def __init__(self, workdir: Path | None = None, *, scheduler: bool = True, kwok: bool = True,
                 provisioner: bool = True, build_missing: bool = True, version: str | None = None,
                 runtime_config: dict[str, bool] | None = None,
                 feature_gates: dict[str, bool] | None = None) -> None:
        self.version = resolve_version(version)
        self.runtime_config = dict(runtime_config or {})
        self.feature_gates = dict(feature_gates or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubekeep-cp-"))
        self.volumes_dir = self.workdir / "volumes"
        self.with_scheduler = scheduler
        self.with_kwok = kwok
        self.with_provisioner = provisioner
        self.build_missing = build_missing
        self.processes: list[ManagedProcess] = []
        self.kubeconfig_path = self.workdir / "admin.kubeconfig"
        self.api_port = 0
        self._stop_event = threading.Event()
        self._provisioner_thread: threading.Thread | None = None
        self.provisioner_errors: list[str] = []
        self.kubelet_port = 0
        self.exec_dir = self.workdir / "exec"
        self._ports: PortReservation | None = None

    # ---- lifecycle ------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        bins = ensure_binaries(build_missing=self.build_missing, version=self.version)
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.volumes_dir.mkdir(exist_ok=True)
        pki = certs.generate(self.workdir / "pki")

        # every port this control plane binds, held until stop() (see reserve_ports)
        self._ports = reserve_ports(7)
        (etcd_port, peer_port, etcd_metrics_port, self.api_port, kcm_port, scheduler_port,
         self.kubelet_port) = self._ports.ports
        etcd = self._spawn("etcd", [
            str(bins["etcd"]), "--data-dir", str(self.workdir / "etcd"), "--name", "default",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--listen-metrics-urls", f"http://127.0.0.1:{etcd_metrics_port}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(4 << 30), "--log-level", "warn",
        ], logs)
        wait_until(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), timeout=30,
                   what="etcd", processes=[etcd])

        apiserver = self._spawn("kube-apiserver", [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={pki['serving.crt']}", f"--tls-private-key-file={pki['serving.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/16",
            "--service-node-port-range=30000-32767",
            "--authorization-mode=RBAC", "--allow-privileged=true",
            # Pods created right after their namespace would otherwise race the token controller.
            "--disable-admission-plugins=ServiceAccount",
            # pods/exec is proxied to kwok's kubelet API (see _start_kwok); verify its certificate
            f"--kubelet-certificate-authority={pki['ca.crt']}",
            f"--kubelet-client-certificate={pki['admin.crt']}", f"--kubelet-client-key={pki['admin.key']}",
            "--kubelet-preferred-address-types=InternalIP",
            *self._switches(runtime_config=True),
        ], logs)
        ctx = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        ctx.load_cert_chain(str(pki["admin.crt"]), str(pki["admin.key"]))
        wait_until(lambda: _http_ok(f"{self.server}/readyz", ctx), timeout=90,
                   what="kube-apiserver", processes=[etcd, apiserver])
        self._write_kubeconfig(pki)

        kubeconfig = str(self.kubeconfig_path)
        self._spawn("kube-controller-manager", [
            str(bins["kube-controller-manager"]), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", "--leader-elect=false",
            "--controllers=*", f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}", "--use-service-account-credentials=false",
            # react quickly: the test bed is small and tests wait on these loops
            "--concurrent-gc-syncs=5", "--concurrent-namespace-syncs=5",
            "--pvclaimbinder-sync-period=1s",
            *self._switches(),
        ], logs)
        if self.with_scheduler:
            self._spawn("kube-scheduler", [
                str(bins["kube-scheduler"]), f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={scheduler_port}", "--leader-elect=false",
                *self._switches(),
            ], logs)
        if self.with_kwok:
            self._start_kwok(bins["kwok"], pki, logs)

        cluster = self.cluster()
        try:
            served = cluster.server_version().get("gitVersion")
            if served != self.version:
                raise RuntimeError(f"kube-apiserver serves {served}, not the requested {self.version} "
                                   f"(check TEST_ASSET_KUBE_APISERVER / KUBEBUILDER_ASSETS)")
            # the default ServiceAccount appears once the controllers run: proof they are up
            cluster.wait_for("v1", "ServiceAccount", "default", lambda o: o is not None,
                             namespace="default", timeout=60, what="kube-controller-manager")
            self._create_storage_class(cluster)
            if self.with_kwok:
                self._create_node(cluster)
                cluster.wait_for("v1", "Node", NODE_NAME, _node_ready, timeout=60, what="kwok node Ready")
                self._configure_exec(cluster)
        finally:
            cluster.close()
        if self.with_provisioner:
            self._provisioner_thread = threading.Thread(target=self._provision_loop, name="hostpath-provisioner",
                                                        daemon=True)
            self._provisioner_thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        if self._provisioner_thread:
            self._provisioner_thread.join(timeout=5)
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()
        if self._ports is not None:
            self._ports.release()
            self._ports = None
        if self._own_workdir and not os.environ.get("KUBEKEEP_KEEP_TESTBED"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def cluster(self) -> Cluster:
        return Cluster.from_kubeconfig(str(self.kubeconfig_path))

    def check_alive(self) -> None:
        for p in self.processes:
            p.check_alive()

    # ---- kwok exec -----------------------------------------------------------
    def _start_kwok(self, kwok: Path, pki: dict[str, Path], logs: Path) -> None:
        """Start kwok with its kubelet API reachable by kube-apiserver, so ``pods/exec`` works.

        kwok serves the kubelet API (exec, logs, port-forward) on ``--server-address``
        over TLS when given a certificate; ``--node-port`` makes it publish that port
        as the node's ``daemonEndpoints.kubeletEndpoint``, where kube-apiserver sends
        ``pods/exec``. With ``--enable-crds`` kwok reads its Exec/ClusterExec objects
        from the API, so tests can give each pod its own working directory and env.
        """
        cluster = self.cluster()
        try:
            crds.install(cluster, crds.kwok_exec_crds())
        finally:
            cluster.close()
        self._spawn("kwok", [
            str(kwok), f"--kubeconfig={self.kubeconfig_path}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{self.kubelet_port}", f"--node-port={self.kubelet_port}",
            f"--tls-cert-file={pki['serving.crt']}", f"--tls-private-key-file={pki['serving.key']}",
            "--enable-crds=Exec,ClusterExec",
            "--cidr=10.244.0.1/16", "--node-ip=127.0.0.1",
            # the node's heartbeat: a Lease renewed every NODE_LEASE_SECONDS/4 (see the module docstring)
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        ], logs)

    def _configure_exec(self, cluster: Cluster) -> None:
        """Every kwok pod runs exec'd commands locally in ``<workdir>/exec`` unless an Exec says otherwise."""
        self.exec_dir.mkdir(parents=True, exist_ok=True)
        _create_ignore_exists(cluster, {
            "apiVersion": f"{crds.KWOK_GROUP}/v1alpha1", "kind": "ClusterExec",
            "metadata": {"name": "testbed-default"},
            "spec": {"selector": {}, "execs": [{"local": {"workDir": str(self.exec_dir)}}]}})

    def pod_exec_dir(self, cluster: Cluster, namespace: str, pod: str, *,
                     env: dict[str, str] | None = None) -> Path:
        """Give one pod its own local working directory (and env) for exec; return the directory."""
        return configure_pod_exec(cluster, namespace, pod, self.exec_dir / namespace / pod, env=env)

    # ---- helpers ----------------------------------------------------------
    def _switches(self, *, runtime_config: bool = False) -> list[str]:
        def joined(flags: dict[str, bool]) -> str:
            return ",".join(f"{k}={str(v).lower()}" for k, v in sorted(flags.items()))

        out = [f"--feature-gates={joined(self.feature_gates)}"] if self.feature_gates else []
        if runtime_config and self.runtime_config:
            out.append(f"--runtime-config={joined(self.runtime_config)}")
        return out

    def _spawn(self, name: str, argv: list[str], logs: Path) -> ManagedProcess:
        p = ManagedProcess(name, argv, logs)
        self.processes.append(p)
        return p

    def _write_kubeconfig(self, pki: dict[str, Path]) -> None:
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "kubekeep-testbed",
            "clusters": [{"name": "kubekeep-testbed", "cluster": {
                "server": self.server, "certificate-authority": str(pki["ca.crt"])}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(pki["admin.crt"]), "client-key": str(pki["admin.key"])}}],
            "contexts": [{"name": "kubekeep-testbed", "context": {"cluster": "kubekeep-testbed",
                                                                   "user": "admin"}}],
        }
        self.kubeconfig_path.write_text(json.dumps(doc, indent=2))
        self.kubeconfig_path.chmod(0o600)

    def _create_storage_class(self, cluster: Cluster) -> None:
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": STORAGE_CLASS,
                           "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
              "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
        _create_ignore_exists(cluster, sc)

    def _create_node(self, cluster: Cluster) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"}}}
        _create_ignore_exists(cluster, node)

    def _provision_loop(self) -> None:
        """Give each pending PVC of our StorageClass a hostPath PV; delete released ones."""
        cluster = self.cluster()
        try:
            pvc_res = cluster.resource_for("v1", "PersistentVolumeClaim")
            pv_res = cluster.resource_for("v1", "PersistentVolume")
            while not self._stop_event.wait(0.3):
                try:
                    for pvc in cluster.list_pages(pvc_res):
                        self._provision(cluster, pvc)
                    for pv in cluster.list_pages(pv_res):
                        self._reclaim(cluster, pv)
                except ApiError as exc:
                    self.provisioner_errors.append(str(exc))
                except Exception as exc:  # noqa: BLE001 - keep the loop alive; tests read the errors
                    self.provisioner_errors.append(repr(exc))
        finally:
            cluster.close()

    def _provision(self, cluster: Cluster, pvc: dict[str, Any]) -> None:
        md, spec = pvc["metadata"], pvc.get("spec", {})
        if pvc.get("status", {}).get("phase") != "Pending" or spec.get("volumeName"):
            return
        wanted = md.get("annotations", {}).get("volume.kubernetes.io/storage-provisioner") or \
            md.get("annotations", {}).get("volume.beta.kubernetes.io/storage-provisioner")
        if wanted != PROVISIONER:
            return
        name = f"pvc-{md['uid']}"
        path = self.volumes_dir / name
        path.mkdir(parents=True, exist_ok=True)
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {
            "name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "labels": {"testbed.kubekeep.io/provisioned": "true"}},
            "spec": {"capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
                     "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                     "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": spec.get("storageClassName", STORAGE_CLASS),
                     "volumeMode": spec.get("volumeMode", "Filesystem"),
                     "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "namespace": md["namespace"], "name": md["name"], "uid": md["uid"]}}}
        _create_ignore_exists(cluster, pv)

    def _reclaim(self, cluster: Cluster, pv: dict[str, Any]) -> None:
        md, spec = pv["metadata"], pv.get("spec", {})
        if (pv.get("status", {}).get("phase") == "Released"
                and md.get("annotations", {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
                and spec.get("persistentVolumeReclaimPolicy") == "Delete"):
            cluster.delete("v1", "PersistentVolume", md["name"])
            shutil.rmtree(self.volumes_dir / md["name"], ignore_errors=True)


def configure_pod_exec(cluster: Cluster, namespace: str, pod: str, work_dir: Path, *,
                       env: dict[str, str] | None = None, containers: list[str] | None = None) -> Path:
    """Make ``pods/exec`` into a kwok pod run local commands in ``work_dir`` with ``env``.

    Creates (or replaces) the kwok ``Exec`` object named after the pod; kwok picks
    it up through its watch within a moment. Returns ``work_dir`` (created).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    target: dict[str, Any] = {"local": {"workDir": str(work_dir),
                                        "envs": [{"name": k, "value": v} for k, v in (env or {}).items()]}}
    if containers:
        target["containers"] = containers
    obj = {"apiVersion": f"{crds.KWOK_GROUP}/v1alpha1", "kind": "Exec",
           "metadata": {"name": pod, "namespace": namespace}, "spec": {"execs": [target]}}
    cluster.apply(obj, field_manager="kubekeep-testbed")
    return work_dir


def _create_ignore_exists(cluster: Cluster, obj: dict[str, Any]) -> None:
    try:
        cluster.create(obj)
    except ApiError as exc:
        if exc.status != 409:
            raise


def _node_ready(node: dict[str, Any] | None) -> bool:
    return has_condition(node, "Ready")


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:  # noqa: S310 - loopback only
            return bool(resp.status == 200)
    except OSError:
        return False
