"""Backup hooks: commands exec'd in application containers before and after a backup.

A database is flushed or frozen by a *pre* hook and thawed by a *post* hook, so
the volume data taken in between is application-consistent. Hooks come from
two places (the idea is Velero's; the names are ours):

1. The backup policy: ``HookRule`` objects select pods by namespace and label
   selector and list ``ExecHook`` commands for the ``pre`` and ``post`` phases.
2. Pod annotations (they win over policy rules for that pod and phase)::

       pre.hook.backup.kubekeep.io/command    '["/bin/sh", "-c", "pg_ctl ... checkpoint"]'  (JSON array;
                                               a plain string is one argv word)
       pre.hook.backup.kubekeep.io/container  postgres      (default: the pod's first container)
       pre.hook.backup.kubekeep.io/timeout    30s           (seconds, or 30s / 2m / 1h; default 30s)
       pre.hook.backup.kubekeep.io/on-error   fail|continue (default fail)

   and the same four keys with ``post.`` for the post phase.

Semantics:

- Pods are visited in (namespace, name) order; a pod's hooks run in declared
  order. Pods that are not Running are skipped (recorded as ``skipped``).
- A failing hook with ``on_error=fail`` stops the pre phase and raises
  ``HookError``; with ``continue`` the failure is recorded and the run goes on.
- Post hooks always run once the pre phase started — also when a pre hook or
  the backup failed — for every pod whose pre hooks were attempted and every
  pod that has post hooks only. Pods never reached because the pre phase
  aborted early get no post hooks (nothing was done to them).
- Every execution is recorded (``HookExecution``): pod, container, command, exit
  code, stdout/stderr tails, start/finish timestamps and duration.

``run_pre_hooks`` and ``run_post_hooks`` are the two steps (the pre result tells
post what ran); the bracket that always runs post after pre is
``tasks.consistency.hooks_around`` (each step a task of the flow).
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from kubekeep.cluster import ApiError, Cluster, ExecResult, exec_in_pod

ANNOTATION_DOMAIN = "hook.backup.kubekeep.io"
DEFAULT_TIMEOUT = 30.0
OUTPUT_TAIL = 4096  # bytes of stdout/stderr kept per execution in the record

Phase = Literal["pre", "post"]
PHASES: tuple[Phase, ...] = ("pre", "post")


class OnError(StrEnum):
    FAIL = "fail"
    CONTINUE = "continue"


class HookError(Exception):
    """A hook with ``on_error=fail`` failed (or the hook configuration is invalid)."""

    def __init__(self, message: str, executions: Sequence[HookExecution] = (), run: HookRun | None = None) -> None:
        super().__init__(message)
        self.executions = list(executions)
        self.run = run  # hand it to run_post_hooks when a pre hook failed


# ---- declarations ------------------------------------------------------------
@dataclass(frozen=True)
class ExecHook:
    """One command to run in a container."""

    command: tuple[str, ...]
    container: str | None = None  # None: the pod's first container
    timeout: float = DEFAULT_TIMEOUT
    on_error: OnError = OnError.FAIL

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(c, str) for c in self.command):
            raise HookError(f"hook command must be a non-empty list of strings, got {self.command!r}")
        if self.timeout <= 0:
            raise HookError(f"hook timeout must be positive, got {self.timeout!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecHook:
        unknown = set(data) - {"command", "container", "timeout", "on_error"}
        if unknown:
            raise HookError(f"unknown hook field(s) {sorted(unknown)}; expected command, container, timeout, on_error")
        command = data.get("command")
        if isinstance(command, str):
            command = [command]
        if not isinstance(command, list | tuple):
            raise HookError(f"hook command must be a list of strings, got {command!r}")
        return cls(command=tuple(command), container=data.get("container") or None,
                   timeout=parse_timeout(data.get("timeout", DEFAULT_TIMEOUT)),
                   on_error=parse_on_error(data.get("on_error", "fail")))


@dataclass(frozen=True)
class HookRule:
    """Policy hooks for the pods that match ``namespaces`` (names or shell patterns;
    empty = every namespace of the backup) and ``label_selector`` (Kubernetes syntax)."""

    name: str
    pre: tuple[ExecHook, ...] = ()
    post: tuple[ExecHook, ...] = ()
    namespaces: tuple[str, ...] = ()
    label_selector: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HookRule:
        unknown = set(data) - {"name", "pre", "post", "namespaces", "label_selector"}
        if unknown:
            raise HookError(f"unknown hook rule field(s) {sorted(unknown)}")
        if not data.get("name"):
            raise HookError("a hook rule needs a name")
        return cls(name=str(data["name"]),
                   pre=tuple(ExecHook.from_dict(h) for h in data.get("pre") or ()),
                   post=tuple(ExecHook.from_dict(h) for h in data.get("post") or ()),
                   namespaces=tuple(data.get("namespaces") or ()),
                   label_selector=data.get("label_selector") or None)

    def hooks(self, phase: Phase) -> tuple[ExecHook, ...]:
        return self.pre if phase == "pre" else self.post


def parse_timeout(value: Any) -> float:
    """Seconds from 30, "30", "30s", "2m", "1h", "1m30s"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise HookError(f"invalid hook timeout {value!r}: use seconds or a duration like 30s, 2m, 1h")
            seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise HookError(f"hook timeout must be positive, got {value!r}")
    return seconds


