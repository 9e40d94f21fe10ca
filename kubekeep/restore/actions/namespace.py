"""Namespace: never recreated (deleting one deletes everything in it); a Terminating one fails fast."""

from __future__ import annotations

from kubekeep.manifest import dig

from ..policy import ConflictPolicy
from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class NamespaceAction:
    name = "namespace"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"Namespace"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.existing is None:
            return PROCEED
        if dig(item.existing, "status", "phase") == "Terminating":
            return ActionResult.done(Action.NAMESPACE_TERMINATING, terminating_reason(item.ref.name))
        if item.policy is ConflictPolicy.RECREATE:
            return ActionResult.proceed(policy=ConflictPolicy.UPDATE, note=(
                "namespaces are never recreated (deleting one deletes everything in it); updated instead"))
        return PROCEED


def terminating_reason(namespace: str) -> str:
    return (f"target namespace {namespace} is Terminating: wait until it is gone, "
            "or restore into another namespace (namespace-map transform)")
