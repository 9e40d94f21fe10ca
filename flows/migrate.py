"""The migrate flow: plan -> pre-seed -> (approve) -> cut over -> prove (docs/migration.md).

1. plan: the app as the source serves it, resolved against the target; nothing is written anywhere, and a
   refused plan stops the run here;
2. pre-seed, while the source keeps running: a backup (the backup flow), then its claims created on the
   target and filled from it; every further round moves only what changed;
3. cutover: the backup flow again, with the workloads quiesced and left at zero (downtime starts), then the
   restore tasks against the target (claims of the pre-seed synced incrementally, readiness tiers) until
   the target is ready (downtime ends); the report and the downtime go to the catalog's ``restores`` table;
   a failure puts the source back;
4. prove: every file of every migrated claim compared with the final snapshot.

The source is never deleted; ``action=rollback`` un-quiesces it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import ClusterConnection, EncryptionKey, LocationProfile, keep_open, load_blocks
from flows.approval import ApprovalMode, ask_approval
from flows.backup import backup, publish_backup
from kubekeep.backup.scope import BackupScope
from kubekeep.catalog import Downtime
from kubekeep.migrate import (
    MIGRATION_ANNOTATION,
    CutoverStage,
    DowntimeClock,
    MigrationOptions,
    MigrationPlan,
    MigrationRefusedError,
)
from kubekeep.restore import PlanOptions, Selector
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.record import new_restore_id
from kubekeep.restore.report import RestoreReport
from tasks.consistency import resolve_namespaces
from tasks.migrate import VolumeProof, plan_migration, prove_volumes, source_back_on_failure, unquiesce_source
from tasks.parameters import JsonPatchRule, MigrateAction
from tasks.restore import PlanRef, ReportRef, apply_plan, discard_spool, load_plan, plan_options, record_restore
from tasks.restore_parameters import ImageRewrites, NamespaceMap, StorageClassMap, as_mapping

CLAIMS = Selector(kinds=("PersistentVolumeClaim",))


class MigrationFailed(RuntimeError):
    """The cutover (or a pre-seed round) failed; the source was put back. ``result`` holds what is known."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


class MigrationAborted(RuntimeError):
    """The cutover was not approved; the source kept running, the pre-seeded claims stay on the target."""


