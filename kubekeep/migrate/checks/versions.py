"""API versions: what is converted to a version the target serves, and what the target cannot take.

The verdicts come from the restore's own planner (``kubekeep.restore.versions``);
this check turns them into findings: one info item per conversion (kind, from,
to), one blocking item per object that cannot be converted. Custom resources
whose CustomResourceDefinition is missing are left to the CRD check.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubekeep.restore.order import BUILTIN_GROUPS

from ..model import ObjectRow, PlanItem, Severity, Topic, Verdict
from .context import CheckContext

MISSING_KIND = "does not serve"


def group_of(row: ObjectRow) -> str:
    """The API group of a row's object (``Deployment.apps shop/web`` -> ``apps``)."""
    return row.source.split(" ", 1)[0].partition(".")[2]


def missing_custom_kind(row: ObjectRow) -> bool:
    """A custom resource whose kind the target does not serve at all (the CRD check reports it)."""
    return (row.verdict is Verdict.NOT_CONVERTIBLE and group_of(row) not in BUILTIN_GROUPS
            and MISSING_KIND in row.note)


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    conversions: dict[tuple[str, str, str], list[str]] = {}
    notes: dict[tuple[str, str, str], str] = {}
    for row in ctx.prepared.rows:
        if row.verdict is Verdict.CONVERT:
            kind = row.source.split(" ", 1)[0]
            key = (kind, row.stored_api_version, str(row.target_api_version))
            conversions.setdefault(key, []).append(row.target or row.source)
            notes.setdefault(key, row.note)
        elif row.verdict is Verdict.NOT_CONVERTIBLE and not missing_custom_kind(row):
            yield PlanItem(Severity.BLOCKING, Topic.API_VERSION, row.source,
                           f"stored as {row.stored_api_version}: {row.note}",
                           "leave the kind out of the migration (exclude it) or migrate to a cluster that serves it")
        elif row.verdict is Verdict.EXCLUDED:
            yield PlanItem(Severity.INFO, Topic.LEFT_OUT, row.source, "excluded by the run: not created")
    for (kind, source, target), objects in sorted(conversions.items()):
        yield PlanItem(Severity.INFO, Topic.API_VERSION, kind,
                       f"{len(objects)} object(s) stored as {source} are created as {target}: "
                       f"{notes[(kind, source, target)]}",
                       objects=tuple(objects))
