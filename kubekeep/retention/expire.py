"""Delete the restore points a plan drops: records, snapshots and catalog rows, in a crash-safe order.

For each point, in this order:

1. Every snapshot of the point is checked for Object Lock; a point with any locked snapshot is left
   whole and reported (it expires when its lock ends: the first run after that deletes it).
2. Its record snapshot(s) are deleted. This is the commit point: a restore point exists exactly as
   long as its record does, so from here on neither a reader of the repository nor a catalog
   rebuild sees it.
3. A tombstone row goes into the catalog (``deleted_restore_points``) naming all its snapshots; it
   hides the point's catalog rows from every query.
4. Its manifest and volume snapshots are deleted, then its one-point catalog files.

A crash after step 2 leaves a point whose record is gone: the next plan lists it as "record gone"
and this module finishes it. A crash after step 3 leaves a tombstone whose snapshots still exist:
every run first finishes such deletions. Packs are not touched here; prune reclaims what no
remaining snapshot needs, and keeps what is locked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubekeep.catalog import Catalog, DeletedRestorePoint
from kubekeep.catalog.records import deletions_from_table
from kubekeep.catalog.schema import TableName
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import ObjectLockedError

from .plan import RetentionPlan
from .points import PointSnapshots, lock_dates, snapshots_by_point
from .rules import Decision


@dataclass(frozen=True)
class HeldPoint:
    """A point the plan drops that Object Lock still holds."""

    id: str
    app: str
    retain_until: datetime | None
    detail: str


@dataclass
class ExpiryReport:
    #: restore points deleted by this run (their records are gone)
    deleted: list[str] = field(default_factory=list)
    #: points left whole because Object Lock holds one of their snapshots
    held: list[HeldPoint] = field(default_factory=list)
    snapshots_deleted: int = 0
    #: snapshots of deleted points that could not be deleted yet (locked); a later run finishes them
    leftovers: list[str] = field(default_factory=list)
    #: deletions interrupted by an earlier run and finished by this one
    finished: list[str] = field(default_factory=list)
    catalog_files_removed: int = 0
    messages: list[str] = field(default_factory=list)


def _delete_snapshot(repo: Repository, sid: str) -> None:
    repo.storage.delete(SNAPSHOTS_PREFIX + sid)


def _delete_rest(repo: Repository, catalog: Catalog, point_id: str, snapshot_ids: list[str],
                 report: ExpiryReport) -> None:
    for sid in snapshot_ids:
        try:
            _delete_snapshot(repo, sid)
        except ObjectLockedError as exc:
            report.leftovers.append(sid)
            report.messages.append(f"{point_id}: snapshot {sid[:12]} is under Object Lock"
                                   f"{' until ' + exc.retain_until.isoformat() if exc.retain_until else ''}; "
                                   "a later run deletes it")
            continue
        report.snapshots_deleted += 1
    report.catalog_files_removed += len(catalog.remove_point_files(point_id))


def finish_interrupted(repo: Repository, catalog: Catalog, by_point: dict[str, PointSnapshots],
                       existing: set[str], report: ExpiryReport) -> None:
    """Finish deletions whose tombstone exists but whose snapshots (or catalog files) are still there."""
    tombstones = deletions_from_table(catalog.read(TableName.DELETED_RESTORE_POINTS))
    for tomb in tombstones:
        snapshots = by_point.get(tomb.restore_point_id, PointSnapshots())
        # records first: a record that survived a crash would make the point visible again to a rebuild
        ordered = [*snapshots.records, *tomb.snapshot_ids, *snapshots.others]
        remaining = [sid for sid in dict.fromkeys(ordered) if sid in existing]
        if not remaining:
            continue
        before = len(report.leftovers)
        _delete_rest(repo, catalog, tomb.restore_point_id, remaining, report)
        if len(report.leftovers) == before:
            report.finished.append(tomb.restore_point_id)


def expire(repo: Repository, catalog: Catalog, plan: RetentionPlan, *, approved: bool = False,
           only: Collection[str] | None = None, now: datetime | None = None,
           reason: str = "retention") -> ExpiryReport:
    """Delete every point ``plan`` drops (see the module docstring for the order).

    ApprovalRequired when the plan needs approval and ``approved`` is False: nothing is deleted.
    ``only``: delete only drops with these ids; a run that paused for approval passes the ids of the
    plan that was approved with a plan made afresh, so it deletes neither more than was approved nor
    a point that is kept now (verified or newly locked meanwhile). ``reason`` is recorded in each
    tombstone (e.g. ``retention policy nightly``).
    """
    plan.check_approved(approved)
    now = now or datetime.now(UTC)
    report = ExpiryReport()
    lock = repo.lock("forget")
    try:
        problems: list[str] = []
        by_point = snapshots_by_point(repo, problems)
        report.messages.extend(problems)
        existing = set(repo.snapshot_ids())
        finish_interrupted(repo, catalog, by_point, existing, report)
        for decision in plan.drops:
            if only is not None and decision.point.id not in only:
                continue
            _expire_point(repo, catalog, decision, by_point.get(decision.point.id, PointSnapshots()), existing,
                          now, reason, report)
    finally:
        lock.release()
    return report


def _expire_point(repo: Repository, catalog: Catalog, decision: Decision, snapshots: PointSnapshots,
                  existing: set[str], now: datetime, reason: str, report: ExpiryReport) -> None:
    point = decision.point
    records = [sid for sid in dict.fromkeys([point.snapshot_id, *snapshots.records]) if sid]
    others = [sid for sid in snapshots.others if sid not in records]
    present = [sid for sid in [*records, *others] if sid in existing]
    locks = {sid: until for sid, until in lock_dates(repo.storage, present).items() if until and until > now}
    if locks:
        until = max(locks.values())
        report.held.append(HeldPoint(point.id, point.app, until, f"{len(locks)} of its snapshot(s) are under Object "
                                                                  f"Lock until {until.isoformat()}"))
        return
    for sid in records:
        if sid not in existing:
            continue
        try:
            _delete_snapshot(repo, sid)
        except ObjectLockedError as exc:
            # checked just above, so a lock that appeared meanwhile (or clock skew against the storage)
            report.held.append(HeldPoint(point.id, point.app, exc.retain_until, str(exc)))
            return
        report.snapshots_deleted += 1
    why = reason if point.record_present else f"{reason}: its record was already gone"
    catalog.add_deletion(DeletedRestorePoint(point.id, point.app, now, why, tuple([*records, *others])))
    _delete_rest(repo, catalog, point.id, [sid for sid in others if sid in existing], report)
    report.deleted.append(point.id)
