"""CustomResourceDefinitions: brought from the restore point, kept on the target, or missing.

- a CRD of the restore point that the target lacks is created from the restore
  point (info), unless the run forbids bringing CRDs (blocking);
- a CRD that exists on the target is kept under the default policy (skip): if it
  does not serve a version the restore point's custom resources are stored at,
  they cannot be created (blocking; with policy update/recreate the target's CRD
  is replaced: a warning);
- custom resources whose kind the target does not serve and whose CRD the
  restore point does not hold cannot be created at all (blocking): the way to
  bring the CRD is missing, so the migration stops.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubekeep.manifest import dig
from kubekeep.restore.policy import ConflictPolicy

from ..model import PlanItem, Severity, Topic
from .context import CheckContext
from .versions import missing_custom_kind

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    for crd in ctx.of_kind(*CRD):
        group, kind = str(dig(crd.target, "spec", "group")), str(dig(crd.target, "spec", "names", "kind"))
        resources = list(ctx.of_kind(group, kind))
        subject = f"CustomResourceDefinition {crd.ref.name}"
        existing = ctx.existing(crd.ref)
        if existing is None:
            if ctx.prepared.options.bring_crds:
                yield PlanItem(Severity.INFO, Topic.CRD, subject,
                               f"not on the target: created from the restore point before its {len(resources)} "
                               "custom resource(s)")
            else:
                yield PlanItem(Severity.BLOCKING, Topic.CRD, subject,
                               f"not on the target, and the run does not bring CRDs: {len(resources)} custom "
                               f"resource(s) of {kind}.{group} cannot be created",
                               "install the CRD (its operator) on the target, or let the migration bring it")
            continue
        unserved = sorted({r.ref.version for r in resources if r.ref.version not in existing.crd_versions})
        if not unserved:
            yield PlanItem(Severity.INFO, Topic.CRD, subject,
                           f"exists on the target (serves {', '.join(existing.crd_versions) or 'nothing'}): "
                           f"kept, policy {ctx.policy_for(crd.ref).value}")
            continue
        stored = [str(r.ref) for r in resources if r.ref.version in unserved]
        if ctx.policy_for(crd.ref) is ConflictPolicy.SKIP:
            yield PlanItem(Severity.BLOCKING, Topic.CRD, subject,
                           f"exists on the target and serves only {', '.join(existing.crd_versions) or 'nothing'}; "
                           f"{len(stored)} custom resource(s) are stored as {group}/{', '.join(unserved)} and the "
                           "restore keeps the target's CRD (existing: skip)",
                           "upgrade the CRD on the target (its operator), or replace it with the restore point's: "
                           "existing_by_kind CustomResourceDefinition.apiextensions.k8s.io=update",
                           objects=tuple(stored))
        else:
            yield PlanItem(Severity.WARNING, Topic.CRD, subject,
                           f"exists on the target and serves only {', '.join(existing.crd_versions) or 'nothing'}: "
                           f"replaced by the restore point's (policy {ctx.policy_for(crd.ref).value}); other "
                           f"custom resources of {kind}.{group} on the target must still match it")
    missing: dict[str, list[str]] = {}
    for row in ctx.prepared.rows:
        if missing_custom_kind(row):
            missing.setdefault(row.source.split(" ", 1)[0], []).append(row.source)
    for group_kind, rows in sorted(missing.items()):
        yield PlanItem(Severity.BLOCKING, Topic.CRD, group_kind,
                       f"the target does not serve {group_kind} and the restore point holds no "
                       f"CustomResourceDefinition for it: {len(rows)} custom resource(s) cannot be created",
                       "install the CRD (its operator) on the target first, or exclude the kind",
                       objects=tuple(rows))
