"""The protection table a ``protect`` run publishes: each app with its last point, status and next run,
and the apps no policy protects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from kubekeep.catalog import RestorePoint

from .matching import ProtectionMap


@dataclass(frozen=True)
class RunOutcome:
    """What this run did for one app (``None`` in the table: the app was not backed up by this run)."""

    status: str  # "backed up", "failed", "skipped"
    restore_point: str | None = None
    detail: str = ""


def protection_rows(protection: ProtectionMap, last_points: Mapping[str, RestorePoint | None],
                    outcomes: Mapping[str, RunOutcome], next_runs: Mapping[str, datetime | None],
                    verifications: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One row per discovered app, protected ones first, then covered, then unprotected.

    ``last_points``: the newest restore point of each app (any status); ``outcomes``: this run's
    result per app; ``next_runs``: policy name -> its next scheduled run; ``verifications``: the
    verdict of each app this run verified (the apps that were due).
    """
    verifications = verifications or {}
    order = {"protected": 0, "covered": 1, "unprotected": 2}
    rows = []
    for app in sorted(protection.apps, key=lambda a: (order[a.state], a.name)):
        last = last_points.get(app.name)
        outcome = outcomes.get(app.name)
        upcoming = [n for n in (next_runs.get(p) for p in app.policies) if n is not None]
        rows.append({
            "app": app.name,
            "source": app.source,
            "namespaces": ", ".join(app.namespaces),
            "state": app.state,
            "policies": ", ".join(app.policies) or (f"covered by {', '.join(app.covered_by)}" if app.covered_by
                                                    else "none"),
            "last point": last.id if last else "",
            "last point time": last.started_at.isoformat() if last else "",
            "last point status": last.status if last else "",
            "this run": (f"{outcome.status}{': ' + outcome.detail if outcome.detail else ''}" if outcome else ""),
            "next run": min(upcoming).isoformat() if upcoming else "",
            "verification": verifications.get(app.name, ""),
        })
    return rows
