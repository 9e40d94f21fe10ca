"""Consistency around a backup (or a migration's final copy): exec hooks and quiesce by scale-down.

The brackets live here, once: :func:`hooks_around` (pre hooks on entry, post hooks on exit, always) and
:func:`quiesced` (workloads scaled to zero inside, restored on exit, always). Each step is a task (a task
run in the UI, the steps themselves in ``kubekeep.backup.hooks`` and ``kubekeep.backup.quiesce``); a flow
writes ``with hooks_around(...):`` and ``with quiesced(...):`` around the tasks that need them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect import task

from blocks import ClusterConnection
from kubekeep.backup.hooks import (
    HookError,
    HookRule,
    HookRun,
    api_runner,
    failure_message,
    plan_hooks,
    run_post_hooks,
    run_pre_hooks,
)
from kubekeep.backup.quiesce import QuiesceError, QuiesceRecord, WorkloadRef, quiesce, select_workloads, unquiesce
from kubekeep.backup.scope import BackupScope, namespace_names

from .common import DATA_TASK

#: hooks and scaling change the application: never retried blindly
ONCE: dict[str, Any] = {**DATA_TASK, "retries": 0}


@task(name="resolve-namespaces", retries=2, retry_delay_seconds=2, persist_result=False)
def resolve_namespaces(cluster: ClusterConnection, scope: BackupScope) -> list[str]:
    """The namespaces the scope's names and patterns match now."""
    with cluster.connect() as c:
        return scope.resolve_namespaces(namespace_names(c))


@task(name="pre-hooks", **ONCE)
def pre_hooks(cluster: ClusterConnection, namespaces: list[str], rules: list[HookRule], run: HookRun) -> HookRun:
    """Run the pre hooks; on failure the HookError carries the run, so that post hooks still run."""
    with cluster.connect() as c:
        return run_pre_hooks(plan_hooks(c, namespaces, rules), api_runner(c), run)


@task(name="post-hooks", **ONCE)
def post_hooks(cluster: ClusterConnection, namespaces: list[str], rules: list[HookRule], run: HookRun,
               raise_on_failure: bool = True) -> HookRun:
    """Run every post hook that is due (all of them, even when some fail)."""
    with cluster.connect() as c:
        return run_post_hooks(plan_hooks(c, namespaces, rules), api_runner(c), run,
                              raise_on_failure=raise_on_failure)


def _keep(run: HookRun, into: HookRun) -> None:
    into.executions, into.pre_started = list(run.executions), run.pre_started
    into.pre_reached, into.pre_aborted = set(run.pre_reached), run.pre_aborted


@contextmanager
def hooks_around(cluster: ClusterConnection, namespaces: list[str], rules: Sequence[HookRule]) -> Iterator[HookRun]:
    """Pre hooks on entry, post hooks on exit: always, also when a pre hook or the body fails.

    A failing ``on_error=fail`` pre hook raises HookError (after the post hooks of the pods it reached
    ran); a failing post hook raises HookError on exit. When the body raised, post-hook failures are
    added to its exception as a note instead of replacing it. The yielded HookRun holds every execution
    when the block is left.
    """
    rules = list(rules)
    run = HookRun()
    try:
        _keep(pre_hooks(cluster, namespaces, rules, HookRun()), run)
    except HookError as exc:
        if exc.run is not None:
            _keep(exc.run, run)
        _after_failure(cluster, namespaces, rules, run, exc)
        raise
    try:
        yield run
    except BaseException as exc:
        _after_failure(cluster, namespaces, rules, run, exc)
        raise
    try:
        _keep(post_hooks(cluster, namespaces, rules, run), run)
    except HookError as exc:
        if exc.run is not None:
            _keep(exc.run, run)
        raise


def _after_failure(cluster: ClusterConnection, namespaces: list[str], rules: list[HookRule], run: HookRun,
                   exc: BaseException) -> None:
    if not run.pre_started:
        return  # the pre phase never started (its plan failed): nothing to undo
    try:
        _keep(post_hooks(cluster, namespaces, rules, run, raise_on_failure=False), run)
    finally:
        failed = [e for e in run.phase("post") if e.status == "failed"]
        if failed:
            exc.add_note("post hooks failed too: " + "; ".join(failure_message(e) for e in failed))


def match_workloads(candidates: list[WorkloadRef], patterns: list[str]) -> list[WorkloadRef]:
    """``*`` for all; ``Kind/name`` or ``namespace/Kind/name`` (shell patterns allowed)."""
    out = []
    for ref in candidates:
        for p in patterns:
            parts = p.split("/")
            if p == "*" or (len(parts) == 2 and fnmatch.fnmatchcase(ref.kind, parts[0])
                            and fnmatch.fnmatchcase(ref.name, parts[1])) or \
                    (len(parts) == 3 and fnmatch.fnmatchcase(ref.namespace, parts[0])
                     and fnmatch.fnmatchcase(ref.kind, parts[1]) and fnmatch.fnmatchcase(ref.name, parts[2])):
                out.append(ref)
                break
    return out


@task(name="quiesce", **ONCE)
def quiesce_workloads(cluster: ClusterConnection, namespaces: list[str], patterns: list[str],
                      timeout: float = 120.0) -> QuiesceRecord:
    """Scale the matching Deployments, StatefulSets and ReplicaSets to zero and wait until their pods are
    gone (a failure restores what was touched before raising)."""
    with cluster.connect() as c:
        candidates = [ref for ns in namespaces for ref in select_workloads(c, ns)]
        chosen = match_workloads(candidates, patterns)
        if not chosen:
            raise ValueError(f"no Deployment/StatefulSet/ReplicaSet matches quiesce patterns {patterns}")
        return quiesce(c, chosen, timeout=timeout)


@task(name="unquiesce", **{**DATA_TASK, "retries": 3})
def unquiesce_workloads(cluster: ClusterConnection, refs: list[WorkloadRef]) -> int:
    """Restore replica counts from the annotations (idempotent, so retrying is safe)."""
    with cluster.connect() as c:
        return len(unquiesce(c, refs))


@contextmanager
def quiesced(cluster: ClusterConnection, namespaces: list[str], patterns: Sequence[str] | None, *,
             timeout: float = 120.0, keep: bool = False) -> Iterator[QuiesceRecord | None]:
    """The workloads ``patterns`` match scaled to zero inside the block, restored on exit: also when the
    block raises (a failure to restore is then added to its exception as a note). No patterns: nothing
    is quiesced (yields None). ``timeout``: seconds to wait for the pods to stop. ``keep``: a block that
    succeeds leaves them at zero (a migration's cutover: the source stays quiesced; their annotations
    hold the replica counts for a rollback); a block that raises still restores them."""
    if not patterns:
        yield None
        return
    record = quiesce_workloads(cluster, namespaces, list(patterns), timeout)
    try:
        yield record
    except BaseException as exc:
        try:
            unquiesce_workloads(cluster, record.refs)
        except QuiesceError as undo:
            exc.add_note(str(undo))
        raise
    if not keep:
        unquiesce_workloads(cluster, record.refs)
