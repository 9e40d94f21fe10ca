"""Per-kind restore actions, as a registry (one module per kind).

The engine runs, for each object, every action whose :meth:`applies_to`
names the object's group-kind, in registry order. A run can pass its own
registry (``apply(..., actions=(*DEFAULT_ACTIONS, MyAction()))``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kubekeep.manifest import ObjectRef

from .base import PROCEED, ActionResult, BeforeWorkloads, RestoreAction, RestoreContext, RestoredPvc, RestoreItem
from .clusterrolebinding import ClusterRoleBindingAction
from .configmap import ConfigMapAction
from .crd import CustomResourceDefinitionAction
from .namespace import NamespaceAction
from .persistentvolume import PersistentVolumeAction
from .persistentvolumeclaim import PersistentVolumeClaimAction
from .secret import SecretAction
from .service import ServiceAction
from .serviceaccount import ServiceAccountAction
from .statefulset import StatefulSetAction

DEFAULT_ACTIONS: tuple[RestoreAction, ...] = (
    NamespaceAction(),
    CustomResourceDefinitionAction(),
    ServiceAccountAction(),
    ClusterRoleBindingAction(),
    ConfigMapAction(),
    SecretAction(),
    PersistentVolumeAction(),
    PersistentVolumeClaimAction(),
    ServiceAction(),
    StatefulSetAction(),
)


def actions_for(ref: ObjectRef, actions: Sequence[RestoreAction] = DEFAULT_ACTIONS) -> list[RestoreAction]:
    """The actions that apply to ``ref``, in registry order (the legacy ``extensions`` group counts as ``apps``)."""
    group = "apps" if ref.group == "extensions" else ref.group
    group_kind = f"{ref.kind}.{group}" if group else ref.kind
    return [a for a in actions if group_kind in a.applies_to()]


__all__ = [
    "DEFAULT_ACTIONS",
    "PROCEED",
    "ActionResult",
    "BeforeWorkloads",
    "ClusterRoleBindingAction",
    "ConfigMapAction",
    "CustomResourceDefinitionAction",
    "NamespaceAction",
    "PersistentVolumeAction",
    "PersistentVolumeClaimAction",
    "RestoreAction",
    "RestoreContext",
    "RestoreItem",
    "RestoredPvc",
    "SecretAction",
    "ServiceAccountAction",
    "ServiceAction",
    "StatefulSetAction",
    "actions_for",
]
