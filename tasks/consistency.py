"""Consistency tasks around a backup: exec hooks and quiesce by scale-down (thin wrappers over the core)."""

from __future__ import annotations

import fnmatch
from typing import Any

from prefect import task

from blocks import ClusterConnection
from kubekeep.backup.hooks import HookRule, HookRun, api_runner, plan_hooks, run_post_hooks, run_pre_hooks
from kubekeep.backup.quiesce import QuiesceRecord, WorkloadRef, quiesce, select_workloads, unquiesce
from kubekeep.backup.scope import BackupScope, namespace_names

from .common import DATA_TASK

#: hooks and scaling change the application: never retried blindly
ONCE: dict[str, Any] = {**DATA_TASK, "retries": 0}


@task(name="resolve-selection", retries=2, retry_delay_seconds=2, persist_result=False)
def resolve_selection(cluster: ClusterConnection, selection: BackupScope) -> list[str]:
    with cluster.connect() as c:
        return selection.resolve_namespaces(namespace_names(c))


@task(name="pre-hooks", **ONCE)
def pre_hooks(cluster: ClusterConnection, namespaces: list[str], rules: list[HookRule],
              run: HookRun) -> HookRun:
    """Run the pre hooks; on failure the HookError carries the run, so the caller can still run post hooks."""
    with cluster.connect() as c:
        return run_pre_hooks(plan_hooks(c, namespaces, rules), api_runner(c), run)


@task(name="post-hooks", **ONCE)
def post_hooks(cluster: ClusterConnection, namespaces: list[str], rules: list[HookRule], run: HookRun) -> HookRun:
    with cluster.connect() as c:
        return run_post_hooks(plan_hooks(c, namespaces, rules), api_runner(c), run)


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
