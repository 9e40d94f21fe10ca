"""Which restore points a DR copy moves: the source's choice, minus what the destination already holds."""

from __future__ import annotations

from dataclasses import dataclass

from kubekeep.repo.repository import Repository
from kubekeep.restorepoint import RESTORE_POINT_TAG, RestorePointNotFoundError, RestorePointRecord, read_restore_point


@dataclass(frozen=True)
class PointRef:
    """A restore point at the source: its id, its app and the snapshot id of its record."""

    restore_point: str
    app: str
    snapshot_id: str


def restore_points(repo: Repository, *, app: str | None = None) -> list[PointRef]:
    """Every committed restore point of ``repo`` (of ``app`` when given), oldest first."""
    tags = [RESTORE_POINT_TAG, f"app:{app}"] if app else [RESTORE_POINT_TAG]
    out = []
    for info in repo.snapshots(tags=tags):
        rp = info.metadata.get("restore_point")
        if rp:
            out.append(PointRef(rp, info.metadata.get("app", ""), info.id))
    return out


def choose_points(source: Repository, *, restore_point: str | None = None, app: str | None = None,
                  all_points: bool = False) -> list[PointRef]:
    """One point by id, every point of an app, or every point; exactly one of the three.

    Raises ValueError for a missing or ambiguous choice, RestorePointNotFoundError when nothing matches.
    """
    given = sum(1 for g in (restore_point, app, all_points) if g)
    if given != 1:
        raise ValueError("choose exactly one of: a restore point id, an app, or all restore points")
    if restore_point:
        found = [p for p in restore_points(source) if p.restore_point == restore_point]
        if not found:
            raise RestorePointNotFoundError(f"restore point {restore_point!r} not found in {source.storage.url}")
        return found[:1]
    points = restore_points(source, app=app)
    if app and not points:
        raise RestorePointNotFoundError(f"no restore point of app {app!r} in {source.storage.url}")
    return points


def present_points(destination: Repository) -> dict[str, str]:
    """The restore points the destination holds: id -> snapshot id of its record."""
    return {p.restore_point: p.snapshot_id for p in restore_points(destination)}


def point_snapshots(record: RestorePointRecord) -> list[str]:
    """The snapshots a restore point's record names (manifests and volumes), without the record's own."""
    return [record.manifest_snapshot, *(v.snapshot_id for v in record.volumes if v.snapshot_id)]


def read_record(repo: Repository, snapshot_id: str) -> RestorePointRecord:
    return read_restore_point(repo, snapshot_id)
