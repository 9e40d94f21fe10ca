"""What every check reads: the prepared restore plan and the target's facts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from kubekeep.manifest import ObjectRef
from kubekeep.restore.policy import ConflictPolicy

from ..model import StorageClassDecision
from ..planner import PlannedObject, Prepared
from ..target import ExistingObject, TargetFacts


@dataclass
class CheckContext:
    prepared: Prepared
    facts: TargetFacts
    #: filled by kubekeep.migrate.checks.storage before the checks run
    storage_classes: list[StorageClassDecision] = field(default_factory=list)

    def of_kind(self, group: str, *kinds: str) -> Iterator[PlannedObject]:
        for o in self.prepared.objects:
            if o.ref.group == group and o.ref.kind in kinds:
                yield o

    def existing(self, ref: ObjectRef) -> ExistingObject | None:
        return self.facts.existing.get((ref.group, ref.kind, ref.namespace, ref.name))

    def made_by_this_migration(self, existing: ExistingObject | None) -> bool:
        wanted = self.prepared.options.migration_id
        return existing is not None and wanted is not None and existing.migration == wanted

    def policy_for(self, ref: ObjectRef) -> ConflictPolicy:
        return self.prepared.options.policy.for_ref(ref)

    def planned(self, group: str, kind: str, name: str, namespace: str = "") -> PlannedObject | None:
        for o in self.of_kind(group, kind):
            if o.ref.name == name and o.ref.namespace == namespace:
                return o
        return None


def labels_text(labels: object) -> str:
    """``{a: 1, b: 2}`` -> ``a=1, b=2`` (for messages)."""
    if not isinstance(labels, dict) or not labels:
        return "{}"
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
