"""Secret: a service-account token secret gets a token of the target cluster, not the source's."""

from __future__ import annotations

import copy

from .base import PROCEED, ActionResult, RestoreContext, RestoreItem

TOKEN_TYPE = "kubernetes.io/service-account-token"
TOKEN_KEYS = ("token", "ca.crt", "namespace")


class SecretAction:
    name = "secret"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"Secret"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.manifest.get("type") != TOKEN_TYPE:
            return PROCEED
        manifest = copy.deepcopy(item.manifest)
        data = manifest.get("data") or {}
        for key in TOKEN_KEYS:
            data.pop(key, None)
        if data:
            manifest["data"] = data
        else:
            manifest.pop("data", None)
        return ActionResult.proceed(manifest=manifest, note=(
            "service-account token left out: the target's token controller issues one signed by the target"))
