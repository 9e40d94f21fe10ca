"""The restore flow: load -> plan -> (dry run) -> apply phase by phase, volumes before workloads -> report.

Choose the restore point by id, or the latest succeeded point of an app
(optionally before a time). Parameters are plain data (usable from the UI);
blocks are named, never secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from blocks import ClusterConnection, EncryptionKey, LocationProfile, keep_open, load_blocks
from kubekeep.restore import Selector
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.record import new_restore_id
from kubekeep.restore.report import RestoreReport
from tasks.parameters import FilesToRestore, MoverOptions
from tasks.restore import (
    PlanRef,
    apply_plan,
    discard_spool,
    dry_run_plan,
    load_plan,
    plan_options,
    record_restore,
    restore_files,
)


class RestoreFailed(RuntimeError):
    """The restore (or dry run) found problems; the message names them, ``report`` holds every outcome."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


@flow(name="restore", log_prints=True)
def restore(
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    restore_point: str | None = None,
    app: str | None = None,
    before: datetime | None = None,
    kinds: list[str] | None = None,
    names: list[str] | None = None,
    label_selector: str | None = None,
    pvcs: list[str] | None = None,
    namespace_map: dict[str, str] | None = None,
    storage_class_map: dict[str, str] | None = None,
    image_rewrite: dict[str, str] | None = None,
    transforms: list[dict[str, Any]] | None = None,
    priorities: list[Any] | None = None,
    tiers: dict[str, Any] | None = None,
    existing: Literal["skip", "update", "recreate"] = "skip",
    policy: dict[str, Any] | None = None,
    preserve_node_ports: bool = False,
    include_owned: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    restore_volumes: bool = True,
    verify_volumes: bool = True,
    files: FilesToRestore | None = None,
    mover: MoverOptions | None = None,
    restore_status: list[str] | None = None,
) -> dict[str, Any]:
    """Restore (part of) a restore point onto a cluster; return the report (every object's outcome).

    Args:
        location: The location block (name, or instance from Python) holding the restore point.
        encryption_key: The key block that opens the location's repository.
        cluster: The target cluster block (default: the worker's kubeconfig).
        restore_point: Restore point id; else the latest succeeded point of ``app``.
        app: Application whose latest succeeded restore point is restored (with ``before``: the latest before).
        before: Only restore points finished before this time.
        kinds: Only objects of these kinds (``Kind`` or ``Kind.group``).
        names: Only objects with these names.
        label_selector: Only objects with these labels (``key=value,...``).
        pvcs: Only these claims (``namespace/name``) and their data.
        namespace_map: Source namespace -> target namespace (bindings that grant a mapped service account are
            restored as copies; docs/restore-order.md).
        storage_class_map: Source StorageClass -> target StorageClass.
        image_rewrite: Image prefix -> new prefix.
        transforms: More transform steps (json-patch, labels, annotations, ...; docs/restore-order.md).
        priorities: Replaces the restore order (docs/restore-order.md).
        tiers: Readiness tiers for this run: ``{"tiers": {"StatefulSet/db": 0}, "after": {"web": ["db"]}}``.
        existing: What to do with objects that exist: skip, update or recreate.
        policy: More of the restore policy: existing_by_kind, recreate_pvcs, create_namespaces,
            node_port_conflicts, ready_timeout, crd_timeout, delete_timeout, workers.
        preserve_node_ports: Keep the nodePorts the source cluster assigned.
        include_owned: Also restore objects their restored owners would recreate.
        dry_run: Validate every object server-side and change nothing.
        wait: Wait for each readiness tier to be Ready before the next.
        restore_volumes: Restore volume data into the restored claims.
        verify_volumes: Re-read restored volume data and compare it with the snapshot; a workload never starts
            on volume data that failed or was not verified.
        files: Restore files of one volume (pvc ``namespace/name``, optional path) to a local directory
            (target) instead, and change nothing on the cluster.
        mover: A mover Job (image, location as the cluster sees it, env_from_secrets, service_account) fills
            volumes this worker cannot reach.
        restore_status: Kinds (``Kind.group``) of custom resources whose status is restored through the status
            subresource (otherwise status is left to their controllers, and the report says so).
    """
    logger = get_run_logger()
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    restore_policy = RestorePolicy.from_dict({"existing": existing, **(policy or {})})
    options = plan_options(namespace_map=namespace_map, storage_class_map=storage_class_map,
                           image_rewrite=image_rewrite, transforms=transforms, priorities=priorities, tiers=tiers,
                           preserve_node_ports=preserve_node_ports, include_owned=include_owned,
                           restore_status=restore_status)
    selector = Selector(kinds=tuple(kinds or ()), names=tuple(names or ()),
                        labels=Selector.parse_labels(label_selector))
    with keep_open(loc, key):
        if files is not None:
            return restore_files(loc, key, files, restore_point=restore_point, app=app, before=before)
        plan = load_plan(loc, key, conn, restore_point=restore_point, app=app, before=before, selector=selector,
                         pvcs=pvcs or (), options=options)
        restore_id = new_restore_id()
        logger.info("restore %s of %s: %d objects in %d phases, %d volume(s), %d left out", restore_id,
                    plan.restore_point_id, plan.object_count, len(plan.phases), len(plan.volumes), len(plan.skipped))
        try:
            report = dry_run_plan(conn, plan, restore_policy) if dry_run else apply_plan(
                loc, key, conn, plan, restore_policy, wait=wait, restore_volumes=restore_volumes,
                verify=verify_volumes, mover=mover)
        finally:
            discard_spool(plan)
        record_restore(loc, key, report, plan, restore_id)
    _publish(report, plan, restore_id)
    result = {**report.to_dict(), "restore_id": restore_id, "restore_point_id": plan.restore_point_id}
    if report.failed:
        raise RestoreFailed(f"restore {restore_id} of {plan.restore_point_id}: {report.failure_summary()}", result)
    return result


def _publish(report: RestoreReport, plan: PlanRef, restore_id: str) -> None:
    create_markdown_artifact(report.markdown() + (
        f"\nRestore point `{plan.restore_point_id}`; {len(plan.skipped)} object(s) left out by the plan"
        + "".join(f"\n- {s}" for s in plan.skipped[:30])), description=f"Restore {restore_id}")
    rows = report.table_rows()
    if rows:
        create_table_artifact(rows, description=f"Objects of restore {restore_id}")
