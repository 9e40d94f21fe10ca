"""CustomResourceDefinition: never recreated (deleting one deletes its custom resources cluster-wide)."""

from __future__ import annotations

from ..policy import ConflictPolicy
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class CustomResourceDefinitionAction:
    name = "crd"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"CustomResourceDefinition.apiextensions.k8s.io"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.existing is not None and item.policy is ConflictPolicy.RECREATE:
            return ActionResult.proceed(policy=ConflictPolicy.UPDATE, note=(
                "CRDs are never recreated (deleting one deletes every custom resource of it); updated instead"))
        return PROCEED