def parse_on_error(value: Any) -> OnError:
    try:
        return OnError(str(value).strip().lower())
    except ValueError:
        raise HookError(f"invalid on-error {value!r}: use fail or continue") from None


def annotation_key(phase: Phase, field_name: str) -> str:
    return f"{phase}.{ANNOTATION_DOMAIN}/{field_name}"


def hooks_from_annotations(annotations: Mapping[str, str], phase: Phase) -> tuple[ExecHook, ...]:
    """The hook a pod declares for ``phase`` (at most one), or () when it declares none."""
    raw = annotations.get(annotation_key(phase, "command"))
    if raw is None:
        return ()
    text = raw.strip()
    if text.startswith("["):
        try:
            command = json.loads(text)
        except ValueError as exc:
            raise HookError(f"annotation {annotation_key(phase, 'command')}: invalid JSON array: {exc}") from exc
    else:
        command = [text]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise HookError(f"annotation {annotation_key(phase, 'command')} must be a JSON array of strings, got {raw!r}")
    return (ExecHook(command=tuple(command),
                     container=annotations.get(annotation_key(phase, "container")) or None,
                     timeout=parse_timeout(annotations.get(annotation_key(phase, "timeout"), DEFAULT_TIMEOUT)),
                     on_error=parse_on_error(annotations.get(annotation_key(phase, "on-error"), "fail"))),)


# ---- plan --------------------------------------------------------------------
@dataclass(frozen=True)
class HookTarget:
    """One hook bound to one pod."""

    phase: Phase
    namespace: str
    pod: str
    container: str
    hook: ExecHook
    source: str  # "annotation" or "rule:<name>"
    pod_running: bool = True
    container_missing: bool = False


@dataclass(frozen=True)
class HookPlan:
    """Every hook of a backup, resolved against the pods that exist now."""

    pre: tuple[HookTarget, ...] = ()
    post: tuple[HookTarget, ...] = ()

    def targets(self, phase: Phase) -> tuple[HookTarget, ...]:
        return self.pre if phase == "pre" else self.post

    def __bool__(self) -> bool:
        return bool(self.pre or self.post)


def plan_for_pods(pods: Sequence[Mapping[str, Any]], rule_matches: Mapping[str, set[tuple[str, str]]],
                  rules: Sequence[HookRule]) -> HookPlan:
    """Pure part of planning: pods (JSON) and which (namespace, pod) each rule matches."""
    out: dict[Phase, list[HookTarget]] = {"pre": [], "post": []}
    for pod in sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        md = pod["metadata"]
        ns, name = md["namespace"], md["name"]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        running = (pod.get("status") or {}).get("phase") == "Running" and not md.get("deletionTimestamp")
        for phase in PHASES:
            try:
                declared = hooks_from_annotations(md.get("annotations") or {}, phase)
            except HookError as exc:
                raise HookError(f"pod {ns}/{name}: {exc}") from exc
            sourced: list[tuple[ExecHook, str]] = [(h, "annotation") for h in declared]
            if not declared:
                for rule in rules:
                    if (ns, name) in rule_matches.get(rule.name, set()):
                        sourced += [(h, f"rule:{rule.name}") for h in rule.hooks(phase)]
            for hook, source in sourced:
                container = hook.container or (containers[0] if containers else "")
                out[phase].append(HookTarget(phase, ns, name, container, hook, source, pod_running=running,
                                             container_missing=container not in containers))
    return HookPlan(pre=tuple(out["pre"]), post=tuple(out["post"]))


