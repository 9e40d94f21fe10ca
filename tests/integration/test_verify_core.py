"""The verification core on the real test bed (no Prefect): sandbox, isolation, checks, teardown, cleanup.

The sample app (plus an HPA, an Ingress, a CronJob and a LoadBalancer Service) is read from the cluster
as a backup would read it, its volumes are backed up into a real repository, and it is restored into a
sandbox with the isolation chain by the core restore (``kubekeep.restore.apply``); the volumes are filled
and verified by ``kubekeep.restore.volume_data`` before any workload starts.

The http check: in the test bed, kwok runs an exec'd command as a local process on this machine, where
no Service name resolves. So the test gives the pod's exec environment ``http_proxy`` pointing at a
server the test runs on 127.0.0.1 (a kwok ``Exec``). curl then sends ``GET http://web.<sandbox>.svc:80/...``
to that server unchanged, and the server answers only for the exact Service name the check addressed:
the check's own client, command line and parsing run as in a cluster, and the test sees the name it
used. Nothing in the check knows about the proxy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kubekeep.cluster import Cluster
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore import PlanOptions, RestorePlan, plan_restore
from kubekeep.restore.actions import RestoreContext
from kubekeep.restore.apply import apply, served_by_cluster
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.report import RestoreReport, VolumeOutcome, VolumeStatus
from kubekeep.restore.volume_data import restore_volume
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import configure_pod_exec
from kubekeep.verify import (
    ISOLATION_POLICY_NAME,
    SANDBOX_LABEL,
    ExecCheck,
    Heartbeat,
    HttpCheck,
    IsolationOptions,
    Owner,
    Sandbox,
    cleanup_abandoned,
    create_sandbox,
    expected_objects,
    find_sandboxes,
    isolation_chain,
    objects_present,
    run_user_check,
    teardown,
    volume_data,
    workloads_ready,
)
from tests.plugins.controlplane import DERIVED_BY_THE_CONTROL_PLANE

Manifest = dict[str, Any]
PASSWORD = "verify-core"


def _extras(namespace: str) -> list[Manifest]:
    return [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": namespace},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                  "minReplicas": 2, "maxReplicas": 5}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                  "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly-report", "namespace": namespace},
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
             "restartPolicy": "Never", "containers": [{"name": "report", "image": "registry.example.com/r:1"}]}}}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb", "namespace": namespace},
         "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443, "targetPort": 8080}]}},
    ]


def _namespaced(cluster: Cluster, namespace: str) -> Iterator[Manifest]:
    for resource in cluster.preferred_resources():
        if resource.namespaced and "list" in resource.verbs and resource.kind not in ("Event",):
            yield from cluster.list_pages(resource, namespace=namespace)


def _versions(cluster: Cluster, namespace: str) -> dict[tuple[str, str], Manifest]:
    return {(o["kind"], o["metadata"]["name"]): o for o in _namespaced(cluster, namespace)}


def assert_untouched(before: dict[tuple[str, str], Manifest], after: dict[tuple[str, str], Manifest],
                     since: datetime) -> None:
    """Same objects, same resourceVersions; an object whose resourceVersion moved may only have had its
    status written by its own controller (an HPA's controller rewrites its status on its own schedule)."""
    assert set(after) == set(before), set(after) ^ set(before)
    for key, old in before.items():
        new = after[key]
        if new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]:
            continue
        # entries already there before (same manager, operation, subresource and time) are not new writes:
        # their times have one-second resolution, so a time alone cannot tell them from ours
        seen = {(m.get("manager"), m.get("operation"), m.get("subresource"), m.get("time"))
                for m in old["metadata"].get("managedFields") or ()}
        writes = [m for m in new["metadata"].get("managedFields") or ()
                  if (m.get("manager"), m.get("operation"), m.get("subresource"), m.get("time")) not in seen
                  and datetime.fromisoformat(m["time"].replace("Z", "+00:00")) >= since.replace(microsecond=0)]
        if key[0] in DERIVED_BY_THE_CONTROL_PLANE:  # rewritten whenever a pod's readiness moves (kwok's may flap)
            assert writes and all(m.get("manager") == "kube-controller-manager" for m in writes), (key, writes)
            continue
        assert new["metadata"].get("generation") == old["metadata"].get("generation"), key
        assert writes and all(m.get("subresource") == "status" and "kubekeep" not in m["manager"]
                              for m in writes), (key, writes)