@flow(name="migrate", flow_run_name="migrate-{app}-{action}", log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def migrate(
    app: str,
    namespaces: list[str],
    target_cluster: str | ClusterConnection,
    source_cluster: str | ClusterConnection | None = None,
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    action: MigrateAction = MigrateAction.RUN,
    namespace_map: NamespaceMap = [],  # noqa: B006 - Prefect copies parameters; the form shows "Add item"
    storage_class_map: StorageClassMap = [],  # noqa: B006
    image_rewrite: ImageRewrites = [],  # noqa: B006
    json_patches: list[JsonPatchRule] | None = None,
    quiesce: list[str] | None = None,
    pre_seed_rounds: int = 1,
    bring_crds: bool = True,
    exclude_kinds: list[str] | None = None,
    approval: ApprovalMode = "none",
    approval_timeout: int = 3600,
    migration_id: str | None = None,
    init: bool = False,
) -> dict[str, Any]:
    """Migrate an application to another cluster (any Kubernetes version the plan can convert to); never
    deletes the source.

    Args:
        app: Application name (its restore points and the migration are named after it).
        namespaces: Namespaces (names or shell patterns) of the application on the source.
        target_cluster: The cluster block the app moves to.
        source_cluster: The cluster block the app runs on now (default: the worker's kubeconfig).
        location: The location block the pre-seed and final backups are written to.
        encryption_key: The key block of the location's repository.
        action: plan (stop after the plan; nothing is written), run (plan, pre-seed, cut over, prove) or
            rollback (un-quiesce the source; the target is left as it is).
        namespace_map: Source namespace -> target namespace.
        storage_class_map: Source StorageClass -> target StorageClass (the plan suggests one where the target
            lacks a class, and refuses to guess).
        image_rewrite: Image prefix -> new prefix.
        json_patches: JSON patches applied to the selected manifests before they reach the target.
        quiesce: Workloads scaled to zero at cutover (``*``, ``Kind/name`` or ``namespace/Kind/name``; default
            ``*``: every Deployment, StatefulSet and ReplicaSet of the namespaces).
        pre_seed_rounds: Backups restored to the target while the source runs; each round moves only what
            changed (0: none, the cutover moves everything).
        bring_crds: Create CustomResourceDefinitions the target lacks from the backup (else the plan refuses).
        exclude_kinds: Kinds (``Kind`` or ``Kind.group``) left out of the migration.
        approval: pause: wait before the cutover for an approval in the Prefect UI (the plan is shown).
        approval_timeout: Seconds to wait for the approval.
        migration_id: Marks what this migration made on the target (annotation ``kubekeep.io/migration``);
            default: the app name. A second run with the same id continues the pre-seed.
        init: Create the repository at the location if it holds none.
    """
    logger = get_run_logger()
    if not 0 <= pre_seed_rounds <= 10:
        raise ValueError(f"pre_seed_rounds must be 0..10, not {pre_seed_rounds}")
    source, target = _connection(source_cluster), _connection(target_cluster)
    scope = BackupScope(namespaces=tuple(namespaces))
    mid = migration_id or app
    slug = _slug(mid)
    if action is MigrateAction.ROLLBACK:
        back = unquiesce_source(source, resolve_namespaces(source, scope))
        create_markdown_artifact(f"# Rollback of migration `{mid}`\n\nThe source runs again: "
                                 + (", ".join(f"`{w}`" for w in back) or "nothing was quiesced"),
                                 key=f"migration-rollback-{slug}", description=f"Rollback of {mid}")
        return {"action": "rollback", "migration_id": mid, "unquiesced": back}

    options = plan_options(namespace_map=as_mapping(namespace_map), storage_class_map=as_mapping(storage_class_map),
                           image_rewrite=as_mapping(image_rewrite),
                           transforms=[{"type": "annotations", "add": {MIGRATION_ANNOTATION: mid}},
                                       *(p.to_spec() for p in json_patches or ())])
    plan = plan_migration(source, target, scope, MigrationOptions(
        plan=options, bring_crds=bring_crds, exclude_kinds=tuple(exclude_kinds or ()), migration_id=mid))
    create_markdown_artifact(plan.markdown(), key=f"migration-plan-{slug}", description=f"Migration plan {mid}")
    if plan.refused:
        raise MigrationRefusedError(plan)
    if action is MigrateAction.PLAN:
        return plan.to_dict()

    policy = RestorePolicy()
    loc, key, _ = load_blocks(location, encryption_key, None)  # plan and rollback need neither
    with keep_open(loc, key):
        for round_ in range(pre_seed_rounds):
            point = backup(app=app, namespaces=namespaces, location=loc, encryption_key=key, cluster=source,
                           init=init and round_ == 0)
            seeded = _pre_seed(loc, key, target, point, options, policy, mid, exclude_kinds or [])
            logger.info("pre-seed %d/%d from %s: %s", round_ + 1, pre_seed_rounds, point, seeded)
        if approval == "pause":
            _wait_for_approval(plan, mid, approval_timeout)

        resolved = resolve_namespaces(source, scope)
        clock = DowntimeClock()
        clock.start()
        with source_back_on_failure(source, resolved):
            with clock.stage(CutoverStage.FINAL_BACKUP):  # the backup flow's recipe, inside this run: a
                # subflow's end joins its heartbeat thread (up to 1 s) and that would be on the downtime path
                final = backup.fn(app=app, namespaces=namespaces, location=loc, encryption_key=key,
                                  cluster=source, quiesce=quiesce or ["*"], keep_quiesced=True,
                                  init=init and not pre_seed_rounds, defer_publish=True)
            try:
                restore_plan, done, report = _cut_over(loc, key, target, final, options, policy, mid, clock,
                                                       exclude_kinds or [])
            finally:  # the final point's catalog rows, score, index and artifacts: off the downtime path
                _publish_final(loc, key, final)
            downtime = clock.result()
            restore_id = new_restore_id()
            try:  # the report file lives beside the spool: recorded first, then both are deleted
                record_restore(loc, key, done, restore_plan, restore_id, downtime)
            finally:
                discard_spool(restore_plan)
            if report.failed:
                raise MigrationFailed(f"cutover {restore_id} of {final} failed: {report.failure_summary()}",
                                      report.to_dict())
        proofs = prove_volumes(loc, key, target, restore_plan.volumes)

    result = _publish(mid, slug, plan, report, restore_plan, restore_id, downtime, proofs)
    bad = [p for p in proofs if not p.ok]
    if bad:
        raise MigrationFailed("volume data on the target differs from the final snapshot: "
                              + "; ".join(f"{p.pvc}: {p.mismatches[0]}" for p in bad)
                              + " (the source stays quiesced; `kubekeep migrate --rollback` runs it again)", result)
    return result


def _cut_over(loc: LocationProfile, key: EncryptionKey, target: ClusterConnection, final: str, options: PlanOptions,
              policy: RestorePolicy, mid: str, clock: DowntimeClock, exclude_kinds: list[str]
              ) -> tuple[PlanRef, ReportRef, RestoreReport]:
    """The cutover's restore of the final point onto the target (claims synced, readiness tiers); the clock
    runs from the quiesce the final backup recorded and stops when the target is ready."""
    with clock.stage(CutoverStage.RESTORE):
        restore_plan = load_plan(loc, key, target, restore_point=final, options=options, exclude_kinds=exclude_kinds)
        if restore_plan.quiesced_at:  # the source served until the final backup scaled it to zero
            try:
                clock.began_at(datetime.fromisoformat(restore_plan.quiesced_at))
            except ValueError as exc:  # a clock step: the downtime then counts the whole final backup
                get_run_logger().warning("downtime counted from the final backup's start: %s", exc)
        try:
            done = apply_plan(loc, key, target, restore_plan, policy, seeded_by=mid, settle_seed=False)
            report = done.load(in_memory=True)  # used after the spool is discarded
        except BaseException:
            discard_spool(restore_plan)
            raise
    if not report.failed:
        clock.ready()
    return restore_plan, done, report


def _publish_final(loc: LocationProfile, key: EncryptionKey, final: str) -> None:
    """Publish the final backup's restore point (flows.backup.publish_backup); a failure here is logged, never
    raised: the cutover's outcome does not depend on it (``kubekeep catalog-rebuild`` restores the rows)."""
    logger = get_run_logger()
    try:
        unscored = publish_backup(loc, key, final)
    except Exception as exc:  # noqa: BLE001 - reported; the restore point itself is written and locked
        logger.error("restore point %s: catalog rows, score and artifacts not written: %s "
                     "(kubekeep catalog-rebuild adds the rows)", final, exc)
        return
    if unscored:
        logger.warning("restore point %s was not scored: %s", final, unscored)


def _pre_seed(loc: LocationProfile, key: EncryptionKey, target: ClusterConnection, point: str, options: PlanOptions,
              policy: RestorePolicy, mid: str, exclude_kinds: list[str]) -> str:
    """The claims of restore point ``point`` created on the target (once) and brought to its data."""
    claims = load_plan(loc, key, target, restore_point=point, selector=CLAIMS, options=options,
                       exclude_kinds=exclude_kinds)
    try:
        report = apply_plan(loc, key, target, claims, policy, seeded_by=mid).load(in_memory=True)
    finally:
        discard_spool(claims)
    if report.failed:
        raise MigrationFailed(f"pre-seed from {point} failed (the source kept running): {report.failure_summary()}",
                              report.to_dict())
    return ", ".join(f"{v.pvc} {v.method} {v.bytes} B" for v in report.volumes) or "no volume data"


def _wait_for_approval(plan: MigrationPlan, mid: str, timeout: int) -> None:
    description = ("Approve the cutover: the source is quiesced and stays at zero; the app then runs on the "
                   "target. Abort: the source keeps running.\n\n" + plan.markdown(max_objects=50))
    answer = ask_approval(f"cutover of {mid}", description, key=f"approve-cutover-{mid}", timeout=timeout)
    if not answer.approve:
        raise MigrationAborted(f"cutover of {mid} not approved{': ' + answer.reason if answer.reason else ''}; "
                               "the source kept running")


def _publish(mid: str, slug: str, plan: MigrationPlan, report: RestoreReport, restore_plan: PlanRef,
             restore_id: str, downtime: Downtime, proofs: list[VolumeProof]) -> dict[str, Any]:
    lines = [f"# Migration `{mid}`", "", f"* restore point: `{restore_plan.restore_point_id}` onto "
             f"`{plan.target_cluster}` ({plan.target_version}), restore `{restore_id}`",
             f"* downtime: **{downtime.seconds:.1f} s** (quiesce -> target ready)" if downtime.seconds is not None
             else "* downtime: target not ready"]
    lines += [f"  * {s.name}: {s.seconds:.1f} s" for s in downtime.stages]
    lines += ["", "## Volume data compared with the final snapshot", ""]
    lines += [f"* `{p.pvc}`: {p.files} files, {p.bytes} B, "
              + ("equal" if p.ok else f"**{len(p.mismatches)} mismatch(es)**: {p.mismatches[0]}") for p in proofs]
    create_markdown_artifact("\n".join(lines) + "\n\n" + report.markdown(), key=f"migration-report-{slug}",
                             description=f"Migration {mid}")
    rows = report.table_rows()
    if rows:
        create_table_artifact(rows, key=f"migration-objects-{slug}", description=f"Objects of migration {mid}")
    return {"migration_id": mid, "restore_id": restore_id, "restore_point_id": restore_plan.restore_point_id,
            "downtime": downtime.to_dict(), "volumes": [{"pvc": p.pvc, "files": p.files, "bytes": p.bytes,
                                                          "equal": p.ok} for p in proofs],
            "report": report.to_dict()}


def _connection(cluster: str | ClusterConnection | None) -> ClusterConnection:
    if cluster is None:
        return ClusterConnection()
    loaded: Any = ClusterConnection.load(cluster) if isinstance(cluster, str) else cluster
    return loaded  # type: ignore[no-any-return]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "app"