def plan_hooks(cluster: Cluster, namespaces: Sequence[str], rules: Sequence[HookRule] = ()) -> HookPlan:
    """Resolve annotation and policy hooks against the pods of ``namespaces``."""
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise HookError(f"hook rule names must be unique, got {names}")
    pod_res = cluster.resource_for("v1", "Pod")
    pods: list[dict[str, Any]] = []
    matches: dict[str, set[tuple[str, str]]] = {r.name: set() for r in rules}
    for ns in namespaces:
        pods += list(cluster.list_pages(pod_res, namespace=ns))
        for rule in rules:
            if rule.namespaces and not any(fnmatch.fnmatchcase(ns, pat) for pat in rule.namespaces):
                continue
            try:
                selected = cluster.list_pages(pod_res, namespace=ns, label_selector=rule.label_selector)
                matches[rule.name] |= {(ns, p["metadata"]["name"]) for p in selected}
            except ApiError as exc:
                if exc.status == 400:
                    raise HookError(f"hook rule {rule.name!r}: invalid label selector "
                                    f"{rule.label_selector!r}: {exc.message}") from exc
                raise
    return plan_for_pods(pods, matches, rules)


# ---- execution -----------------------------------------------------------------
@dataclass(frozen=True)
class HookExecution:
    """The record of one hook: what ran where, how it ended, and when."""

    phase: Phase
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    source: str
    on_error: OnError
    status: Literal["succeeded", "failed", "skipped"]
    exit_code: int | None
    stdout_tail: str
    stderr_tail: str
    error: str | None
    started_at: datetime
    finished_at: datetime

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.pod} container {self.container}"

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "namespace": self.namespace, "pod": self.pod, "container": self.container,
                "command": list(self.command), "source": self.source, "on_error": str(self.on_error),
                "status": self.status, "exit_code": self.exit_code, "stdout_tail": self.stdout_tail,
                "stderr_tail": self.stderr_tail, "error": self.error,
                "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
                "duration_seconds": round(self.duration_seconds, 3)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HookExecution:
        return cls(phase=d["phase"], namespace=d["namespace"], pod=d["pod"], container=d["container"],
                   command=tuple(d["command"]), source=d["source"], on_error=OnError(d["on_error"]),
                   status=d["status"], exit_code=d["exit_code"], stdout_tail=d["stdout_tail"],
                   stderr_tail=d["stderr_tail"], error=d["error"],
                   started_at=datetime.fromisoformat(d["started_at"]),
                   finished_at=datetime.fromisoformat(d["finished_at"]))


#: Runs one hook and reports what happened; the default execs through the API server.
HookRunner = Callable[[HookTarget], ExecResult]


def api_runner(cluster: Cluster) -> HookRunner:
    def run(target: HookTarget) -> ExecResult:
        return exec_in_pod(cluster, target.namespace, target.pod, list(target.hook.command),
                           container=target.container, timeout=target.hook.timeout)
    return run


def _tail(data: bytes) -> str:
    return data[-OUTPUT_TAIL:].decode("utf-8", "replace")