@pytest.fixture(scope="module")
def shop(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sample app with data, read as a backup reads it, and its volumes in a real repository."""
    namespace = f"kk-vsrc-{uuid.uuid4().hex[:6]}"
    sample_app.create(cluster, namespace)
    for extra in _extras(namespace):
        cluster.create(extra)
    digests = {pvc: sample_app.fill_volume(sample_app.volume_path(cluster, namespace, pvc), seed=f"v/{pvc}")
               for pvc in ("uploads", "data-db-0")}
    manifests = [*_namespaced(cluster, namespace), cluster.get("v1", "Namespace", namespace),
                 cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")]
    root = tmp_path_factory.mktemp("verify-repo")
    repo = Repository.init(FilesystemStorage(root / "repo", create=True), passphrase=PASSWORD, kdf=KdfParams.cheap())
    snapshots = {pvc: repo.backup(sample_app.volume_path(cluster, namespace, pvc), tags=["kubekeep:volume"]).snapshot_id
                 for pvc in digests}
    yield {"ns": namespace, "manifests": manifests, "repo": repo, "snapshots": snapshots, "root": root}
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")
    cluster.delete("v1", "Namespace", namespace)


def _fill_volumes(repo: Repository, snapshots: dict[str, str]) -> Callable[[RestoreContext], list[VolumeOutcome]]:
    """The before-workloads hook: fill every restored claim from its snapshot and verify it."""
    def hook(ctx: RestoreContext) -> list[VolumeOutcome]:
        out = []
        for pvc in ctx.pvcs:
            snapshot = snapshots.get(pvc.ref.name)
            if snapshot is None or pvc.volume_name is None:
                continue
            path = Path(ctx.cluster.get("v1", "PersistentVolume", pvc.volume_name)["spec"]["hostPath"]["path"])
            try:
                summary = restore_volume(repo, snapshot, path, verify=True)
            except Exception as exc:  # noqa: BLE001 - the outcome says what failed
                out.append(VolumeOutcome(pvc.ref.namespace, pvc.ref.name, VolumeStatus.FAILED, snapshot_id=snapshot,
                                         error=f"{type(exc).__name__}: {exc}"))
                continue
            out.append(VolumeOutcome(pvc.ref.namespace, pvc.ref.name, VolumeStatus.VERIFIED, snapshot_id=snapshot,
                                     method="direct", files=summary["files"], bytes=summary["bytes"]))
        return out
    return hook


def _sandbox_restore(cluster: Cluster, shop: dict[str, Any], sandbox: Sandbox,
                     options: IsolationOptions) -> tuple[RestorePlan, RestoreReport]:
    chain = isolation_chain(sandbox.namespaces, sandbox.run_id, options)
    plan = plan_restore(shop["manifests"], served=served_by_cluster(cluster, refresh=True),
                        options=PlanOptions(transforms=chain))
    report = apply(cluster, plan, RestorePolicy(ready_timeout=120),
                   before_workloads=_fill_volumes(shop["repo"], shop["snapshots"]))
    return plan, report


class _ClusterNetwork:
    """Plays the cluster's network for exec'd clients: an HTTP proxy on 127.0.0.1 that answers for the
    Service names it is told about and records every URL asked for."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.seen: list[str] = []
        network = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                network.seen.append(self.path)
                url = urlsplit(self.path)
                host = url.hostname or ""
                if url.port is not None and url.port != 80:  # a client may leave out the default port
                    host = f"{host}:{url.port}"
                status, body = network.routes.get((host, url.path), (502, b"no such service\n"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _ClusterNetwork:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _route_pods_through(cluster: Cluster, test_cluster: Any, namespace: str, selector: str, proxy: str) -> None:
    for pod in cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=namespace, label_selector=selector):
        name = pod["metadata"]["name"]
        configure_pod_exec(cluster, namespace, name, test_cluster.control_plane.exec_dir / namespace / name,
                           env={"http_proxy": proxy, "no_proxy": ""})


def test_sandbox_restore_isolation_checks_and_teardown(cluster: Cluster, test_cluster: Any,
                                                       shop: dict[str, Any]) -> None:
    source = shop["ns"]
    before, since = _versions(cluster, source), datetime.now(UTC)
    sandbox = Sandbox.plan([source], "rp-core-test", lease_seconds=20)
    target = sandbox.namespaces[source]
    try:
        create_sandbox(cluster, sandbox)
        with Heartbeat(cluster, sandbox) as beat, _ClusterNetwork() as network:
            plan, report = _sandbox_restore(cluster, shop, sandbox, IsolationOptions(max_replicas=1))
            assert not report.failed, report.markdown()

            # isolation: the policy, the transforms, the labels
            policy = cluster.get("networking.k8s.io/v1", "NetworkPolicy", ISOLATION_POLICY_NAME, target)
            assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
            assert policy["spec"]["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
                SANDBOX_LABEL: sandbox.run_id}}}]}]
            assert cluster.get_or_none("autoscaling/v2", "HorizontalPodAutoscaler", "web", target) is None
            assert cluster.get_or_none("networking.k8s.io/v1", "Ingress", "web", target) is None
            for name in ("web-public", "web-lb"):
                svc = cluster.get("v1", "Service", name, target)["spec"]
                assert svc["type"] == "ClusterIP" and all("nodePort" not in p for p in svc["ports"])
            assert cluster.get("batch/v1", "CronJob", "nightly-report", target)["spec"]["suspend"] is True
            assert cluster.get("apps/v1", "Deployment", "web", target)["spec"]["replicas"] == 1
            copy_name = f"{target}-shop-view"
            crb = cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", copy_name)
            assert crb["metadata"]["labels"][SANDBOX_LABEL] == sandbox.run_id
            assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "shop", "namespace": target}]

            # built-in checks
            left_out = [{"group": s.ref.group, "version": s.ref.version, "kind": s.ref.kind,
                         "namespace": s.ref.namespace, "name": s.ref.name, "action": "excluded", "reason": s.reason}
                        for s in plan.skipped]
            expected = expected_objects([o.ref for p in plan.phases for o in p.objects], left_out, sandbox.namespaces)
            present = objects_present(cluster, expected)
            assert present.passed, present
            assert "HorizontalPodAutoscaler.autoscaling: 1 left out on purpose" in present.output_tail
            refs = [o.ref for p in plan.phases for o in p.objects]
            ready = workloads_ready(cluster, refs, timeout=60)
            assert ready.passed and "Deployment.apps" in ready.output_tail, ready
            data = volume_data(report.volumes, [(target, "uploads"), (target, "data-db-0")])
            assert data.passed and data.reason.startswith("2 volume(s) match the snapshot file by file"), data

            # user checks: exec
            ok = run_user_check(cluster, ExecCheck(name="db-ping", pod_selector="app=db", command=[
                "sh", "-c", "echo accepting connections"], stdout_regex="^accepting"), sandbox.namespaces)
            assert ok.passed and ok.attempts == 1 and "accepting" in ok.output_tail, ok
            bad = run_user_check(cluster, ExecCheck(name="db-broken", pod_selector="app=db", command=[
                "sh", "-c", "echo no; exit 3"], timeout_seconds=3, interval_seconds=1), sandbox.namespaces)
            assert not bad.passed and bad.attempts >= 2 and "exit code 3" in bad.reason \
                and "expected exit code 0" in bad.reason, bad
            nopod = run_user_check(cluster, ExecCheck(name="nopod", pod_selector="app=nothing", command=["true"],
                                                      timeout_seconds=1), sandbox.namespaces)
            assert not nopod.passed and "no pod in" in nopod.reason

            # user checks: http, through the test's stand-in for the cluster network
            host = f"web.{target}.svc"
            network.routes[(host, "/healthz")] = (200, b"<h1>Shop</h1> ok\n")
            network.routes[(host, "/broken")] = (503, b"upstream down\n")
            _route_pods_through(cluster, test_cluster, target, "app=web", network.url)
            home = run_user_check(cluster, HttpCheck(name="home", pod_selector="app=web", service="web",
                                                     path="/healthz", body_regex="Shop", timeout_seconds=20,
                                                     interval_seconds=1), sandbox.namespaces)
            assert home.passed, home
            # the name the check used, as the client sent it
            assert {f"http://{host}/healthz", f"http://{host}:80/healthz"} & set(network.seen), network.seen
            down = run_user_check(cluster, HttpCheck(name="broken", pod_selector="app=web", service="web",
                                                     path="/broken", timeout_seconds=2, interval_seconds=1),
                                  sandbox.namespaces)
            assert not down.passed and "status 503, expected 200" in down.reason and "upstream" in down.output_tail
            wrong_body = run_user_check(cluster, HttpCheck(name="body", pod_selector="app=web", service="web",
                                                           path="/healthz", body_regex="Checkout",
                                                           timeout_seconds=1), sandbox.namespaces)
            assert not wrong_body.passed and "body does not match 'Checkout'" in wrong_body.reason
            for client in ("wget", "python3"):
                other = run_user_check(cluster, HttpCheck(name=f"home-{client}", pod_selector="app=web",
                                                          service="web", path="/healthz", client=client,
                                                          body_regex="ok", timeout_seconds=20), sandbox.namespaces)
                assert other.passed, other

            # a missing object is named, counted by kind
            cluster.delete("v1", "ConfigMap", "shop-config", target)
            cluster.wait_for("v1", "ConfigMap", "shop-config", lambda o: o is None, namespace=target, timeout=30)
            missing = objects_present(cluster, expected)
            assert not missing.passed and "ConfigMap 1 of 2" in missing.reason \
                and f"ConfigMap {target}/shop-config" in missing.reason, missing
            # the lease is renewed every lease_seconds / 4 (5 s) while the run lives; on a quiet machine the
            # steps above take less than that, so wait for the first beat (at most two intervals)
            deadline = time.monotonic() + sandbox.lease_seconds / 2
            while beat.renewals < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert beat.renewals >= 1 and not beat.errors
        assert_untouched(before, _versions(cluster, source), since)
    finally:
        result = teardown(cluster, sandbox.run_id, timeout=120)
    assert result.complete, result.left
    assert result.namespaces == [target] and f"ClusterRoleBinding {target}-shop-view" in result.cluster_objects
    assert cluster.get_or_none("v1", "Namespace", target) is None
    assert cluster.get_or_none("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{target}-shop-view") is None
    assert cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{source}-shop-view")
    assert_untouched(before, _versions(cluster, source), since)
    assert teardown(cluster, sandbox.run_id).complete, "teardown is idempotent"


