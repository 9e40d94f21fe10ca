"""Renew Object Lock: points the rules keep get their lock extended before it lapses.

A restore point is locked for the location's lock period when it is written. Retention may keep it
far longer (a monthly point, for a year): without renewal its lock would lapse while it is still one
of the points the policy promises, and from then on anyone with the credentials could delete it.
So every run extends the lock of each point the rules keep whose lock ends within ``renew_before``
to ``now + lock period``: everything the point needs (its snapshots, the packs holding its data,
the repository config and key slots) is extended, never shortened. Points kept only because their
lock has not ended yet (the rules drop them) are not renewed: they expire when the lock ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode
from kubekeep.restorepoint.object_lock import apply_retention

from .plan import RetentionPlan
from .points import PointSnapshots, snapshots_by_point
from .rules import Decision


@dataclass
class RenewReport:
    #: restore points whose lock was extended
    renewed: list[str] = field(default_factory=list)
    retain_until: datetime | None = None
    mode: str | None = None
    #: objects whose retention was set (snapshots, packs, config, key slots)
    objects: int = 0
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def due_for_renewal(decisions: Iterable[Decision], now: datetime, renew_before: timedelta) -> list[Decision]:
    """Points the rules keep (not merely their lock) whose lock is absent or ends before ``now + renew_before``."""
    horizon = now + renew_before
    return [d for d in decisions if d.kept_by_rules and d.point.record_present
            and (d.point.retain_until is None or d.point.retain_until < horizon)]


def renew_locks(repo: Repository, plan: RetentionPlan, *, mode: RetentionMode | str, days: int,
                renew_before: timedelta | None = None, now: datetime | None = None) -> RenewReport:
    """Extend the locks of the points due (see :func:`due_for_renewal`) to ``now + days``.

    ``renew_before`` defaults to half the lock period: with a daily run there are many chances to
    renew before a lock lapses. A location that cannot lock is reported, not an error.
    """
    now = now or datetime.now(UTC)
    if days < 1:
        raise ValueError("the lock period must be at least one day")
    report = RenewReport()
    if not repo.storage.supports_retention:
        report.messages.append(f"{repo.storage.url} cannot lock objects: nothing to renew")
        return report
    window = renew_before if renew_before is not None else timedelta(days=days) / 2
    due = due_for_renewal(plan.decisions(), now, window)
    if not due:
        return report
    by_point = snapshots_by_point(repo)
    snapshot_ids: list[str] = []
    for decision in due:
        snapshot_ids += by_point.get(decision.point.id, PointSnapshots()).all()
    until = now + timedelta(days=days)
    lock_report = apply_retention(repo, sorted(set(snapshot_ids)), (RetentionMode(mode), until))
    report.renewed = [d.point.id for d in due]
    report.retain_until = until
    report.mode = lock_report.mode
    report.objects = lock_report.objects
    report.errors = lock_report.errors
    return report
