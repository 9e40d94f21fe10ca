"""Namespaces and objects that already exist on the target.

- a target namespace that is Terminating: blocking (the restore would stop);
- an object of the plan that exists on the target and was not made by this
  migration (its pre-seed carries the migration id): in a namespace, blocking
  under the default policy (skip: the app would run with the target's object,
  silently different), a warning under update/recreate (it is overwritten);
  cluster-scoped, a warning (shared objects are kept or replaced by policy);
- objects every namespace gets from the target's own controllers (the
  ``default`` ServiceAccount, ``kube-root-ca.crt``) are never conflicts, nor are
  CRDs and StorageClasses (their own checks decide).
"""

from __future__ import annotations

from collections.abc import Iterator

from kubekeep.restore.actions.configmap import ROOT_CA_CONFIGMAP
from kubekeep.restore.policy import ConflictPolicy

from ..model import PlanItem, Severity, Topic
from .context import CheckContext

#: made in every namespace by the target's controllers
PER_NAMESPACE = {("", "ServiceAccount", "default"), ("", "ConfigMap", ROOT_CA_CONFIGMAP)}
#: decided by their own checks
OWN_CHECK = {("apiextensions.k8s.io", "CustomResourceDefinition"), ("storage.k8s.io", "StorageClass"),
             ("", "Namespace")}


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    for ns in ctx.prepared.target_namespaces():
        info = ctx.facts.namespaces.get(ns)
        if info is None:
            continue
        if info.phase == "Terminating":
            yield PlanItem(Severity.BLOCKING, Topic.NAMESPACE, f"Namespace {ns}",
                           "Terminating on the target: the restore cannot create anything in it",
                           "wait until it is gone, or map the namespace elsewhere (--namespace-map)")
        elif info.migration is not None and info.migration == ctx.prepared.options.migration_id:
            yield PlanItem(Severity.INFO, Topic.NAMESPACE, f"Namespace {ns}", "made by this migration's pre-seed")
        else:
            yield PlanItem(Severity.INFO, Topic.NAMESPACE, f"Namespace {ns}",
                           "exists on the target: the migration adds its objects to it")
    conflicts: dict[tuple[str, Severity], list[str]] = {}
    ours = 0
    for obj in ctx.prepared.objects:
        ref = obj.ref
        existing = ctx.existing(ref)
        if existing is None or (ref.group, ref.kind, ref.name) in PER_NAMESPACE or (ref.group, ref.kind) in OWN_CHECK:
            continue
        if ctx.made_by_this_migration(existing):
            ours += 1
            continue
        policy = ctx.policy_for(ref)
        severity = Severity.BLOCKING if ref.namespace and policy is ConflictPolicy.SKIP else Severity.WARNING
        conflicts.setdefault((ref.namespace, severity), []).append(f"{ref} (policy {policy.value})")
    if ours:
        yield PlanItem(Severity.INFO, Topic.NAMESPACE, "pre-seeded objects",
                       f"{ours} object(s) on the target were made by this migration (its pre-seed)")
    for (namespace, severity), refs in sorted(conflicts.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        where = f"Namespace {namespace}" if namespace else "cluster-scoped objects"
        if severity is Severity.BLOCKING:
            message = (f"{len(refs)} object(s) of the migration exist on the target and are not this migration's: "
                       "the restore would keep the target's versions (existing: skip) and the app would run with "
                       "them")
            hint = ("delete them on the target, map the namespace elsewhere (--namespace-map), or overwrite them "
                    "(existing: update or recreate)")
        else:
            message = (f"{len(refs)} object(s) of the migration exist on the target: kept or overwritten as "
                       "their policy says")
            hint = None
        yield PlanItem(severity, Topic.NAMESPACE, where, message, hint, objects=tuple(refs))
