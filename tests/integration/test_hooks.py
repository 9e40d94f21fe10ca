"""Hooks exec'd for real: kube-apiserver proxies pods/exec to kwok, which runs the command locally
in a per-pod working directory (the test bed's kwok Exec configuration). The bracket is the one the
backup flow runs (tasks.consistency.hooks_around: pre and post hooks are tasks of the Prefect API)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from blocks import ClusterConnection
from kubekeep.backup.hooks import (
    ExecHook,
    HookError,
    HookRule,
    HookRun,
    OnError,
    api_runner,
    plan_hooks,
    run_post_hooks,
    run_pre_hooks,
)
from kubekeep.cluster import ApiError, Cluster, exec_in_pod
from tasks.consistency import hooks_around

PRE = "pre.hook.backup.kubekeep.io"
POST = "post.hook.backup.kubekeep.io"


@pytest.fixture
def control_plane(test_cluster: Any) -> Any:
    if test_cluster.control_plane is None:
        pytest.skip("needs the test bed's kwok exec configuration")
    return test_cluster.control_plane


@pytest.fixture
def conn(test_cluster: Any, prefect_api: str) -> ClusterConnection:
    return ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig))


def make_pod(cluster: Cluster, control_plane: Any, namespace: str, name: str, *,
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Path:
    """A Running kwok pod (containers db + sidecar) whose exec runs in its own directory; returns it."""
    cluster.create({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                                 "annotations": annotations or {}},
                    "spec": {"containers": [{"name": "db", "image": "postgres:16"},
                                            {"name": "sidecar", "image": "busybox"}]}})
    workdir: Path = control_plane.pod_exec_dir(cluster, namespace, name, env={"POD_NAME": name})
    cluster.wait_for("v1", "Pod", name, lambda o: bool(o) and o["status"].get("phase") == "Running",  # type: ignore[index]
                     namespace=namespace, timeout=60, what="Running")
    # kwok learns about the Exec object through a watch: wait until exec lands in the pod's directory
    deadline = time.monotonic() + 30
    while exec_in_pod(cluster, namespace, name, ["pwd"], container="db").stdout.strip() != str(workdir).encode():
        assert time.monotonic() < deadline, "kwok did not pick up the pod's Exec configuration"
        time.sleep(0.2)
    return workdir


def test_exec_runs_the_command_and_reports_exit_code_output_and_errors(
        cluster: Cluster, namespace: str, control_plane: Any) -> None:
    workdir = make_pod(cluster, control_plane, namespace, "db-0")
    r = exec_in_pod(cluster, namespace, "db-0", ["sh", "-c", 'echo "out $POD_NAME"; echo err >&2; pwd'],
                    container="db")
    assert r.ok and r.exit_code == 0
    assert r.stdout == f"out db-0\n{workdir}\n".encode() and r.stderr == b"err\n"

    r = exec_in_pod(cluster, namespace, "db-0", ["sh", "-c", "echo partial; exit 3"], container="db")
    assert (r.exit_code, r.stdout, r.ok) == (3, b"partial\n", False)

    big = exec_in_pod(cluster, namespace, "db-0", ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo END"],
                      container="db", output_limit=1000)
    assert big.truncated and len(big.stdout) == 1000 and big.stdout.endswith(b"xEND\n")

    t0 = time.monotonic()
    slow = exec_in_pod(cluster, namespace, "db-0", ["sleep", "30"], container="db", timeout=1)
    assert slow.timed_out and slow.exit_code is None and time.monotonic() - t0 < 10

    with pytest.raises(ApiError, match="container nope is not valid") as info:
        exec_in_pod(cluster, namespace, "db-0", ["true"], container="nope")
    assert info.value.status == 400
    with pytest.raises(ApiError, match="not found") as info:
        exec_in_pod(cluster, namespace, "missing", ["true"])
    assert info.value.status == 404


def _log_cmd(tag: str) -> list[str]:
    # appends "<tag> <ns-clock>" to the pod's own log: the order on disk is the order of execution
    return ["sh", "-c", f'echo "{tag} $(date +%s%N)" >> hooks.log; echo {tag} done']


def test_annotation_and_policy_hooks_run_in_order_and_post_hooks_survive_a_failed_backup(
        cluster: Cluster, namespace: str, control_plane: Any, conn: ClusterConnection) -> None:
    db_dir = make_pod(cluster, control_plane, namespace, "db-0", labels={"app": "db"}, annotations={
        f"{PRE}/command": json.dumps(_log_cmd("freeze")), f"{PRE}/container": "db",
        f"{POST}/command": json.dumps(_log_cmd("thaw")), f"{POST}/container": "db", f"{POST}/timeout": "10s"})
    web_dir = make_pod(cluster, control_plane, namespace, "web-0", labels={"app": "web"})
    make_pod(cluster, control_plane, namespace, "other-0", labels={"app": "other"})
    rules = [HookRule("web-flush", namespaces=(namespace,), label_selector="app in (web,db)",
                      pre=(ExecHook(tuple(_log_cmd("flush")), container="sidecar"),),
                      post=(ExecHook(tuple(_log_cmd("resume")), on_error=OnError.CONTINUE),))]
    plan = plan_hooks(cluster, [namespace], rules)
    # the annotation wins for db-0; the rule covers web-0; other-0 has no hooks
    assert [(t.pod, t.container, t.source) for t in plan.pre] == [
        ("db-0", "db", "annotation"), ("web-0", "sidecar", "rule:web-flush")]
    assert [(t.pod, t.container) for t in plan.post] == [("db-0", "db"), ("web-0", "db")]

    with pytest.raises(RuntimeError, match="volume export failed"), \
            hooks_around(conn, [namespace], rules) as run:
        assert (db_dir / "hooks.log").read_text().startswith("freeze ")
        assert not (db_dir / "hooks.log").read_text().count("thaw")
        raise RuntimeError("volume export failed")

    assert [(e.phase, e.pod, e.container, e.status, e.exit_code) for e in run.executions] == [
        ("pre", "db-0", "db", "succeeded", 0), ("pre", "web-0", "sidecar", "succeeded", 0),
        ("post", "db-0", "db", "succeeded", 0), ("post", "web-0", "db", "succeeded", 0)]
    ex = run.executions
    assert all(a.finished_at <= b.started_at for a, b in zip(ex, ex[1:], strict=False))
    assert ex[0].stdout_tail == "freeze done\n" and ex[0].command == tuple(_log_cmd("freeze"))
    assert all(e.duration_seconds >= 0 for e in ex)
    assert [line.split()[0] for line in (db_dir / "hooks.log").read_text().splitlines()] == ["freeze", "thaw"]
    assert [line.split()[0] for line in (web_dir / "hooks.log").read_text().splitlines()] == ["flush", "resume"]
    clocks = [int(line.split()[1]) for line in (db_dir / "hooks.log").read_text().splitlines()]
    assert clocks == sorted(clocks)


def test_failing_pre_hook_aborts_the_backup_and_still_thaws_from_a_separate_task(
        cluster: Cluster, namespace: str, control_plane: Any) -> None:
    a_dir = make_pod(cluster, control_plane, namespace, "a-0", labels={"app": "db"})
    make_pod(cluster, control_plane, namespace, "b-0", labels={"app": "db"}, annotations={
        f"{PRE}/command": '["sh", "-c", "echo cannot freeze >&2; exit 4"]',
        f"{POST}/command": json.dumps(_log_cmd("thaw"))})
    c_dir = make_pod(cluster, control_plane, namespace, "c-0", labels={"app": "db"})
    rules = [HookRule("db", label_selector="app=db", pre=(ExecHook(tuple(_log_cmd("freeze"))),),
                      post=(ExecHook(tuple(_log_cmd("thaw"))),))]
    plan = plan_hooks(cluster, [namespace], rules)
    runner = api_runner(cluster)

    with pytest.raises(HookError) as info:
        run_pre_hooks(plan, runner)
    assert "pre hook" in str(info.value) and "b-0 container db failed: exit code 4" in str(info.value)
    assert "cannot freeze" in str(info.value)
    run = info.value.run
    assert run is not None and run.pre_aborted
    # the post phase may run in another task: the run travels as a dict
    run = run_post_hooks(plan, runner, HookRun.from_dict(run.to_dict()))
    assert [(e.phase, e.pod, e.status) for e in run.executions] == [
        ("pre", "a-0", "succeeded"), ("pre", "b-0", "failed"), ("post", "a-0", "succeeded"),
        ("post", "b-0", "succeeded")]
    assert run.executions[1].exit_code == 4 and run.executions[1].stderr_tail == "cannot freeze\n"
    assert [line.split()[0] for line in (a_dir / "hooks.log").read_text().splitlines()] == ["freeze", "thaw"]
    assert not (c_dir / "hooks.log").exists()  # never frozen, so never thawed


def test_hook_timeout_and_missing_container_follow_on_error(
        cluster: Cluster, namespace: str, control_plane: Any, conn: ClusterConnection) -> None:
    make_pod(cluster, control_plane, namespace, "db-0", annotations={
        f"{PRE}/command": '["sleep", "20"]', f"{PRE}/timeout": "1s", f"{PRE}/on-error": "continue",
        f"{POST}/command": '["true"]', f"{POST}/container": "nope"})
    assert len(plan_hooks(cluster, [namespace]).pre) == 1
    with pytest.raises(HookError, match="container 'nope' is not in the pod"), \
            hooks_around(conn, [namespace], []) as run:
        pass
    pre, post = run.executions
    assert pre.status == "failed" and pre.error == "timed out" and pre.duration_seconds < 10
    assert post.status == "failed" and post.exit_code is None


def test_a_failing_body_keeps_its_error_and_post_hook_failures_become_a_note(
        cluster: Cluster, namespace: str, control_plane: Any, conn: ClusterConnection) -> None:
    db_dir = make_pod(cluster, control_plane, namespace, "db-0", annotations={
        f"{PRE}/command": json.dumps(_log_cmd("freeze")), f"{PRE}/container": "db",
        f"{POST}/command": '["sh", "-c", "echo thaw >> hooks.log; exit 9"]', f"{POST}/container": "db"})
    with pytest.raises(KeyError) as info, hooks_around(conn, [namespace], []):
        raise KeyError("body")
    assert any("post hooks failed too" in n and "exit code 9" in n for n in info.value.__notes__)
    assert [line.split()[0] for line in (db_dir / "hooks.log").read_text().splitlines()] == ["freeze", "thaw"]
