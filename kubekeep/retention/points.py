"""What retention reads about restore points: their snapshots in the repository, their lock dates,
their catalog rows and the verdicts of other features, gathered into :class:`PointFacts`.

Every snapshot a backup run writes (volumes, manifests, and last the record) carries the restore
point id in its metadata, so one listing of the repository finds all snapshots of every point,
including those a retried task wrote twice and those a crashed deletion left behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from kubekeep.catalog import Catalog, list_restore_points, suspect_points, verified_points
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import ObjectNotFoundError, Storage
from kubekeep.restorepoint import RESTORE_POINT_TAG

from .rules import PointFacts

#: HEAD requests in flight when reading lock dates
STAT_WORKERS = 8


@dataclass
class PointSnapshots:
    """The snapshots of one restore point: its record(s) first to go, then the rest."""

    records: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.records, *self.others]


def snapshots_by_point(repo: Repository, problems: list[str] | None = None) -> dict[str, PointSnapshots]:
    """Restore point id -> its snapshots, from the metadata of every readable snapshot (an unreadable
    one is named in ``problems`` and belongs to no point: retention then deletes less, never more)."""
    out: dict[str, PointSnapshots] = {}
    for info in repo.snapshots(problems=problems):
        point_id = info.metadata.get("restore_point")
        if not point_id:
            continue
        entry = out.setdefault(point_id, PointSnapshots())
        (entry.records if RESTORE_POINT_TAG in info.tags else entry.others).append(info.id)
    return out


def lock_dates(storage: Storage, snapshot_ids: Iterable[str]) -> dict[str, datetime | None]:
    """The Object Lock date in force on each snapshot object (None: not locked, or the location cannot
    lock). Read from the storage, not the catalog: a renewal extends locks after the rows were written."""
    ids = sorted(set(snapshot_ids))
    if not storage.supports_retention:
        return dict.fromkeys(ids)

    def stat(sid: str) -> datetime | None:
        try:
            return storage.stat(SNAPSHOTS_PREFIX + sid).retain_until
        except ObjectNotFoundError:
            return None

    with ThreadPoolExecutor(STAT_WORKERS) as pool:
        return dict(zip(ids, pool.map(stat, ids), strict=True))


def latest(values: Iterable[datetime | None]) -> datetime | None:
    dates = [v for v in values if v is not None]
    return max(dates) if dates else None


def collect_points(repo: Repository, catalog: Catalog, *, app: str | None = None,
                   policies: Collection[str | None] | None = None,
                   by_point: dict[str, PointSnapshots] | None = None) -> list[PointFacts]:
    """Every restore point of the location (of ``app``; of those ``policies`` when given, None
    standing for points of no policy), any status, with its lock date (the latest over its
    snapshots), its verification verdict and its suspect mark."""
    rows = list_restore_points(catalog, app=app, statuses=None, newest_first=True)
    if policies is not None:
        wanted = set(policies)
        rows = [r for r in rows if r.policy in wanted]
    by_point = by_point if by_point is not None else snapshots_by_point(repo)
    # existence, not readability: a record that cannot be read right now is still a restore point
    existing = set(repo.snapshot_ids())
    verdicts = verified_points(catalog, app)
    suspect = suspect_points(catalog, app)
    point_sids = {r.id: by_point.get(r.id, PointSnapshots()).all() for r in rows}
    locks = lock_dates(repo.storage, [sid for sids in point_sids.values() for sid in sids])
    facts = []
    for row in rows:
        facts.append(PointFacts(
            id=row.id, time=row.started_at, status=row.status, app=row.app, policy=row.policy,
            retain_until=latest(locks.get(sid) for sid in point_sids[row.id]),
            verified=verdicts.get(row.id), suspect=row.id in suspect,
            record_present=row.snapshot_id in existing, snapshot_id=row.snapshot_id))
    return facts
