"""The verify flow end to end: the real test bed (kube-apiserver, kwok, controller-manager), a real repository,
the real Prefect API. A verification that passes; one that fails for each reason (a missing object, a
corrupted volume pack, a failing exec check, a failing http check, a readiness timeout), each with a clear
verdict and reason; the sandbox torn down every time, also after a run killed with kill -9; the source
untouched; the isolation NetworkPolicy in force; the RTO stages in the catalog.

While a verification runs, a watcher thread plays the parts of the cluster the test bed lacks: it gives
the sandbox's web pods an exec environment whose ``http_proxy`` is the test's stand-in for the cluster
network (tests/integration/test_verify_core.py explains why), and records what it saw of each sandbox (its
isolation NetworkPolicy). It never changes what the flow restored, except where a test asks it to delete
an object (the missing-object case).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.verify import VerificationFailed, artifact_key, verify, verify_latest
from kubekeep.catalog import (
    list_verifications,
    newest_verified_point,
    verification_stats,
    verified_points,
)
from kubekeep.cluster import ApiError, Cluster
from kubekeep.repo.format import pack_key
from kubekeep.repo.reachability import reachable
from kubekeep.restorepoint import find_restore_point
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import configure_pod_exec
from kubekeep.verify import ISOLATION_POLICY_NAME, SANDBOX_LABEL, ExecCheck, HttpCheck, VerificationPolicy
from tests.integration.test_verify_core import _ClusterNetwork, _versions, assert_untouched

ROOT = Path(__file__).resolve().parents[2]
ANNOTATED = "verify.kubekeep.io/check.db-annotated"


def _sandbox_namespaces(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.list_pages(cluster.resource_for("v1", "Namespace"), label_selector=SANDBOX_LABEL))


class SandboxWatcher:
    """Watches sandbox namespaces while a verification runs (see the module doc)."""

    def __init__(self, cluster: Cluster, test_cluster: Any, network: _ClusterNetwork, *,
                 delete: tuple[str, str, str] | None = None) -> None:
        self.cluster, self.test_cluster, self.network, self.delete = cluster, test_cluster, network, delete
        self.policies: dict[str, dict[str, Any]] = {}
        self.routed: set[tuple[str, str]] = set()
        self.deleted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._once()
            except ApiError:
                continue  # a namespace going away under us: look again

    def _once(self) -> None:
        for ns in _sandbox_namespaces(self.cluster):
            name = ns["metadata"]["name"]
            if name not in self.policies:
                policy = self.cluster.get_or_none("networking.k8s.io/v1", "NetworkPolicy", ISOLATION_POLICY_NAME,
                                                  name)
                if policy is not None:
                    self.policies[name] = policy
            self.network.routes[(f"web.{name}.svc", "/healthz")] = (200, b"<h1>Shop</h1> ok\n")
            self.network.routes[(f"web.{name}.svc", "/broken")] = (503, b"upstream down\n")
            for pod in self.cluster.list_pages(self.cluster.resource_for("v1", "Pod"), namespace=name,
                                               label_selector="app=web"):
                key = (name, pod["metadata"]["name"])
                if key not in self.routed:
                    configure_pod_exec(self.cluster, name, key[1], self.test_cluster.control_plane.exec_dir / name
                                       / key[1], env={"http_proxy": self.network.url, "no_proxy": ""})
                    self.routed.add(key)
            if self.delete is not None:
                api_version, kind, obj = self.delete
                if self.cluster.get_or_none(api_version, kind, obj, name) is not None:
                    self.cluster.delete(api_version, kind, obj, name)
                    self.deleted.append(f"{kind} {name}/{obj}")

    def __enter__(self) -> SandboxWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def shop(prefect_api: str, test_cluster: Any, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, Any]]:
    """The sample app with data, backed up by the backup flow into a filesystem location."""
    namespace = f"kk-vf-{uuid.uuid4().hex[:6]}"
    sample_app.create(cluster, namespace)
    for pvc in ("uploads", "data-db-0"):
        sample_app.fill_volume(sample_app.volume_path(cluster, namespace, pvc), seed=f"vf/{pvc}")
    # a check declared on the app: the db Service's selector is the pod selector
    cluster.patch("v1", "Service", "db", {"metadata": {"annotations": {ANNOTATED: json.dumps(
        {"type": "exec", "command": ["sh", "-c", "echo annotated"], "stdout_regex": "^annotated$"})}}},
        namespace=namespace)
    root = tmp_path_factory.mktemp("verify-flow")
    location = LocationProfile(kind="filesystem", path=str(root / "loc"))
    key = EncryptionKey(passphrase="verify-flow", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    app = f"shop-{namespace[-6:]}"
    rp = backup(app=app, namespaces=[namespace], location=location, encryption_key=key, cluster=conn, init=True)
    yield {"ns": namespace, "location": location, "key": key, "conn": conn, "rp": rp, "app": app, "root": root}
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")
    cluster.delete("v1", "Namespace", namespace)


def _run(shop: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return verify(location=shop["location"], encryption_key=shop["key"], cluster=shop["conn"], **kwargs)


def _failed(shop: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(VerificationFailed) as err:
        _run(shop, **kwargs)
    return err.value.verdict


def _no_sandbox_left(cluster: Cluster) -> None:
    left = [n["metadata"]["name"] for n in _sandbox_namespaces(cluster)
            if (n.get("status") or {}).get("phase") != "Terminating"]
    assert not left, f"sandbox namespaces left: {left}"
    crbs = list(cluster.list_pages(cluster.resource_for("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                                   label_selector=SANDBOX_LABEL))
    assert not crbs, [c["metadata"]["name"] for c in crbs]


def _check(verdict: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in verdict["checks"] if c["name"] == name)


DB_PING = ExecCheck(name="db-ping", pod_selector="app=db", command=["sh", "-c", "echo accepting connections"],
                    stdout_regex="^accepting")
HOME = HttpCheck(name="home", pod_selector="app=web", service="web", path="/healthz", body_regex="Shop",
                 timeout_seconds=30, interval_seconds=1)


def _artifacts(key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return list(client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


def test_a_verification_that_passes(shop: dict[str, Any], cluster: Cluster, test_cluster: Any) -> None:
    source = shop["ns"]
    before, since = _versions(cluster, source), datetime.now(UTC)
    with _ClusterNetwork() as network, SandboxWatcher(cluster, test_cluster, network) as watcher:
        verdict = _run(shop, app=shop["app"], checks=[DB_PING, HOME],
                       policy=VerificationPolicy.model_validate({"isolation": {"max_replicas": 1}}))
    assert verdict["result"] == "passed", verdict["reason"]
    assert verdict["restore_point_id"] == shop["rp"]
    names = {c["name"]: c for c in verdict["checks"]}
    assert set(names) == {"restore", "objects-present", "workloads-ready", "volume-data", "db-ping", "home",
                          "db-annotated"}
    assert f"in {verdict['sandbox_namespaces'][0]}/db-0" in names["db-annotated"]["reason"], names["db-annotated"]
    assert all(c["passed"] for c in names.values())
    assert "2 volume(s) match the snapshot file by file" in names["volume-data"]["reason"]
    sandbox = verdict["sandbox_namespaces"]
    assert len(sandbox) == 1 and sandbox[0].startswith("kkv-") and sandbox[0].endswith(source)
    assert any(u.endswith(f"web.{sandbox[0]}.svc/healthz") or f"web.{sandbox[0]}.svc:80/" in u for u in network.seen)
    # the isolation policy was in force in the sandbox
    policy = watcher.policies[sandbox[0]]["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    # torn down; the source untouched
    assert verdict["teardown"] == "complete"
    _no_sandbox_left(cluster)
    assert_untouched(before, _versions(cluster, source), since)
    # the verdict and its RTO stages are in the catalog
    with shop["key"].catalog(shop["location"]) as catalog:
        rows = list_verifications(catalog, app=shop["app"], details=True)
        assert verified_points(catalog, shop["app"]) == {shop["rp"]: True}
        assert newest_verified_point(catalog, shop["app"]) == shop["rp"]
        stats = verification_stats(catalog, shop["app"])
    row = next(r for r in rows if r.id == verdict["id"])
    stages = {s["name"]: s["seconds"] for s in row.stages}
    print(f"verification {row.id}: RTO {row.rto_seconds:.1f} s; stages " +  # noqa: T201 - measured, for the log
          ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stages.items()))
    assert {"sandbox", "plan", "objects-applied", "volumes-hydrated", "ready", "checks", "teardown"} <= set(stages)
    assert row.rto_seconds is not None and row.rto_seconds >= stages["plan"] + stages["checks"]
    # the checks stage begins after the restore: the restore's own times are not counted twice
    spans = {s["name"]: (s["started_at"], s["finished_at"]) for s in row.stages}
    restored = max(spans[n][1] for n in ("objects-applied", "volumes-hydrated", "ready"))
    assert spans["checks"][0] >= restored, spans
    assert row.rto_seconds >= sum(stages[n] for n in ("plan", "objects-applied", "volumes-hydrated", "ready",
                                                     "checks")) - 0.01, stages
    assert row.sandbox_cluster == "testbed" and row.result == "passed"
    assert stats[0].passed >= 1 and stats[0].p95_rto_seconds is not None
    # artifacts under stable keys
    for prefix in ("verification", "verification-checks"):
        assert _artifacts(artifact_key(prefix, shop["app"])), prefix
    # the restore-point index is refreshed with the verdict
    from prefect.artifacts import Artifact

    index = Artifact.get(artifact_key("restore-points", shop["app"]))
    assert index is not None
    rows = json.loads(index.data) if isinstance(index.data, str) else index.data
    assert {r["id"]: r["verified"] for r in rows}[shop["rp"]] == "passed", rows


def test_a_failing_exec_check(shop: dict[str, Any], cluster: Cluster) -> None:
    broken = ExecCheck(name="db-broken", pod_selector="app=db", command=["sh", "-c", "echo refused; exit 3"],
                       timeout_seconds=3, interval_seconds=1)
    verdict = _failed(shop, restore_point=shop["rp"], checks=[broken])
    assert verdict["result"] == "failed"
    assert verdict["reason"].startswith("db-broken: ") and "exit code 3" in verdict["reason"], verdict["reason"]
    assert "refused" in _check(verdict, "db-broken")["output_tail"]
    assert all(c["passed"] for c in verdict["checks"] if c["name"] != "db-broken")
    assert verdict["teardown"] == "complete"
    _no_sandbox_left(cluster)
    with shop["key"].catalog(shop["location"]) as catalog:
        assert [r.result for r in list_verifications(catalog, restore_point_id=shop["rp"])][0] == "failed"
        assert verified_points(catalog, shop["app"]) == {shop["rp"]: False}


def test_a_failing_http_check(shop: dict[str, Any], cluster: Cluster, test_cluster: Any) -> None:
    down = HOME.model_copy(update={"name": "checkout", "path": "/broken", "timeout_seconds": 20})
    with _ClusterNetwork() as network, SandboxWatcher(cluster, test_cluster, network):
        verdict = _failed(shop, restore_point=shop["rp"], checks=[down])
    assert verdict["reason"].startswith("checkout: ") and "status 503, expected 200" in verdict["reason"]
    assert "upstream down" in _check(verdict, "checkout")["output_tail"]
    _no_sandbox_left(cluster)


def test_a_missing_object(shop: dict[str, Any], cluster: Cluster, test_cluster: Any) -> None:
    with _ClusterNetwork() as network, SandboxWatcher(cluster, test_cluster, network,
                                                      delete=("v1", "ConfigMap", "shop-config")) as watcher:
        state = verify(location=shop["location"], encryption_key=shop["key"], cluster=shop["conn"],
                       restore_point=shop["rp"], return_state=True)
    assert state.is_failed(), "a failed verification fails the flow run (Prefect notifications fire)"
    error = state.result(raise_on_failure=False)
    assert isinstance(error, VerificationFailed), error
    verdict = error.verdict
    assert watcher.deleted
    assert verdict["reason"].startswith("objects-present: "), verdict["reason"]
    present = _check(verdict, "objects-present")
    assert "ConfigMap 1 of 2" in present["reason"] and "shop-config" in present["reason"], present
    _no_sandbox_left(cluster)


def test_a_readiness_timeout(prefect_api: str, shop: dict[str, Any], cluster: Cluster, tmp_path: Path) -> None:
    """A workload that never becomes Ready (it asks for a node that does not exist; its own location, so that
    verify-latest of the shop's location sees only the shop)."""
    namespace = f"kk-vstuck-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck",
                        "namespace": namespace}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "s"}},
                        "template": {"metadata": {"labels": {"app": "s"}}, "spec": {
                            "nodeSelector": {"kubekeep.io/no-such-node": "true"},
                            "containers": [{"name": "s", "image": "registry.example.com/s:1"}]}}}})
        app = f"stuck-{namespace[-6:]}"
        location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
        rp = backup(app=app, namespaces=[namespace], location=location, encryption_key=shop["key"],
                    cluster=shop["conn"], init=True)
        started = time.monotonic()
        verdict = _failed({**shop, "location": location}, restore_point=rp, policy=VerificationPolicy.model_validate(
            {"ready_timeout_seconds": 5, "builtin": {"timeout_seconds": 3}}))
        assert time.monotonic() - started < 120
        assert verdict["result"] == "failed"
        restore = _check(verdict, "restore")
        assert not restore["passed"] and "Ready" in restore["reason"], restore
        ready = _check(verdict, "workloads-ready")
        assert not ready["passed"] and "stuck" in ready["reason"], ready
        assert verdict["teardown"] == "complete"
        _no_sandbox_left(cluster)
    finally:
        cluster.delete("v1", "Namespace", namespace)


