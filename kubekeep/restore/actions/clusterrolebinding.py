"""ClusterRoleBinding: say when the restore creates a copy for mapped namespaces instead of the original."""

from __future__ import annotations

from kubekeep.manifest import annotations_of

from ..transforms import COPIED_FROM_ANNOTATION, SUBJECTS_NOT_COPIED_ANNOTATION
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class ClusterRoleBindingAction:
    name = "clusterrolebinding"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"ClusterRoleBinding.rbac.authorization.k8s.io"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        annotations = annotations_of(item.manifest)
        original = annotations.get(COPIED_FROM_ANNOTATION)
        if not original or original == item.ref.name:
            return PROCEED
        note = (f"a copy of ClusterRoleBinding {original} for the mapped namespace(s); the original is left as "
                "it is")
        if annotations.get(SUBJECTS_NOT_COPIED_ANNOTATION):
            note += f" and keeps granting {annotations[SUBJECTS_NOT_COPIED_ANNOTATION]}"
        return ActionResult.proceed(note=note)
