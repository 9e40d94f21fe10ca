"""StatefulSet: the StorageClasses of its volumeClaimTemplates must exist (its claims are created later)."""

from __future__ import annotations

from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem
from .persistentvolumeclaim import missing_storage_class


class StatefulSetAction:
    name = "statefulset"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"StatefulSet.apps"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.existing is not None:
            return PROCEED
        for template in (item.manifest.get("spec") or {}).get("volumeClaimTemplates") or ():
            problem = missing_storage_class((template or {}).get("spec") or {}, ctx)
            if problem:
                name = (template.get("metadata") or {}).get("name", "?")
                return ActionResult.done(Action.MISSING_STORAGE_CLASS, f"volumeClaimTemplate {name}: {problem}")
        return PROCEED