_OWNER_SCRIPT = textwrap.dedent("""
    import sys, time
    from kubekeep.cluster import Cluster
    from kubekeep.verify import Heartbeat, Sandbox, create_sandbox
    cluster = Cluster.from_kubeconfig(sys.argv[1])
    sandbox = Sandbox.plan(["shop"], "rp-killed", run_id=sys.argv[2], lease_seconds=600)
    create_sandbox(cluster, sandbox)
    Heartbeat(cluster, sandbox).start()
    print("ready", flush=True)
    time.sleep(600)
""")


def test_a_sandbox_left_by_a_killed_run_is_removed_and_live_ones_are_kept(cluster: Cluster,
                                                                           test_cluster: Any) -> None:
    killed_id, lapsed_id = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    mine = Sandbox.plan(["shop"], "rp-live", lease_seconds=600)
    # a sandbox whose owner runs on another host: only its heartbeat tells whether it lives
    lapsed = Sandbox.plan(["shop"], "rp-lapsed", run_id=lapsed_id, lease_seconds=2,
                          owner=Owner("another-host.example", 1, "1"))
    proc = subprocess.Popen([sys.executable, "-c", _OWNER_SCRIPT, str(test_cluster.kubeconfig), killed_id],
                            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        create_sandbox(cluster, mine)
        create_sandbox(cluster, lapsed)
        states = {s.run_id: s for s in find_sandboxes(cluster)}
        assert {killed_id, lapsed_id, mine.run_id} <= set(states)
        assert states[killed_id].owner is not None and states[killed_id].owner.pid == proc.pid
        now = datetime.now(UTC)
        assert states[killed_id].abandoned(now) is None, "its owner still runs"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(2.5)  # the other host's sandbox misses its heartbeat
        with Heartbeat(cluster, mine):
            removed = {r.run_id: r for r in cleanup_abandoned(cluster, timeout=120)}
        assert set(removed) >= {killed_id, lapsed_id} and mine.run_id not in removed
        assert "is gone" in removed[killed_id].why and removed[killed_id].complete, removed[killed_id]
        assert "heartbeat stopped" in removed[lapsed_id].why and removed[lapsed_id].complete
        for run_id in (killed_id, lapsed_id):
            assert cluster.get_or_none("v1", "Namespace", f"kkv-{run_id}-shop") is None
        assert cluster.get("v1", "Namespace", mine.namespaces["shop"])
        assert not cleanup_abandoned(cluster, keep=[mine.run_id]), "nothing else was left"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for run_id in (mine.run_id, killed_id, lapsed_id):
            teardown(cluster, run_id, wait=False)


def test_a_sandbox_namespace_taken_by_someone_else_is_refused(cluster: Cluster) -> None:
    sandbox = Sandbox.plan(["shop"], "rp-x")
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sandbox.namespaces["shop"]}})
    try:
        with pytest.raises(Exception, match="exists and is not part of sandbox"):
            create_sandbox(cluster, sandbox)
        result = teardown(cluster, sandbox.run_id, wait=False)
        assert result.namespaces == [], "teardown deletes only what carries the sandbox label"
        assert cluster.get("v1", "Namespace", sandbox.namespaces["shop"])
    finally:
        cluster.delete("v1", "Namespace", sandbox.namespaces["shop"])