def test_a_corrupted_volume_pack(prefect_api: str, shop: dict[str, Any], cluster: Cluster, test_cluster: Any,
                                 tmp_path: Path) -> None:
    """A data blob that only the db's volume holds is damaged in its pack: the data fails verification, the db
    that mounts it is held back, and the verdict says so (its own location: the damage must not reach the
    other tests).

    The blob, not a whole pack: volumes exported side by side share packs (both hold an identical empty
    directory's tree, and the second export finds it in the first one's pack), so damaging every pack the
    db reaches could fail the other volume first (seen once in CI: "uploads" reported, not "data-db-0")."""
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    rp = backup(app="damaged", namespaces=[shop["ns"]], location=location, encryption_key=shop["key"],
                cluster=shop["conn"], init=True)
    from blocks import repository

    with repository(location, shop["key"]) as repo:
        _record_snapshot, record = find_restore_point(repo, rp)
        volume = next(v for v in record.volumes if v.pvc == "data-db-0")  # the db StatefulSet mounts it
        assert volume.snapshot_id is not None
        entries = repo.load_tree(repo.load_snapshot(volume.snapshot_id)["tree"])
        # a root file of the db's volume: its bytes are seeded by the PVC's name (sample_app.fill_volume)
        content = next(e for e in entries if e.get("type") == "file" and e.get("size"))["content"]
        found = repo.index.lookup(next(repo.content_chunks(content)))
        assert found is not None
    path = tmp_path / "loc" / pack_key(found.pack_id)
    data = bytearray(path.read_bytes())
    data[found.entry.offset + found.entry.length // 2] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    verdict = _failed({**shop, "location": location}, restore_point=rp)
    data_check = _check(verdict, "volume-data")
    assert not data_check["passed"] and "data-db-0" in data_check["reason"], data_check
    assert not _check(verdict, "restore")["passed"]
    # the db is held back (it would start on data that failed): the check names it, and looks once instead of
    # waiting its whole timeout for a workload that never comes
    ready = _check(verdict, "workloads-ready")
    assert not ready["passed"] and "db" in ready["reason"] and ready["duration_seconds"] < 30, ready
    assert verdict["teardown"] == "complete"
    _no_sandbox_left(cluster)


_KILLED = textwrap.dedent("""
    import sys
    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from flows.verify import verify
    from kubekeep.verify import ExecCheck
    verify(location=LocationProfile(kind="filesystem", path=sys.argv[1]),
           encryption_key=EncryptionKey(passphrase="verify-flow", cheap_kdf=True),
           cluster=ClusterConnection(name="testbed", kubeconfig_path=sys.argv[2]), restore_point=sys.argv[3],
           checks=[ExecCheck(name="slow", pod_selector="app=db", command=["sleep", "600"], timeout_seconds=900)])
""")


def test_a_sandbox_left_by_a_run_killed_with_kill_9_is_removed_by_the_next_run(
        prefect_api: str, shop: dict[str, Any], cluster: Cluster, test_cluster: Any) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": prefect_api}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, shop["location"].path, str(test_cluster.kubeconfig),
                             shop["rp"]], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        left: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            # the slow check runs once the restore is done: its pods exist
            for ns in _sandbox_namespaces(cluster):
                pods = list(cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=ns["metadata"]["name"],
                                               label_selector="app=db"))
                if pods:
                    left.append(ns["metadata"]["name"])
            if left:
                break
            time.sleep(0.5)
        assert left and proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        time.sleep(2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert cluster.get("v1", "Namespace", left[0]), "kill -9 left the sandbox behind"
    verdict = _run(shop, restore_point=shop["rp"], checks=[DB_PING])
    assert verdict["result"] == "passed", verdict["reason"]
    cluster.wait_for("v1", "Namespace", left[0], lambda o: o is None, timeout=60, what="left sandbox removed")
    _no_sandbox_left(cluster)


def test_verify_latest_verifies_the_newest_point_of_each_app(shop: dict[str, Any], cluster: Cluster) -> None:
    newer = backup(app=shop["app"], namespaces=[shop["ns"]], location=shop["location"], encryption_key=shop["key"],
                   cluster=shop["conn"])
    results = verify_latest(location=shop["location"], encryption_key=shop["key"], cluster=shop["conn"])
    assert results == {shop["app"]: "passed"}, results
    assert _artifacts("verify-latest")
    _no_sandbox_left(cluster)
    with shop["key"].catalog(shop["location"]) as catalog:
        row = list_verifications(catalog, restore_point_id=newer)[0]
        assert verified_points(catalog, shop["app"])[newer] is True
        assert newest_verified_point(catalog, shop["app"]) == newer
    # the RPO of the newer point: the time since the app's previous point
    assert row.rpo_seconds is not None and 0 < row.rpo_seconds < 3600, row


def test_the_cancellation_hook_tears_down_the_sandbox_of_its_run(prefect_api: str, test_cluster: Any,
                                                                  cluster: Cluster) -> None:
    """What the runner calls when a deployment's run is cancelled: the sandbox named by the run's id goes."""
    from prefect.client.schemas.objects import FlowRun

    from flows.verify import _teardown_on_cancel, sandbox_run_id
    from kubekeep.verify import Sandbox, create_sandbox

    block = f"verify-cancel-{uuid.uuid4().hex[:6]}"
    ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)).save(block)
    run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="verify-cancelled", parameters={"cluster": block})
    other = Sandbox.plan(["shop"], "rp-other")
    mine = Sandbox.plan(["shop"], "rp-cancelled", run_id=sandbox_run_id(str(run.id)))
    create_sandbox(cluster, mine)
    create_sandbox(cluster, other)
    try:
        _teardown_on_cancel(verify, run, run.state)  # type: ignore[arg-type]
        assert cluster.get_or_none("v1", "Namespace", mine.namespaces["shop"]) is None
        assert cluster.get("v1", "Namespace", other.namespaces["shop"]), "only the run's own sandbox goes"
    finally:
        from kubekeep.verify import teardown

        teardown(cluster, other.run_id, wait=False)
        teardown(cluster, mine.run_id, wait=False)


