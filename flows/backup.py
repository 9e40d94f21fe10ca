"""The backup flow: discover -> pre hooks -> manifests -> quiesce -> volumes -> unquiesce -> post hooks
-> commit restore point -> lock -> catalog.

Parameters name Blocks (or take Block instances from Python), so no secret is
ever a flow parameter. A restore point is written even when some items failed
(status partially_failed, with every failure listed); the run is then Failed
with a message naming what failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from blocks import ClusterConnection, EncryptionKey, LocationProfile, keep_open, load_blocks
from kubekeep.backup.hooks import HookError, HookRule
from kubekeep.backup.scope import BackupScope
from kubekeep.drcopy import CopyMode
from kubekeep.restorepoint import RestorePointRecord, VolumeRecord
from kubekeep.restorepoint.ids import new_restore_point_id
from kubekeep.signals.points import point_ref
from kubekeep.ui import artifact_key, backup_run_name, human_bytes
from tasks.backup import (
    ManifestResult,
    commit_restore_point,
    export_volumes,
    lock_restore_point,
    read_restore_point_record,
    record_catalog,
    restore_point_record,
    snapshot_manifests,
)
from tasks.backup_parameters import HookRules, NfsMounts
from tasks.consistency import hooks_around, quiesced, resolve_namespaces
from tasks.index import publish_restore_points
from tasks.parameters import CopyAfterBackup, MoverOptions, SignalOptions
from tasks.restore_parameters import Strings
from tasks.signals import SignalsVerdict, announce_suspect, score_restore_point


class BackupFailed(RuntimeError):
    """Raised at the end of a run whose restore point is incomplete; the message names every failure."""


class SignalsFailed(RuntimeError):
    """Raised at the end of a run whose restore point is complete but could not be scored (no signals)."""


def _run_name() -> str:
    """``backup shop 2026-11-29T02:00Z``: the app and the time the run was scheduled for (docs/ui.md)."""
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return backup_run_name(str(flow_run.parameters.get("app", "?")), when)


@flow(name="backup", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
      flow_run_name=_run_name)
def backup(
    app: str,
    namespaces: Strings,
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    label_selector: str | None = None,
    include_kinds: Strings = [],  # noqa: B006 - an empty default renders as a list in the run form (docs/ui.md)
    exclude_kinds: Strings = [],  # noqa: B006
    volume_concurrency: Annotated[int, Field(ge=1)] = 2,
    nfs_mounts: NfsMounts = [],  # noqa: B006
    hooks: HookRules = [],  # noqa: B006
    quiesce: Strings = [],  # noqa: B006
    mover: MoverOptions | None = None,
    policy: str | None = None,
    include_crds: Strings = [],  # noqa: B006
    init: bool = False,
    signals: SignalOptions | None = None,
    copy_to: CopyAfterBackup | None = None,
    keep_quiesced: bool = False,
    defer_publish: bool = False,
) -> str:
    """Back up an application; return the id of the new restore point.

    Args:
        app: Application name; restore points are grouped by it.
        namespaces: Namespaces (names or shell patterns) of the application.
        location: The location block (name, or instance from Python) to write to.
        encryption_key: The key block that opens the location's repository.
        cluster: The source cluster block (default: the worker's kubeconfig).
        label_selector: Only objects with these labels.
        include_kinds: Only these kinds (``Kind``, ``Kind.group`` or plural).
        exclude_kinds: Leave these kinds out.
        volume_concurrency: Volumes exported at once.
        nfs_mounts: Where NFS exports are mounted on the worker: one entry per export.
        hooks: Hook rules: commands run in the selected pods before and after the volumes are read (pod
            annotations add more; docs/backup.md).
        quiesce: Workloads scaled to zero while volumes are exported (``*``, ``Kind/name`` or
            ``namespace/Kind/name``).
        mover: A mover Job (image, location as the cluster sees it, env_from_secrets, service_account): the CSI
            snapshot path for volumes the worker cannot read directly (tasks.backup.export_volume).
        policy: Name of the backup policy recorded with the restore point.
        include_crds: CustomResourceDefinitions to back up even without custom resources: API groups or CRD
            names (shell patterns). CRDs installed by the application's Helm release or labelled ``part-of``
            like it are included anyway; the restore point records why each CRD is in it.
        init: Create the repository (and its directory or bucket) when the location holds
            none; only for a first backup. Without it a location that is not a repository
            fails, so an unmounted NFS path never becomes a repository on the local disk.
        signals: Ransomware and anomaly signals: the new point is scored against the app's baseline and marked
            suspect above the threshold (a Prefect event and the ``suspect-restore-point-<app>`` artifact);
            docs/signals.md.
        copy_to: After a successful backup, copy the new restore point to this second site (the dr-copy
            flow, as a subflow; docs/dr-copy.md).
        keep_quiesced: Leave the ``quiesce`` workloads at zero after a successful backup (a migration's final
            backup: the source stays stopped; a failed backup still restores them).
        defer_publish: Return as soon as the restore point is written and locked; its catalog rows, signals
            score, the app's restore-point index and the run's artifacts are left to the caller, which runs
            ``publish_backup`` (a migration's final backup: off the downtime path). Not with ``copy_to``.
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    if defer_publish and copy_to is not None:
        raise ValueError("defer_publish cannot be combined with copy_to: the copy takes the catalog rows the "
                         "deferred publish writes later")
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    scope = BackupScope(namespaces=tuple(namespaces), label_selector=label_selector,
                        include_kinds=tuple(include_kinds or ()), exclude_kinds=tuple(exclude_kinds or ()),
                        include_crds=tuple(include_crds or ()))
    rules = [HookRule.from_dict(h.to_spec()) for h in hooks]
    rp_id = new_restore_point_id(app, started)
    logger.info("restore point %s: app %s, namespaces %s -> %s", rp_id, app, namespaces, loc.describe())

    failures: list[str] = []
    manifests: ManifestResult | None = None
    volumes: list[VolumeRecord] = []
    quiesced_at: str | None = None
    with keep_open(loc, key):
        resolved = resolve_namespaces(conn, scope)
        try:
            with hooks_around(conn, resolved, rules) as hook_run:
                manifests = snapshot_manifests(loc, key, conn, scope, rp_id, app, init)
                with quiesced(conn, resolved, quiesce, keep=keep_quiesced) as stopped:
                    quiesced_at = stopped.started_at if stopped else None
                    volumes = export_volumes(loc, key, conn, manifests.pvcs, rp_id,
                                             nfs_mounts={m.export: m.mount for m in nfs_mounts},
                                             mover=mover, concurrency=volume_concurrency)
        except HookError as exc:
            failures.append(f"{'post hooks' if manifests else 'hooks'}: {exc}")
        if manifests is None:
            raise BackupFailed(f"no restore point written: {'; '.join(failures)}")

        failures += manifests.type_errors + [f"volume {v.namespace}/{v.pvc}: {v.error}" for v in volumes if v.error]
        retention = loc.retention(started)
        record = restore_point_record(
            restore_point_id=rp_id, app=app, cluster=conn.cluster_name(), location=loc.describe(), started=started,
            manifests=manifests, volumes=volumes, hooks=hook_run, scope=scope, failures=failures, policy=policy,
            retain_until=retention[1] if retention else None, quiesced_at=quiesced_at)
        rp_snapshot = commit_restore_point(loc, key, record)
        if retention is not None:  # a location without Object Lock has nothing to lock: no task run to wait for
            lock_restore_point(loc, key, [manifests.snapshot_id, rp_snapshot, *(v.snapshot_id for v in volumes
                                                                                 if v.snapshot_id)])
        signals_error = None
        if not defer_publish or failures:  # a failed run publishes now: nobody publishes it later
            signals_error = _publish_point(loc, key, record, rp_snapshot, failures, signals)
    if failures:
        raise BackupFailed(f"restore point {rp_id} is incomplete ({len(failures)} failure(s)): "
                           + "; ".join(failures))
    if copy_to is not None:
        from flows.dr_copy import dr_copy

        dr_copy(source=loc, destination=copy_to.destination, source_key=key,
                destination_key=copy_to.destination_key, restore_point=rp_id, mode=CopyMode(copy_to.mode),
                init=copy_to.init)
    if signals_error:
        raise SignalsFailed(f"restore point {rp_id} is complete but was not scored: {signals_error}")
    return rp_id


def publish_backup(location: LocationProfile, encryption_key: EncryptionKey, restore_point_id: str,
                   signals: SignalOptions | None = None) -> str | None:
    """Publish a restore point a backup run wrote with ``defer_publish``: its catalog rows, its signals score
    (a suspect point emits its event), the app's restore-point index and the summary artifacts, in the calling
    flow run. Returns why the point was not scored, or None."""
    with keep_open(location, encryption_key):
        rp_snapshot, record = read_restore_point_record(location, encryption_key, restore_point_id)
        return _publish_point(location, encryption_key, record, rp_snapshot, [], signals)


def _publish_point(loc: LocationProfile, key: EncryptionKey, record: RestorePointRecord, rp_snapshot: str,
                   failures: list[str], signals: SignalOptions | None) -> str | None:
    """The steps after a restore point is written and locked; returns why it was not scored, or None."""
    object_rows = record_catalog(loc, key, rp_snapshot)
    verdict, signals_error = _score(loc, key, record, signals or SignalOptions())
    publish_restore_points(loc, key, record.app)  # the index table, through the run's open repository
    _publish(record, object_rows, failures, verdict)
    if verdict is not None and verdict.suspect:
        get_run_logger().warning("restore point %s is SUSPECT (score %.1f): %s", record.id, verdict.score,
                                 "; ".join(verdict.reasons[:3]))
        announce_suspect(verdict, loc.describe())
    return signals_error


def _score(loc: LocationProfile, key: EncryptionKey, record: RestorePointRecord, options: SignalOptions
           ) -> tuple[SignalsVerdict | None, str | None]:
    """The point's verdict, or why there is none. Scoring runs after the point is written and catalogued,
    so its failure never costs the restore point; the run still fails, naming it."""
    if not options.enabled:
        return None, None
    state = score_restore_point(loc, key, record.id, point_ref(record), options, return_state=True)
    if state.is_completed():
        return state.result(), None
    return None, state.message or "the score-restore-point task failed"


def _publish(record: RestorePointRecord, object_rows: int, failures: list[str], verdict: SignalsVerdict | None
             ) -> None:
    kinds = [{"kind": k, "objects": n} for k, n in sorted(record.kind_counts.items())]
    create_table_artifact(kinds, key=artifact_key("backup-objects", record.app),
                          description=f"Objects in restore point {record.id}")
    vols = [{"pvc": f"{v.namespace}/{v.pvc}", "method": v.method, "files": v.files,
             "size": human_bytes(v.logical_bytes), "new_stored": human_bytes(v.stored_bytes), "error": v.error or ""}
            for v in record.volumes]
    if vols:
        create_table_artifact(vols, key=artifact_key("backup-volumes", record.app),
                              description=f"Volumes in restore point {record.id}")
    lines = [f"# Restore point `{record.id}`", "",
             f"* app: **{record.app}**, cluster `{record.cluster}`, namespaces {', '.join(record.namespaces)}",
             f"* status: **{record.status}**",
             f"* objects: {record.object_count} ({object_rows} catalog rows), volumes: {len(record.volumes)}",
             f"* volume data: {human_bytes(sum(v.logical_bytes for v in record.volumes))}, "
             f"new in the repository: {human_bytes(sum(v.stored_bytes for v in record.volumes))}",
             f"* retained until: {record.retain_until or 'no Object Lock'}", f"* location: {record.location}"]
    if verdict is not None:
        lines.append(f"* signals: score {verdict.score:.1f} (threshold {verdict.threshold:g})"
                     + (" — **SUSPECT**: " + "; ".join(verdict.reasons[:3]) if verdict.suspect else ", clean"))
    if record.crds:
        lines += ["", "## CustomResourceDefinitions", "",
                  *[f"* `{name}`: {'; '.join(reasons)}" for name, reasons in record.crds.items()]]
    if failures:
        lines += ["", "## Failures", *[f"* {f}" for f in failures]]
    create_markdown_artifact("\n".join(lines), key=artifact_key("backup", record.app),
                             description=f"Backup summary {record.id}")
