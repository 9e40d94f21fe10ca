"""StorageClasses: which class each claim gets on the target, and what is refused rather than guessed.

Per StorageClass the restore point's claims use (after the run's transforms):

- an explicit storage-class map wins: the mapped class must exist on the target
  (or come with the restore point);
- a class of the same name on the target is an exact match (a warning when its
  provisioner differs from the source's);
- a class the restore point holds and the target lacks is created from it, if
  the target knows its provisioner (a class or a CSI driver uses it);
- anything else is **blocking**, with a suggestion: the target's class with the
  same provisioner (same parameters first, then the default), else the target's
  default class. The suggestion is never applied without being asked for
  (``--storage-class-map SOURCE=TARGET``).

Claims that name no class get the target's default (blocking when there is
none); claims with class "" bind to pre-created PersistentVolumes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..model import ClassResolution, PlanItem, Severity, StorageClassDecision, Topic
from ..target import StorageClassInfo
from .claims import Claim, all_claims
from .context import CheckContext

SC = ("storage.k8s.io", "StorageClass")


def _source_class(ctx: CheckContext, name: str) -> StorageClassInfo | None:
    """The source's class ``name``: from the restore point (also when the run leaves it out), else from the
    source cluster's facts."""
    for m in (*ctx.prepared.sources, *ctx.prepared.excluded):
        if m.get("kind") == "StorageClass" and str(m.get("apiVersion", "")).startswith("storage.k8s.io/") \
                and (m.get("metadata") or {}).get("name") == name:
            return StorageClassInfo.from_object(m)
    return ctx.prepared.options.source_storage_classes.get(name)


def _brought(ctx: CheckContext, name: str) -> StorageClassInfo | None:
    """The StorageClass ``name`` if the restore creates it on the target (in the plan, not there yet)."""
    obj = ctx.planned(*SC, name)
    if obj is None or ctx.existing(obj.ref) is not None:
        return None
    return StorageClassInfo.from_object(obj.target)


def suggest(source: StorageClassInfo | None, classes: Mapping[str, StorageClassInfo]) -> tuple[str | None, str]:
    """The target class to suggest for ``source``, and why (or None and why there is none)."""
    provisioner = source.provisioner if source else None
    same = [c for c in classes.values() if provisioner and c.provisioner == provisioner]
    if same:
        best = sorted(same, key=lambda c: (dict(c.parameters) != dict(source.parameters if source else {}),
                                           not c.default, c.name))[0]
        detail = " and parameters" if source and dict(best.parameters) == dict(source.parameters) else ""
        return best.name, f"the target's class with the same provisioner{detail} ({provisioner})"
    defaults = sorted((c for c in classes.values() if c.default), key=lambda c: c.name)
    where = f"no target class uses provisioner {provisioner}" if provisioner else "the source's provisioner is unknown"
    if defaults:
        return defaults[0].name, f"the target's default class; {where}"
    return None, f"{where} and the target has no default class"