def test_an_error_in_the_sandbox_is_an_error_verdict_and_the_sandbox_still_goes(
        prefect_api: str, shop: dict[str, Any], cluster: Cluster, tmp_path: Path) -> None:
    """The point's manifests cannot be read (their packs are damaged): the plan fails inside the sandbox. The
    verdict is ``error`` (the point could not be judged), it is recorded, and the sandbox is torn down."""
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    rp = backup(app="unreadable", namespaces=[shop["ns"]], location=location, encryption_key=shop["key"],
                cluster=shop["conn"], init=True)
    from blocks import repository

    with repository(location, shop["key"]) as repo:
        record_snapshot, record = find_restore_point(repo, rp)
        keep = reachable(repo, [record_snapshot]).pack_keys()
        damaged = sorted(reachable(repo, [record.manifest_snapshot]).pack_keys() - keep)
    assert damaged
    for key in damaged:
        path = tmp_path / "loc" / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.chmod(0o600)
        path.write_bytes(bytes(data))
    verdict = _failed({**shop, "location": location}, restore_point=rp,
                      policy=VerificationPolicy(annotation_checks=False))
    assert verdict["result"] == "error" and verdict["rto_seconds"] is None, verdict
    assert "authentication failed" in verdict["reason"] or "damaged" in verdict["reason"], verdict["reason"]
    assert verdict["teardown"] == "complete"
    _no_sandbox_left(cluster)
    with shop["key"].catalog(location) as catalog:
        assert [r.result for r in list_verifications(catalog, restore_point_id=rp)] == ["error"]
        assert rp not in verified_points(catalog), "an error verdict says nothing about the point"
