"""The DR-copy flow: restore points from one location to a second site (docs/dr-copy.md).

prepare-destination -> plan-copy -> copy-restore-point x N -> catalog-destination -> record-copies (the
source's catalog) -> the restore-point index of each app -> artifact.

Each point is copied on its own: one that fails (a corrupted source pack, ...) is
named in the run's failure and commits nothing at the destination; the others are
copied. Points the destination holds are skipped; nothing is ever deleted there.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from blocks import EncryptionKey, LocationProfile, keep_open
from kubekeep.drcopy import CopyMode, PointCopy
from tasks.dr_copy import catalog_destination, copy_restore_point, plan_copy, prepare_destination, record_copies
from tasks.index import publish_restore_points

ARTIFACT_KEY = "dr-copy"


class CopyFailed(RuntimeError):
    """Some restore points could not be copied; the message names each one and why."""


def _run_name() -> str:
    params: dict[str, Any] = flow_run.parameters or {}
    what = params.get("restore_point") or (f"app-{params['app']}" if params.get("app") else "all")
    mode = params.get("mode") or CopyMode.REPLICA
    return f"dr-copy-{CopyMode(mode).value}-{what}"


def _block(value: str | LocationProfile | EncryptionKey, kind: type[Any]) -> Any:
    return kind.load(value) if isinstance(value, str) else value


@flow(name="dr-copy", flow_run_name=_run_name, log_prints=True)
def dr_copy(
    source: str | LocationProfile = "default",
    destination: str | LocationProfile = "dr",
    source_key: str | EncryptionKey = "default",
    destination_key: str | EncryptionKey | None = None,
    restore_point: str | None = None,
    app: str | None = None,
    all_points: bool = False,
    mode: CopyMode = CopyMode.REPLICA,
    limit_upload_mib: float | None = None,
    init: bool = False,
) -> list[PointCopy]:
    """Copy restore points to a second site: incremental, verified before visible, locked, one-way.

    Args:
        source: The location block (name, or instance from Python) to copy from.
        destination: The location block to copy to; its Object Lock mode and days lock every copied point
            (never shorter than the point's lock at the source).
        source_key: The key block that opens the source repository.
        destination_key: The key block that opens the destination (its own key slot); default: the source's.
        restore_point: Copy this restore point (by id).
        app: Copy every restore point of this application.
        all_points: Copy every restore point.
        mode: replica (same master key through the destination's own key slot, packs byte for byte) or
            independent (the destination's own master key, blobs re-encrypted); see docs/dr-copy.md.
        limit_upload_mib: Upload limit in MiB/s (none: as fast as possible).
        init: Create the destination repository in ``mode`` when the location holds none.
    """
    logger = get_run_logger()
    src, dst = _block(source, LocationProfile), _block(destination, LocationProfile)
    src_key = _block(source_key, EncryptionKey)
    dst_key = _block(destination_key, EncryptionKey) if destination_key is not None else src_key
    mode = CopyMode(mode)
    results: list[PointCopy] = []
    failures: list[str] = []
    with keep_open(src, src_key), keep_open(dst, dst_key):
        if prepare_destination(src, src_key, dst, dst_key, mode, init):
            logger.info("created the %s destination repository at %s", mode.value, dst.describe())
        plan = plan_copy(src, src_key, dst, dst_key, restore_point, app, all_points)
        logger.info("%d restore point(s) to copy %s -> %s, %d already there", len(plan.points), src.describe(),
                    dst.describe(), len(plan.present))
        results += [PointCopy(p.restore_point, p.app, "skipped") for p in plan.present]
        for point in plan.points:
            state = copy_restore_point(src, src_key, dst, dst_key, point, mode, limit_upload_mib,
                                       return_state=True)
            outcome = state.result(raise_on_failure=False)
            if isinstance(outcome, PointCopy):
                results.append(outcome)
            else:
                error = str(outcome) or type(outcome).__name__
                failures.append(f"{point.restore_point}: {error}")
                results.append(PointCopy(point.restore_point, point.app, "failed", error=error))
        catalog_destination(dst, dst_key)
        for copied_app in record_copies(src, src_key, dst, mode, results):
            publish_restore_points(src, src_key, copied_app)  # the index shows the new copies
    _publish(results, src.describe(), dst.describe(), mode)
    if failures:
        raise CopyFailed(f"{len(failures)} restore point(s) not copied: " + "; ".join(failures))
    return results


def _publish(results: list[PointCopy], source: str, destination: str, mode: CopyMode) -> None:
    rows = [{"restore point": r.restore_point, "status": r.status, "packs copied": r.packs_copied,
             "packs skipped": r.packs_skipped, "bytes": r.bytes_copied,
             "verification": "verified" if r.verified else ("already there" if r.status == "skipped" else "failed"),
             "locked until": r.locked_until or "", "error": r.error or ""} for r in results]
    create_table_artifact(rows, key=ARTIFACT_KEY,
                          description=f"DR copy ({mode.value}) {source} -> {destination}")
