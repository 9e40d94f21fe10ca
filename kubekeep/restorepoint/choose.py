"""Choosing a restore point: by id, or the latest succeeded one of an app (restore, copy, verify, retention)."""

from __future__ import annotations

import logging
from datetime import datetime

from kubekeep.catalog import Catalog, last_clean, latest_restore_point
from kubekeep.repo.repository import Repository

from .record import RESTORE_POINT_TAG, RestorePointNotFoundError, RestorePointRecord, read_restore_point

log = logging.getLogger(__name__)


def find_restore_point(repo: Repository, restore_point_id: str) -> tuple[str, RestorePointRecord]:
    """The restore point with this id: (its snapshot id, its record)."""
    for info in repo.snapshots(tags=[RESTORE_POINT_TAG]):
        if info.metadata.get("restore_point") == restore_point_id:
            return info.id, read_restore_point(repo, info.id)
    raise RestorePointNotFoundError(f"restore point {restore_point_id!r} not found in {repo.storage.url}")


def choose_restore_point(repo: Repository, *, restore_point: str | None = None, app: str | None = None,
                         before: datetime | None = None, catalog: Catalog | None = None, last_clean: bool = False
                         ) -> tuple[str, RestorePointRecord]:
    """By id, or the latest succeeded point of ``app`` (optionally finished before ``before``), or with
    ``last_clean`` the app's last clean point (kubekeep.catalog.last_clean_point: not suspect, verified
    preferred; docs/signals.md).

    The catalog answers "latest"; the repository is the truth (the catalog is a
    rebuildable index), so the chosen point is then read from the repository.
    """
    if last_clean:
        return _last_clean(repo, app, restore_point, before, catalog)
    if restore_point:
        return find_restore_point(repo, restore_point)
    if not app:
        raise ValueError("give a restore point id, or an app (for its latest restore point)")
    if catalog is not None:
        point = latest_restore_point(catalog, app, before=before)
        if point is not None:
            return point.snapshot_id, read_restore_point(repo, point.snapshot_id)
    # no catalog (or it is behind): scan restore-point snapshots
    best: tuple[str, RestorePointRecord] | None = None
    for info in repo.snapshots(tags=[RESTORE_POINT_TAG, f"app:{app}"]):
        if info.metadata.get("status") != "succeeded":
            continue
        record = read_restore_point(repo, info.id)
        if before is not None and datetime.fromisoformat(record.finished_at) >= before:
            continue
        if best is None or record.finished_at > best[1].finished_at:
            best = (info.id, record)
    if best is None:
        when = f" before {before.isoformat()}" if before else ""
        raise RestorePointNotFoundError(f"no succeeded restore point of app {app!r}{when} in {repo.storage.url}")
    return best


def _last_clean(repo: Repository, app: str | None, restore_point: str | None, before: datetime | None,
                catalog: Catalog | None) -> tuple[str, RestorePointRecord]:
    if restore_point or before is not None:
        raise ValueError("the last clean point is chosen by app alone: not with a restore point id or a time")
    if not app:
        raise ValueError("the last clean point needs an app")
    if catalog is None:
        raise ValueError("the last clean point is a catalog query: no catalog given")
    choice = last_clean(catalog, app)
    if choice is None:
        raise RestorePointNotFoundError(f"app {app!r} has no clean restore point in {repo.storage.url} (every "
                                        "succeeded point is suspect, follows a suspect point, or failed "
                                        "verification; `kubekeep signals list` says why)")
    if choice.warning:
        log.warning("%s", choice.warning)
    return find_restore_point(repo, choice.restore_point_id)
