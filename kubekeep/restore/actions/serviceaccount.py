"""ServiceAccount: the ``default`` account is created by the ServiceAccount controller in every namespace."""

from __future__ import annotations

from ..policy import ConflictPolicy
from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class ServiceAccountAction:
    name = "serviceaccount"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"ServiceAccount"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.ref.name != "default" or item.existing is None:
            return PROCEED
        if item.policy is ConflictPolicy.UPDATE:
            # keeps the controller's object, adds what the backup set (e.g. imagePullSecrets)
            return PROCEED
        return ActionResult.done(Action.SKIPPED,
                                 "the ServiceAccount controller creates 'default' in every namespace; kept as is")
