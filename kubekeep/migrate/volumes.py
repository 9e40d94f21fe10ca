"""Volume data of a migration: bring a target volume to a snapshot, moving only what changed.

:func:`sync_volume` is the pre-seed's and the cutover's volume step: it loads the
target's seed record (kubekeep.migrate.seed), restores the snapshot with it as the
restorer's baseline (files it vouches for are kept, their data never fetched) and
with ``prune`` (entries the snapshot does not hold are removed), re-reads and
compares every file it wrote, and commits a new seed record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubekeep.repo.repository import Repository
from kubekeep.restore.volume_data import VolumeVerificationError, verify_volume

from .seed import SeedWriter, load_seed


@dataclass(frozen=True)
class VolumeSync:
    snapshot_id: str
    #: regular files in place after the sync, and their bytes
    files: int
    bytes: int
    #: files whose data was written (and re-read and compared), and their bytes
    written: int
    written_bytes: int
    #: files kept as the seed record vouched for them
    kept: int
    #: entries removed because the snapshot does not hold them
    deleted: int
    #: whether a seed record applied
    seeded: bool
    #: the new seed record's snapshot (None when not recorded)
    seed_snapshot: str | None = None


def sync_volume(repo: Repository, snapshot_id: str, target: Path, *, target_id: str, verify: bool = True,
                record: bool = True, settle: bool = True) -> VolumeSync:
    """Make ``target`` equal to the snapshot; ``target_id`` names the volume (cluster/PV/uid) for its seed
    record (``settle``: see SeedWriter.commit; a cutover passes False). Raises VolumeVerificationError when a
    written file differs from the snapshot (no record is committed then), RestoreError/RepositoryError when the
    restore fails."""
    target.mkdir(parents=True, exist_ok=True)
    baseline = load_seed(repo, target_id, target)
    with SeedWriter(target_id, target, snapshot_id) as writer:
        result = repo.restore(snapshot_id, target, baseline=baseline, prune=True,
                              record=writer if record else None, list_written=verify)
        if verify:
            check = verify_volume(repo, snapshot_id, target, only=set(result.written_paths or ()))
            if not check.ok:
                raise VolumeVerificationError(
                    f"{len(check.mismatches)} file(s) written into {target} differ from snapshot "
                    f"{snapshot_id[:12]}: " + "; ".join(check.mismatches[:5]), check.mismatches)
        seed_snapshot = writer.commit(repo, settle=settle) if record else None
    return VolumeSync(snapshot_id, result.files, result.bytes, result.written, result.written_bytes, result.kept,
                      result.deleted, baseline is not None, seed_snapshot)