def resolve_storage_classes(ctx: CheckContext) -> list[StorageClassDecision]:
    groups: dict[tuple[str | None, str | None], list[Claim]] = {}
    for claim in all_claims(ctx):
        groups.setdefault((claim.source_class, claim.target_class), []).append(claim)
    decisions = []
    target_classes = ctx.facts.storage_classes
    for (source_name, target_name), claims in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
        subjects = tuple(c.subject for c in claims)
        source = _source_class(ctx, source_name) if source_name else None
        src_prov = source.provisioner if source else None
        if target_name is None:
            default = ctx.facts.default_storage_class()
            decisions.append(StorageClassDecision(
                "", ClassResolution.DEFAULT if default else ClassResolution.MISSING,
                default.name if default else None, src_prov, default.provisioner if default else None,
                claims=subjects))
            continue
        if target_name == "":
            decisions.append(StorageClassDecision(source_name or "", ClassResolution.STATIC, "", src_prov,
                                                  claims=subjects))
            continue
        mapped = source_name is not None and source_name != target_name
        there = target_classes.get(target_name)
        brought = _brought(ctx, target_name) if there is None else None
        if there is not None:
            decisions.append(StorageClassDecision(
                source_name or "", ClassResolution.MAPPED if mapped else ClassResolution.EXACT, target_name,
                src_prov, there.provisioner, claims=subjects))
        elif brought is not None and ctx.facts.knows_provisioner(brought.provisioner):
            decisions.append(StorageClassDecision(source_name or "", ClassResolution.BROUGHT, target_name, src_prov,
                                                  brought.provisioner, claims=subjects))
        else:
            wanted = source or (brought if not mapped else None)
            suggestion, _ = suggest(wanted, target_classes)
            decisions.append(StorageClassDecision(
                source_name or "", ClassResolution.MISSING, target_name if mapped else None,
                wanted.provisioner if wanted else None, None, suggestion, subjects))
    return decisions


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    for d in ctx.storage_classes:
        count = f"{len(d.claims)} claim(s)"
        if d.resolution is ClassResolution.MISSING and not d.source:
            yield PlanItem(Severity.BLOCKING, Topic.STORAGE_CLASS, "(no class)",
                           f"{count} name no StorageClass and the target has no default class: they would stay "
                           "Pending and their data could not be restored",
                           "mark a StorageClass of the target as its default, or give the claims a class "
                           "(a json-patch transform)", objects=d.claims)
        elif d.resolution is ClassResolution.MISSING:
            brought = _brought(ctx, d.source)
            provisioner = d.source_provisioner or "unknown"
            if d.target:
                why = f"mapped to StorageClass {d.target}, which the target does not have"
            elif brought is not None:
                why = (f"the restore point holds StorageClass {d.source}, but the target knows no provisioner "
                       f"{provisioner} (no StorageClass or CSIDriver uses it)")
            else:
                why = f"the target has no StorageClass {d.source} (provisioner {provisioner})"
            _, reason = suggest(_source_class(ctx, d.source) or brought, ctx.facts.storage_classes)
            hint = (f"--storage-class-map {d.source}={d.suggestion} ({reason})" if d.suggestion else
                    f"create a StorageClass on the target, then map to it ({reason})")
            yield PlanItem(Severity.BLOCKING, Topic.STORAGE_CLASS, f"StorageClass {d.source}",
                           f"{count}: {why}; the plan does not guess a class", hint, objects=d.claims)
        elif d.resolution is ClassResolution.EXACT and d.source_provisioner and \
                d.source_provisioner != d.target_provisioner:
            yield PlanItem(Severity.WARNING, Topic.STORAGE_CLASS, f"StorageClass {d.source}",
                           f"{count}: the target's class of this name uses provisioner {d.target_provisioner}, the "
                           f"source's used {d.source_provisioner}", objects=d.claims)
        elif d.resolution is ClassResolution.STATIC:
            unbound = [c for c in all_claims(ctx) if c.subject in d.claims and not _static_volume(ctx, c)]
            if unbound:
                yield PlanItem(Severity.WARNING, Topic.STORAGE_CLASS, "(class \"\")",
                               f"{len(unbound)} claim(s) with class \"\" name no PersistentVolume of the restore "
                               "point: they bind only to a matching PersistentVolume created on the target",
                               objects=tuple(c.subject for c in unbound))
        else:
            how = {ClassResolution.EXACT: "the target's class of the same name",
                   ClassResolution.MAPPED: f"mapped to the target's class {d.target}",
                   ClassResolution.BROUGHT: f"created from the restore point (the target knows provisioner "
                                            f"{d.target_provisioner})",
                   ClassResolution.DEFAULT: f"no class named: the target's default class {d.target}"}[d.resolution]
            yield PlanItem(Severity.INFO, Topic.STORAGE_CLASS, f"StorageClass {d.shown_source}",
                           f"{count}: {how}", objects=d.claims)
    for obj in ctx.of_kind(*SC):
        users = [d for d in ctx.storage_classes if d.target == obj.ref.name]
        sources = [d for d in ctx.storage_classes if d.source == obj.ref.name and d.target not in (None, obj.ref.name)]
        if ctx.existing(obj.ref) is None and not users and sources:
            yield PlanItem(Severity.INFO, Topic.STORAGE_CLASS, f"StorageClass {obj.ref.name}",
                           f"created on the target from the restore point although its claims are mapped to "
                           f"{', '.join(sorted({str(d.target) for d in sources}))}",
                           "exclude StorageClass to leave it out")


def _static_volume(ctx: CheckContext, claim: Claim) -> bool:
    return claim.volume_name is not None and ctx.planned("", "PersistentVolume", claim.volume_name) is not None
