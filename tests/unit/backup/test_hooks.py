"""Hook declarations, planning and the pre/post steps, with a runner injected at the hooks layer.

The bracket that always runs post after pre (tasks.consistency.hooks_around) is tested on the real test bed
(tests/integration/test_hooks.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubekeep.backup.hooks import (
    ExecHook,
    HookError,
    HookPlan,
    HookRule,
    HookRun,
    HookTarget,
    OnError,
    hooks_from_annotations,
    parse_timeout,
    plan_for_pods,
    run_post_hooks,
    run_pre_hooks,
)
from kubekeep.cluster import ApiError, ExecResult
from kubekeep.cluster.exec import parse_exec_status


def pod(name: str, *, ns: str = "app", annotations: dict[str, str] | None = None, phase: str = "Running",
        containers: tuple[str, ...] = ("main", "sidecar")) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            "spec": {"containers": [{"name": c} for c in containers]}, "status": {"phase": phase}}


class ScriptedRunner:
    """Plays the container: exit codes by the command's first word, in call order."""

    def __init__(self, results: dict[str, ExecResult | Exception] | None = None) -> None:
        self.results = results or {}
        self.calls: list[tuple[str, str, str, tuple[str, ...]]] = []

    def __call__(self, target: HookTarget) -> ExecResult:
        self.calls.append((target.phase, target.pod, target.container, target.hook.command))
        time.sleep(0.002)  # distinct timestamps
        r = self.results.get(target.hook.command[0], ExecResult(0, b"ok\n", b""))
        if isinstance(r, Exception):
            raise r
        return r


def target(phase: str, pod_name: str, cmd: str, on_error: OnError = OnError.FAIL, **kw: Any) -> HookTarget:
    return HookTarget(phase, "app", pod_name, "main", ExecHook((cmd,), on_error=on_error), "rule:t", **kw)  # type: ignore[arg-type]


# ---- declarations ---------------------------------------------------------------
def test_annotations_declare_one_hook_per_phase() -> None:
    ann = {"pre.hook.backup.kubekeep.io/command": '["/bin/sh", "-c", "sync"]',
           "pre.hook.backup.kubekeep.io/container": "db",
           "pre.hook.backup.kubekeep.io/timeout": "2m",
           "pre.hook.backup.kubekeep.io/on-error": "Continue",
           "post.hook.backup.kubekeep.io/command": "unfreeze"}
    (pre,) = hooks_from_annotations(ann, "pre")
    assert pre == ExecHook(("/bin/sh", "-c", "sync"), "db", 120.0, OnError.CONTINUE)
    (post,) = hooks_from_annotations(ann, "post")
    assert post == ExecHook(("unfreeze",), None, 30.0, OnError.FAIL)
    assert hooks_from_annotations({}, "pre") == ()


@pytest.mark.parametrize("ann, message", [
    ({"pre.hook.backup.kubekeep.io/command": "[not json"}, "invalid JSON array"),
    ({"pre.hook.backup.kubekeep.io/command": "[1, 2]"}, "JSON array of strings"),
    ({"pre.hook.backup.kubekeep.io/command": "[]"}, "JSON array of strings"),
    ({"pre.hook.backup.kubekeep.io/command": '["x"]', "pre.hook.backup.kubekeep.io/on-error": "ignore"},
     "use fail or continue"),
    ({"pre.hook.backup.kubekeep.io/command": '["x"]', "pre.hook.backup.kubekeep.io/timeout": "soon"},
     "invalid hook timeout"),
])
def test_bad_annotations_are_clear_errors(ann: dict[str, str], message: str) -> None:
    with pytest.raises(HookError, match=message):
        hooks_from_annotations(ann, "pre")


def test_timeouts_parse() -> None:
    assert parse_timeout(5) == 5.0
    assert parse_timeout("1m30s") == 90.0
    assert parse_timeout("1h") == 3600.0
    with pytest.raises(HookError):
        parse_timeout("0")


def test_rule_from_dict_rejects_unknown_fields() -> None:
    rule = HookRule.from_dict({"name": "pg", "label_selector": "app=db", "namespaces": ["shop-*"],
                               "pre": [{"command": ["psql", "-c", "CHECKPOINT"], "container": "postgres",
                                        "timeout": "10s", "on_error": "continue"}]})
    assert rule.pre[0].timeout == 10.0 and rule.pre[0].on_error is OnError.CONTINUE
    with pytest.raises(HookError, match="unknown hook field"):
        HookRule.from_dict({"name": "x", "pre": [{"command": ["a"], "onError": "fail"}]})


def test_plan_annotation_overrides_rule_and_defaults_to_first_container() -> None:
    rule = HookRule("r", pre=(ExecHook(("rule-pre",)),), post=(ExecHook(("rule-post",)),))
    pods = [pod("b", annotations={"pre.hook.backup.kubekeep.io/command": '["ann-pre"]'}), pod("a"),
            pod("c", phase="Pending"), pod("unmatched")]
    plan = plan_for_pods(pods, {"r": {("app", "a"), ("app", "b"), ("app", "c")}}, [rule])
    assert [(t.pod, t.hook.command[0], t.source) for t in plan.pre] == [
        ("a", "rule-pre", "rule:r"), ("b", "ann-pre", "annotation"), ("c", "rule-pre", "rule:r")]
    assert [t.pod for t in plan.post] == ["a", "b", "c"]  # b has no post annotation: the rule's post applies
    assert all(t.container == "main" for t in plan.pre)
    assert not plan.pre[2].pod_running


