"""Tasks of the DR-copy flow: thin adapters over kubekeep.drcopy (docs/dr-copy.md)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from prefect import task

from blocks import EncryptionKey, LocationProfile, repository
from kubekeep.catalog import Catalog
from kubekeep.drcopy import (
    CopyMode,
    DestinationLock,
    PointCopy,
    PointRef,
    check_destination,
    choose_points,
    copy_point,
    copy_records,
    init_destination,
    open_sites,
    present_points,
)
from kubekeep.drcopy.throttle import UploadLimit
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.errors import RepositoryNotFoundError
from kubekeep.repo.storage import RetentionMode
from kubekeep.restorepoint import rebuild_repository_catalog

from .common import DATA_TASK


@dataclass(frozen=True)
class CopyPlan:
    """The points to copy (oldest first) and those the destination already holds."""

    points: list[PointRef]
    present: list[PointRef]


@task(name="prepare-destination", **DATA_TASK)
def prepare_destination(source: LocationProfile, source_key: EncryptionKey, destination: LocationProfile,
                        destination_key: EncryptionKey, mode: CopyMode, init: bool) -> bool:
    """Check that the destination fits ``mode``; with ``init``, create it from the source when it holds no
    repository. Returns True when it was created. Both are opened side by side (open_sites); the flow holds
    them open for its other tasks."""
    with ExitStack() as held:
        src, dst = open_sites(lambda: held.enter_context(repository(source, source_key)),
                              lambda: held.enter_context(repository(destination, destination_key)))
        if not isinstance(dst, RepositoryNotFoundError):
            check_destination(src, dst, mode)
            return False
        if not init:
            raise RepositoryNotFoundError(f"{dst}; give init (--init) to create the destination repository "
                                          f"in {mode.value} mode")
        passphrase = destination_key.passphrase.get_secret_value() if destination_key.passphrase else None
        init_destination(src, destination.storage(), mode, passphrase=passphrase,
                         key_wrapper=destination_key.key_wrapper(),
                         kdf=KdfParams.cheap() if destination_key.cheap_kdf else None, create_location=True,
                         object_lock=destination.object_lock_mode is not None).close()
        return True


@task(name="plan-copy", **DATA_TASK)
def plan_copy(source: LocationProfile, source_key: EncryptionKey, destination: LocationProfile,
              destination_key: EncryptionKey, restore_point: str | None, app: str | None, all_points: bool
              ) -> CopyPlan:
    """The chosen restore points at the source, split into those to copy and those the destination holds."""
    with repository(source, source_key) as src, repository(destination, destination_key) as dst:
        chosen = choose_points(src, restore_point=restore_point, app=app, all_points=all_points)
        have = present_points(dst)
    return CopyPlan(points=[p for p in chosen if p.restore_point not in have],
                    present=[p for p in chosen if p.restore_point in have])


@task(name="copy-restore-point", task_run_name="copy-{point.restore_point}", **DATA_TASK)
def copy_restore_point(source: LocationProfile, source_key: EncryptionKey, destination: LocationProfile,
                       destination_key: EncryptionKey, point: PointRef, mode: CopyMode,
                       limit_upload_mib: float | None = None) -> PointCopy:
    """Copy one restore point: data, snapshots, verification, Object Lock, the record last."""
    lock = None
    if destination.object_lock_mode:
        lock = DestinationLock(RetentionMode(destination.object_lock_mode), destination.object_lock_days)
    limit: Callable[[int], None] | None = UploadLimit(limit_upload_mib * 1024 * 1024) if limit_upload_mib else None
    with repository(source, source_key) as src, repository(destination, destination_key) as dst:
        return copy_point(src, dst, point, mode, lock=lock, progress=limit)


@task(name="catalog-destination", **DATA_TASK)
def catalog_destination(destination: LocationProfile, destination_key: EncryptionKey) -> int:
    """Write the catalog rows the destination lacks (derived from its restore-point records); how many."""
    with repository(destination, destination_key) as dst:
        return rebuild_repository_catalog(dst).points_written


@task(name="record-copies", **DATA_TASK)
def record_copies(source: LocationProfile, source_key: EncryptionKey, destination: LocationProfile,
                  mode: CopyMode, results: list[PointCopy]) -> list[str]:
    """Record in the source's catalog where its points were copied (``dr_copies``); return the apps whose
    points the destination now holds."""
    records = copy_records(results, destination.describe(), mode)
    with repository(source, source_key) as src:
        catalog = Catalog(src.storage, codec=src.catalog_codec())
        for record in records:
            catalog.add_dr_copy(record)
    return sorted({r.app for r in records})