def test_a_sandbox_that_outlives_its_lifetime_is_removed(cluster: Cluster) -> None:
    sandbox = Sandbox.plan(["shop"], "rp-old", lifetime=timedelta(seconds=1), lease_seconds=600)
    create_sandbox(cluster, sandbox)
    try:
        time.sleep(1.5)
        removed = [r for r in cleanup_abandoned(cluster) if r.run_id == sandbox.run_id]
        assert len(removed) == 1 and "lifetime ended" in removed[0].why and removed[0].complete
    finally:
        teardown(cluster, sandbox.run_id, wait=False)


def test_teardown_keeps_a_crd_the_sandbox_made_while_others_use_it(cluster: Cluster) -> None:
    sandbox = Sandbox.plan(["shop"], "rp-crd")
    group = f"v{uuid.uuid4().hex[:6]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}", "labels": {SANDBOX_LABEL: sandbox.run_id}},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    outside = f"kk-out-{uuid.uuid4().hex[:6]}"
    create_sandbox(cluster, sandbox)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": outside}})
    cluster.create(crd)
    try:
        cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}",
                         lambda o: bool(o and any(c["type"] == "Established" and c["status"] == "True"
                                                  for c in (o.get("status") or {}).get("conditions") or ())),
                         timeout=30)
        cluster.resources(refresh=True)
        cluster.create({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": outside}})
        result = teardown(cluster, sandbox.run_id, timeout=60)
        assert result.left == [f"CustomResourceDefinition gadgets.{group} kept: Gadget {outside}/g outside the "
                               "sandbox uses it"]
        assert cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}")
        cluster.delete(f"{group}/v1", "Gadget", "g", outside)
        cluster.wait_for(f"{group}/v1", "Gadget", "g", lambda o: o is None, namespace=outside, timeout=30)
        again = teardown(cluster, sandbox.run_id, timeout=60)
        assert again.complete and again.cluster_objects == [f"CustomResourceDefinition gadgets.{group}"]
    finally:
        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}")
        cluster.delete("v1", "Namespace", outside)
        teardown(cluster, sandbox.run_id, wait=False)


