"""Retention tasks: plan, expire, prune, renew locks. Each calls one core function (kubekeep.retention,
the repository's prune) on the run's shared open repository and returns a small result.

The plan is the one payload that is more than a count: one decision per restore point of the groups
it covers (tens to hundreds per app under a GFS policy), which the approval step shows and the expiry
step executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import task

from blocks import EncryptionKey, LocationProfile, open_catalog, repository
from kubekeep.repo.maintenance import PruneResult
from kubekeep.retention import (
    DEFAULT_APPROVAL_SHARE,
    ExpiryReport,
    RenewReport,
    RetentionPlan,
    RetentionRules,
    build_plan,
    collect_points,
    expire,
    renew_locks,
)

from .common import DATA_TASK


@dataclass(frozen=True)
class PruneSummary:
    """What :func:`prune_location` reclaimed (counts, never the lists of packs)."""

    packs_deleted: int
    packs_repacked: int
    bytes_freed: int
    locked_kept: int
    deferred_packs: int
    damaged_snapshots: int
    messages: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, result: PruneResult) -> PruneSummary:
        return cls(packs_deleted=result.packs_deleted, packs_repacked=result.packs_repacked,
                   bytes_freed=result.bytes_freed, locked_kept=len(result.locked_skipped),
                   deferred_packs=result.deferred_packs, damaged_snapshots=len(result.damaged_snapshots),
                   messages=list(result.messages))


#: a catalog table is compacted when it holds at least this many small files (one is written per restore
#: point and table): a read costs ~2 ms of CPU per file opened (docs/benchmarks.md, the catalog question)
COMPACT_MIN_FILES = 32


@dataclass
class CatalogCompaction:
    """What :func:`compact_catalog` merged (counts per run, never the lists of files)."""

    tables: list[str] = field(default_factory=list)
    files_merged: int = 0
    parts_written: int = 0
    files_kept: int = 0
    rows: int = 0


@task(name="compact-catalog", **DATA_TASK)
def compact_catalog(location: LocationProfile, key: EncryptionKey, *,
                    min_files: int = COMPACT_MIN_FILES) -> CatalogCompaction:
    """Merge the catalog's small files into sorted parts in every table that has at least ``min_files`` of
    them (queries open one file per part instead of one per restore point); safe beside running backups."""
    done = CatalogCompaction()
    with open_catalog(location, key) as catalog:
        for result in catalog.compact(min_files=min_files):
            if result.merged_keys:
                done.tables.append(str(result.table))
                done.files_merged += len(result.merged_keys)
                done.parts_written += len(result.written_keys)
                done.files_kept += len(result.kept_keys)
                done.rows += result.rows
    return done


@task(name="plan-retention", **DATA_TASK)
def plan_retention(location: LocationProfile, key: EncryptionKey, rules: RetentionRules, *,
                   app: str | None = None, policy: str | None = None, only_policy: bool = False,
                   timezone: str = "UTC", approval_share: float = DEFAULT_APPROVAL_SHARE,
                   now: datetime | None = None) -> RetentionPlan:
    """Decide every restore point of the location (of ``app``; of ``policy`` when ``only_policy``) with
    ``rules`` in ``timezone``; points are grouped by (app, policy)."""
    with repository(location, key) as repo, open_catalog(location, key) as catalog:
        points = collect_points(repo, catalog, app=app, policies=[policy] if only_policy else None)
        return build_plan(points, rules, timezone, now=now or datetime.now(UTC), approval_share=approval_share)


@task(name="expire-restore-points", **DATA_TASK)
def expire_points(location: LocationProfile, key: EncryptionKey, plan: RetentionPlan, *, approved: bool,
                  only: list[str] | None = None, reason: str = "retention") -> ExpiryReport:
    """Delete what ``plan`` drops (records, snapshots, catalog rows; locked points are held and reported)."""
    with repository(location, key) as repo, open_catalog(location, key) as catalog:
        return expire(repo, catalog, plan, approved=approved, only=None if only is None else set(only),
                      reason=reason)


@task(name="prune-location", **DATA_TASK)
def prune_location(location: LocationProfile, key: EncryptionKey, *, repack_threshold: float = 0.5,
                   wait_timeout: float = 600.0) -> PruneSummary:
    """Reclaim the packs no remaining snapshot needs (locked packs stay; sparse ones are repacked)."""
    with repository(location, key) as repo:
        return PruneSummary.of(repo.prune([], repack_threshold=repack_threshold, wait_timeout=wait_timeout))


@task(name="renew-locks", **DATA_TASK)
def renew_point_locks(location: LocationProfile, key: EncryptionKey, plan: RetentionPlan) -> RenewReport:
    """Extend the Object Lock of the points the rules keep before it lapses (the location's mode and days)."""
    with repository(location, key) as repo:
        if not location.object_lock_mode:
            report = RenewReport()
            report.messages.append(f"{location.describe()} has no Object Lock: nothing to renew")
            return report
        return renew_locks(repo, plan, mode=location.object_lock_mode, days=location.object_lock_days)
