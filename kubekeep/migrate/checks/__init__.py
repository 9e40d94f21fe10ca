"""The plan's checks: one module per concern, each a pure function ``check(ctx) -> Iterable[PlanItem]``.

:data:`CHECKS` is the registry the planner runs, in this order. A check reads the
prepared restore plan (every object it would create, linked to the object of the
restore point it comes from) and the target's facts; it never talks to a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..model import PlanItem
from . import crds, namespaces, network, references, scheduling, storage, versions, volumes
from .context import CheckContext

Check = Callable[[CheckContext], Iterable[PlanItem]]

CHECKS: tuple[Check, ...] = (versions.check, crds.check, storage.check, volumes.check, namespaces.check,
                             scheduling.check, network.check, references.check)

__all__ = ["CHECKS", "Check", "CheckContext"]
