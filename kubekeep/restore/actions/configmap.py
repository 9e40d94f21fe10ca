"""ConfigMap: ``kube-root-ca.crt`` is published by the target's controller (its CA, not the source's)."""

from __future__ import annotations

from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


class ConfigMapAction:
    name = "configmap"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"ConfigMap"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.ref.name == ROOT_CA_CONFIGMAP:
            return ActionResult.done(Action.SKIPPED, (
                "published in every namespace by the target's root-ca-cert-publisher (the target's CA must win)"))
        return PROCEED
