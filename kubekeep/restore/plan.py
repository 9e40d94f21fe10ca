"""Plan a restore: load -> **plan** -> transform -> apply -> report.

:func:`plan_restore` runs the pure stages in the order they depend on each other:

1. owners    - leave out what restored owners recreate (needs the source uids)
2. sanitize  - strip server-populated fields
3. versions  - convert to versions the target serves (CRDs restored in the same
               run count as served: they are created and re-discovered first)
4. transforms - the run's transform chain (patches see the converted shape)
5. order     - priority list and readiness tiers -> phases
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubekeep.manifest import Manifest, dig, ref_of, split_api_version

from .order import (
    BUILTIN_GROUPS,
    DEFAULT_PRIORITIES,
    OrderedObject,
    PriorityEntry,
    RestorePhase,
    TierPolicy,
    order_manifests,
)
from .owners import DEFAULT_RECREATED_BY, RecreatedBy, SkippedObject, filter_owned
from .sanitize import SanitizeOptions, sanitize_manifests
from .transforms import TransformChain
from .versions import ConversionResult, ServedVersions, convert_manifests


@dataclass(frozen=True)
class PlanOptions:
    include_owned: bool = False
    include_events: bool = False
    recreated_by: Sequence[RecreatedBy] = DEFAULT_RECREATED_BY
    sanitize: SanitizeOptions = field(default_factory=SanitizeOptions)
    transforms: TransformChain = field(default_factory=TransformChain)
    priorities: Sequence[PriorityEntry] = DEFAULT_PRIORITIES
    tier_policy: TierPolicy | None = None
    assume_compatible_versions: bool = False


@dataclass(frozen=True)
class RestorePlan:
    phases: list[RestorePhase]
    #: left out, with the reason (owned by a restored owner, event, not convertible)
    skipped: list[SkippedObject]
    converted: list[ConversionResult]

    @property
    def object_count(self) -> int:
        return sum(len(p.objects) for p in self.phases)


def served_by_crds(manifests: Iterable[Manifest]) -> dict[str, dict[str, list[str]]]:
    """Group -> kind -> served versions declared by the apiextensions.k8s.io/v1 CRDs among ``manifests``."""
    served: dict[str, dict[str, list[str]]] = {}
    for m in manifests:
        if m.get("apiVersion") != "apiextensions.k8s.io/v1" or m.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = dig(m, "spec", "group"), dig(m, "spec", "names", "kind")
        if not isinstance(group, str) or not isinstance(kind, str):
            continue
        versions = [v["name"] for v in dig(m, "spec", "versions") or ()
                    if isinstance(v, dict) and v.get("served", True) and isinstance(v.get("name"), str)]
        served.setdefault(group, {}).setdefault(kind, []).extend(versions)
    return served


_NOTES_KEY = "__kubekeep_plan_notes__"


def _status_note(original: Manifest, sanitized: Manifest) -> str | None:
    """What the report says when a custom resource's status is not restored."""
    group, _ = split_api_version(str(original.get("apiVersion", "")))
    if group in BUILTIN_GROUPS or not original.get("status") or "status" in sanitized:
        return None
    gk = f"{original.get('kind')}.{group}"
    return (f"status not restored (left to its controller; restore_status {gk} restores it through the status "
            "subresource)")


def _with_notes(obj: OrderedObject) -> OrderedObject:
    notes = obj.manifest.pop(_NOTES_KEY, None)
    return replace(obj, notes=(*obj.notes, *notes)) if notes else obj


def _merge_served(served: ServedVersions, extra: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    merged: dict[str, dict[str, list[str]]] = {g: {k: list(v) for k, v in kinds.items()} for g, kinds in served.items()}
    for group, kinds in extra.items():
        for kind, versions in kinds.items():
            known = merged.setdefault(group, {}).setdefault(kind, [])
            known.extend(v for v in versions if v not in known)
    return merged


def plan_restore(
    manifests: Iterable[Manifest],
    *,
    served: ServedVersions | None = None,
    options: PlanOptions | None = None,
) -> RestorePlan:
    """Phases of manifests ready to create, and what is left out and why.

    ``served=None`` skips the version check (the target is unknown, e.g. an
    offline dry run). Raises :class:`~kubekeep.restore.errors.RestorePlanError`
    subclasses for bad specs, tier cycles and failed transforms.
    """
    options = options or PlanOptions()
    items = list(manifests)
    for m in items:
        ref_of(m)  # every manifest is well-formed before anything else runs
    owned = filter_owned(items, include_owned=options.include_owned, include_events=options.include_events,
                         rules=options.recreated_by)
    skipped = list(owned.skipped)
    sanitized = sanitize_manifests(owned.restore, options.sanitize)
    for original, clean in zip(owned.restore, sanitized, strict=True):
        note = _status_note(original, clean)
        if note:  # travels with the manifest through conversion and transforms; removed below
            clean[_NOTES_KEY] = [note]
    converted: list[ConversionResult] = []
    if served is not None:
        report = convert_manifests(sanitized, _merge_served(served, served_by_crds(sanitized)),
                                   assume_compatible_versions=options.assume_compatible_versions)
        sanitized = report.manifests
        converted = report.converted
        skipped.extend(SkippedObject(r.ref, r.decision.reason) for r in report.not_convertible)
    transformed = options.transforms.apply(sanitized)
    phases = order_manifests(transformed, priorities=options.priorities, tier_policy=options.tier_policy)
    phases = [replace(phase, objects=tuple(_with_notes(o) for o in phase.objects)) for phase in phases]
    return RestorePlan(phases, skipped, converted)