def test_workloads_not_ready_and_container_choice(cluster: Cluster) -> None:
    from kubekeep.manifest import ObjectRef

    sandbox = Sandbox.plan(["shop"], "rp-ready")
    ns = sandbox.namespaces["shop"]
    create_sandbox(cluster, sandbox)
    try:
        pod_spec = {"containers": [{"name": "sidecar", "image": "x"}, {"name": "app", "image": "y"}]}
        cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": ns},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}},
                                 "template": {"metadata": {"labels": {"app": "stuck"}}, "spec": {
                                     **pod_spec, "nodeSelector": {"kubekeep.io/no-such-node": "true"}}}}})
        cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "two", "namespace": ns, "labels": {"app": "two"},
            "annotations": {"kubectl.kubernetes.io/default-container": "app"}}, "spec": pod_spec})
        cluster.wait_for("v1", "Pod", "two", lambda o: bool(o and (o.get("status") or {}).get("phase") == "Running"),
                         namespace=ns, timeout=60)
        refs = [ObjectRef("apps", "Deployment", ns, "stuck", "v1"), ObjectRef("", "Pod", ns, "two", "v1"),
                ObjectRef("", "ConfigMap", ns, "not-a-workload", "v1")]
        result = workloads_ready(cluster, refs, timeout=3)
        assert not result.passed and "Deployment.apps" in result.reason and "stuck" in result.reason, result
        assert "0/1 available" in result.output_tail
        echo = ExecCheck(name="which", pod_selector="app=two", command=["sh", "-c", "echo hi"])
        ran = run_user_check(cluster, echo, sandbox.namespaces)
        assert ran.passed and f"in {ns}/two (app)" in ran.reason, ran
        side = run_user_check(cluster, echo.model_copy(update={"container": "sidecar"}), sandbox.namespaces)
        assert side.passed and "(sidecar)" in side.reason
        none = run_user_check(cluster, echo.model_copy(update={"container": "nope", "timeout_seconds": 1}),
                              sandbox.namespaces)
        assert not none.passed and "has no container 'nope'" in none.reason
        wrong_ns = run_user_check(cluster, echo.model_copy(update={"namespace": "elsewhere"}), sandbox.namespaces)
        assert not wrong_ns.passed and wrong_ns.attempts == 0 and "is not one of the app's (shop)" in wrong_ns.reason
    finally:
        teardown(cluster, sandbox.run_id, wait=False)
