"""PersistentVolume: never recreate a volume that is bound (its reclaim policy may delete the data)."""

from __future__ import annotations

from kubekeep.manifest import dig

from ..policy import ConflictPolicy
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class PersistentVolumeAction:
    name = "persistentvolume"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"PersistentVolume"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if (item.existing is not None and item.policy is ConflictPolicy.RECREATE and not ctx.policy.recreate_pvcs
                and dig(item.existing, "status", "phase") in ("Bound", "Released")):
            return ActionResult.proceed(policy=ConflictPolicy.SKIP, note=(
                "not recreated: the volume holds data (deleting it may delete the disk); "
                "recreate_pvcs=True recreates it"))
        return PROCEED
