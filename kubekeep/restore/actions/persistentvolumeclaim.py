"""PersistentVolumeClaim: never recreate a claim that holds data; its StorageClass must exist."""

from __future__ import annotations

from typing import Any

from kubekeep.manifest import dig

from ..policy import ConflictPolicy
from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class PersistentVolumeClaimAction:
    name = "persistentvolumeclaim"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"PersistentVolumeClaim"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.existing is not None:
            if item.policy is ConflictPolicy.RECREATE and holds_data(item.existing) and not ctx.policy.recreate_pvcs:
                volume = dig(item.existing, "spec", "volumeName")
                return ActionResult.proceed(policy=ConflictPolicy.SKIP, note=(
                    f"not recreated: the claim holds data (bound to {volume}); recreate_pvcs=True recreates it"))
            return PROCEED
        problem = missing_storage_class(item.manifest.get("spec") or {}, ctx)
        if problem:
            return ActionResult.done(Action.MISSING_STORAGE_CLASS, problem)
        return PROCEED


def holds_data(claim: dict[str, Any]) -> bool:
    return dig(claim, "status", "phase") == "Bound" or bool(dig(claim, "spec", "volumeName"))


def missing_storage_class(spec: dict[str, Any], ctx: RestoreContext) -> str | None:
    """Why a claim with this spec cannot be provisioned on the target (None: it can)."""
    if spec.get("volumeName"):
        return None  # bound statically to a named volume
    name = spec.get("storageClassName")
    if name == "":
        return None  # explicitly no class: binds to a matching pre-provisioned volume
    if name is None:
        if ctx.default_storage_class() is None:
            return ("no storageClassName and the target has no default StorageClass: "
                    "set one with a storage-class-map transform")
        return None
    if not ctx.storage_class_known(str(name)):
        return (f"StorageClass {name!r} does not exist on the target and is not part of this restore: "
                "map it with a storage-class-map transform")
    return None