def execute_hook(target: HookTarget, runner: HookRunner) -> HookExecution:
    """Run one hook; never raises for a hook that fails — the record says how it failed."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    exit_code: int | None = None
    out = err = ""
    error: str | None = None
    status: Literal["succeeded", "failed", "skipped"]
    if not target.pod_running:
        status, error = "skipped", "pod is not Running"
    elif target.container_missing:
        status, error = "failed", f"container {target.container!r} is not in the pod"
    else:
        try:
            result = runner(target)
        except ApiError as exc:
            status, error = "failed", f"exec could not start: {exc}"
        else:
            exit_code, out, err = result.exit_code, _tail(result.stdout), _tail(result.stderr)
            if result.ok:
                status = "succeeded"
            else:
                status, error = "failed", result.describe()
    # finished is derived from a monotonic clock so that durations never run backwards
    finished = started + timedelta(seconds=time.monotonic() - t0)
    return HookExecution(phase=target.phase, namespace=target.namespace, pod=target.pod,
                         container=target.container, command=target.hook.command, source=target.source,
                         on_error=target.hook.on_error, status=status, exit_code=exit_code, stdout_tail=out,
                         stderr_tail=err, error=error, started_at=started, finished_at=finished)


def failure_message(ex: HookExecution) -> str:
    msg = f"{ex.phase} hook {list(ex.command)!r} ({ex.source}) in {ex.where} failed: {ex.error}"
    if ex.stderr_tail.strip():
        msg += f"; stderr: {ex.stderr_tail.strip()[-500:]}"
    return msg


@dataclass
class HookRun:
    """The executions of a backup's hooks so far (in order)."""

    executions: list[HookExecution] = field(default_factory=list)
    pre_started: bool = False
    pre_reached: set[tuple[str, str]] = field(default_factory=set)  # pods whose pre hooks were attempted
    pre_aborted: bool = False

    def phase(self, phase: Phase) -> list[HookExecution]:
        return [e for e in self.executions if e.phase == phase]

    @property
    def failures(self) -> list[HookExecution]:
        return [e for e in self.executions if e.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"executions": [e.to_dict() for e in self.executions], "pre_started": self.pre_started,
                "pre_reached": sorted(f"{ns}/{pod}" for ns, pod in self.pre_reached),
                "pre_aborted": self.pre_aborted}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HookRun:
        return cls(executions=[HookExecution.from_dict(e) for e in d.get("executions", [])],
                   pre_started=bool(d.get("pre_started")),
                   pre_reached={_split_key(k) for k in d.get("pre_reached", [])},
                   pre_aborted=bool(d.get("pre_aborted")))


def _split_key(key: str) -> tuple[str, str]:
    ns, _, pod = key.partition("/")
    return ns, pod


def run_pre_hooks(plan: HookPlan, runner: HookRunner, run: HookRun | None = None) -> HookRun:
    """Run the pre hooks in order; raise HookError at the first failing ``on_error=fail`` hook.

    Hand the HookRun to ``run_post_hooks`` whatever happens: pass your own
    ``run`` to keep it, or take ``exc.run`` from the HookError.
    """
    run = run if run is not None else HookRun()
    run.pre_started = True
    for target in plan.pre:
        run.pre_reached.add((target.namespace, target.pod))
        ex = execute_hook(target, runner)
        run.executions.append(ex)
        if ex.status == "failed" and ex.on_error == OnError.FAIL:
            run.pre_aborted = True
            raise HookError(failure_message(ex), run.executions, run)
    return run


def run_post_hooks(plan: HookPlan, runner: HookRunner, run: HookRun, *, raise_on_failure: bool = True) -> HookRun:
    """Run every post hook that is due (see the module doc); all run even when some fail.

    Raises HookError afterwards when an ``on_error=fail`` post hook failed and
    ``raise_on_failure`` is set.
    """
    if not run.pre_started:
        raise HookError("post hooks called before the pre phase started: call run_pre_hooks first")
    with_pre = {(t.namespace, t.pod) for t in plan.pre}
    failed: list[HookExecution] = []
    for target in plan.post:
        key = (target.namespace, target.pod)
        if key in with_pre and key not in run.pre_reached:
            continue  # the pre phase aborted before this pod: nothing to undo
        ex = execute_hook(target, runner)
        run.executions.append(ex)
        if ex.status == "failed" and ex.on_error == OnError.FAIL:
            failed.append(ex)
    if failed and raise_on_failure:
        raise HookError("; ".join(failure_message(ex) for ex in failed), run.executions, run)
    return run