# ---- execution semantics -----------------------------------------------------------
def test_pre_then_post_in_order_with_ordered_timestamps() -> None:
    plan = HookPlan(pre=(target("pre", "a", "freeze"), target("pre", "b", "freeze")),
                    post=(target("post", "a", "thaw"), target("post", "b", "thaw")))
    runner = ScriptedRunner()
    run = run_pre_hooks(plan, runner)
    assert [e.status for e in run.executions] == ["succeeded", "succeeded"]
    run = run_post_hooks(plan, runner, run)
    assert [(c[0], c[1]) for c in runner.calls] == [("pre", "a"), ("pre", "b"), ("post", "a"), ("post", "b")]
    ex = run.executions
    assert all(e.started_at <= e.finished_at for e in ex)
    assert all(ex[i].finished_at <= ex[i + 1].started_at for i in range(len(ex) - 1))
    assert ex[0].stdout_tail == "ok\n" and ex[0].exit_code == 0


def test_failing_pre_hook_aborts_but_post_runs_for_pods_reached() -> None:
    plan = HookPlan(pre=(target("pre", "a", "freeze"), target("pre", "b", "bad"), target("pre", "c", "freeze")),
                    post=(target("post", "a", "thaw"), target("post", "b", "thaw"), target("post", "c", "thaw"),
                          target("post", "d", "notify")))
    runner = ScriptedRunner({"bad": ExecResult(3, b"", b"disk full\n", failure="exit status 3")})
    with pytest.raises(HookError, match=r"pre hook \['bad'\].*app/b container main failed: exit code 3.*disk full"
                       ) as info:
        run_pre_hooks(plan, runner)
    assert info.value.run is not None and info.value.run.pre_aborted
    run_post_hooks(plan, runner, info.value.run)
    # c never got its pre hook, so no post for c; d has post hooks only, so it runs
    assert [(c[0], c[1]) for c in runner.calls] == [
        ("pre", "a"), ("pre", "b"), ("post", "a"), ("post", "b"), ("post", "d")]


def test_continue_hooks_record_failures_and_go_on() -> None:
    plan = HookPlan(pre=(target("pre", "a", "bad", OnError.CONTINUE), target("pre", "b", "freeze")),
                    post=(target("post", "a", "thaw"),))
    runner = ScriptedRunner({"bad": ExecResult(1, b"", b"nope")})
    run = run_post_hooks(plan, runner, run_pre_hooks(plan, runner))
    assert [e.status for e in run.executions] == ["failed", "succeeded", "succeeded"]
    assert run.failures[0].error == "exit code 1" and run.failures[0].stderr_tail == "nope"


def test_exec_start_errors_timeouts_and_skips_are_recorded() -> None:
    plan = HookPlan(pre=(target("pre", "a", "gone", OnError.CONTINUE), target("pre", "b", "slow", OnError.CONTINUE),
                         target("pre", "c", "x", pod_running=False),
                         target("pre", "d", "x", OnError.CONTINUE, container_missing=True)))
    runner = ScriptedRunner({"gone": ApiError(404, "NotFound", "pods \"a\" not found"),
                             "slow": ExecResult(None, b"", b"", failure="no exit within 1s", timed_out=True)})
    run = run_pre_hooks(plan, runner)
    assert [(e.pod, e.status) for e in run.executions] == [("a", "failed"), ("b", "failed"), ("c", "skipped"),
                                                           ("d", "failed")]
    assert "exec could not start" in (run.executions[0].error or "")
    assert run.executions[1].error == "timed out"
    assert "not in the pod" in (run.executions[3].error or "")
    assert [c[1] for c in runner.calls] == ["a", "b"]  # skipped and missing containers never exec


def test_post_failures_raise_after_all_post_hooks_ran_and_run_round_trips() -> None:
    plan = HookPlan(pre=(target("pre", "a", "freeze"),),
                    post=(target("post", "a", "bad"), target("post", "a", "thaw")))
    runner = ScriptedRunner({"bad": ExecResult(2, b"", b"")})
    run = run_pre_hooks(plan, runner)
    carried = HookRun.from_dict(run.to_dict())  # as if handed from one Prefect task to another
    assert carried.to_dict() == run.to_dict()
    with pytest.raises(HookError, match="post hook"):
        run_post_hooks(plan, runner, carried)
    assert [c[3][0] for c in runner.calls] == ["freeze", "bad", "thaw"]


def test_post_without_pre_is_refused() -> None:
    with pytest.raises(HookError, match="before the pre phase"):
        run_post_hooks(HookPlan(), ScriptedRunner(), HookRun())


# ---- the exec status channel ---------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    (b'{"metadata":{},"status":"Success"}', (0, None)),
    (b'{"status":"Failure","message":"command terminated with non-zero exit code: 7","reason":"NonZeroExitCode",'
     b'"details":{"causes":[{"reason":"ExitCode","message":"7"}]}}',
     (7, "command terminated with non-zero exit code: 7")),
    (b'{"status":"Failure","message":"error executing command in container: cmd wait: sh -c exit 3: exit status 3"}',
     (3, "error executing command in container: cmd wait: sh -c exit 3: exit status 3")),
    (b'{"status":"Failure","message":"executable file not found in $PATH"}',
     (None, "executable file not found in $PATH")),
    (b"", (None, "the stream closed without an exit status")),
])
def test_parse_exec_status(raw: bytes, expected: tuple[int | None, str | None]) -> None:
    assert parse_exec_status(raw) == expected
