"""The restore flow: load -> plan -> (dry run) -> apply phase by phase, volumes before workloads -> report.

Choose the restore point by id, or the latest succeeded point of an app
(optionally before a time). Parameters are plain data (usable from the UI);
blocks are named, never secrets.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from blocks import ClusterConnection, EncryptionKey, LocationProfile, load_blocks
from kubekeep.restore import TransformChain
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.report import ObjectOutcome, PhaseReport, RestoreReport, VolumeOutcome, VolumeStatus
from kubekeep.restore.transforms import Selector
from tasks.restore import (
    PlanRef,
    apply_phase,
    discard_spool,
    dry_run_plan,
    load_plan,
    not_attempted_phases,
    preflight,
    record_restore,
    restore_files,
    restore_volume,
)


class RestoreFailed(RuntimeError):
    """The restore (or dry run) found problems; the message names them, ``report`` holds every outcome."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


def build_transforms(namespace_map: dict[str, str] | None, storage_class_map: dict[str, str] | None,
                     image_rewrite: dict[str, str] | None, transforms: list[dict[str, Any]] | None) -> TransformChain:
    steps: list[dict[str, Any]] = []
    if namespace_map:
        steps.append({"type": "namespace-map", "map": namespace_map})
    if storage_class_map:
        steps.append({"type": "storage-class-map", "map": storage_class_map})
    if image_rewrite:
        steps.append({"type": "image-rewrite", "rules": [{"from": k, "to": v} for k, v in image_rewrite.items()]})
    steps.extend(transforms or ())
    return TransformChain.from_dict(steps)


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
    existing: str = "skip",
    policy: dict[str, Any] | None = None,
    preserve_node_ports: bool = False,
    include_owned: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    restore_volumes: bool = True,
    verify_volumes: bool = True,
    files: dict[str, str] | None = None,
    mover: dict[str, Any] | None = None,
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
        files: ``{"pvc": "namespace/name", "path": "dir/file", "target": "/local/dir"}`` restores files of one
            volume to a local path and changes nothing on the cluster.
        mover: ``{image, repository, env_from_secrets, service_account}`` fills volumes this worker cannot reach
            through a mover Job.
        restore_status: Kinds (``Kind.group``) of custom resources whose status is restored through the status
            subresource (otherwise status is left to their controllers, and the report says so).
    """
    logger = get_run_logger()
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    chain = build_transforms(namespace_map, storage_class_map, image_rewrite, transforms)
    restore_policy = RestorePolicy.from_dict({"existing": existing, **(policy or {})})
    selection = Selector(kinds=tuple(kinds or ()), names=tuple(names or ()),
                         labels=Selector.parse_labels(label_selector))
    if files is not None:
        return _restore_files(loc, key, conn, restore_point, app, before, files)

    plan_ref: PlanRef = load_plan(loc, key, conn, restore_point=restore_point, app=app, before=before,
                                  selection=selection, pvcs=pvcs, transforms=chain,
                                  preserve_node_ports=preserve_node_ports, include_owned=include_owned,
                                  priorities=priorities, tiers=tiers, restore_status=restore_status)
    restore_id = f"r-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    logger.info("restore %s of %s: %d objects in %d phases, %d volume(s), %d left out",
                restore_id, plan_ref.restore_point_id, plan_ref.object_count, len(plan_ref.phases),
                len(plan_ref.volumes), len(plan_ref.skipped))
    try:
        if dry_run:
            report = RestoreReport.from_dict(dry_run_plan(conn, plan_ref, restore_policy))
        else:
            report = _apply(loc, key, conn, plan_ref, restore_policy, wait, restore_volumes, verify_volumes,
                            mover)
    finally:
        discard_spool(plan_ref)
    report.outcomes = [ObjectOutcome.from_dict(o) for o in plan_ref.left_out] + report.outcomes
    report.finished_at = report.finished_at or datetime.now(UTC)
    namespaces = sorted({o.namespace for o in report.outcomes if o.namespace})
    record_restore(loc, key, report.to_dict(), plan_ref.restore_point_id, restore_id, namespaces)
    _publish(report, plan_ref, restore_id)
    result = {**report.to_dict(), "restore_id": restore_id, "restore_point_id": plan_ref.restore_point_id}
    if report.failed:
        raise RestoreFailed(f"restore {restore_id} of {plan_ref.restore_point_id}: {report.failure_summary()}",
                            result)
    return result


def _apply(loc: LocationProfile, key: EncryptionKey, conn: ClusterConnection, plan_ref: PlanRef,
           policy: RestorePolicy, wait: bool, restore_volumes: bool, verify: bool,
           mover: dict[str, Any] | None) -> RestoreReport:
    merged = RestoreReport(dry_run=False, policy=policy.to_dict(), cluster=conn.cluster_name())
    stop, fresh = preflight(conn, plan_ref)
    if stop is not None:
        merged.aborted = stop
        merged.outcomes += [ObjectOutcome.from_dict(o) for o in not_attempted_phases(plan_ref, plan_ref.phases, stop)]
        merged.finished_at = datetime.now(UTC)
        return merged
    volumes_done = not restore_volumes or not plan_ref.volumes
    for i, phase in enumerate(plan_ref.phases):
        if not volumes_done and phase.tier is not None:
            # claims are in earlier phases: their data goes in before any workload that mounts them starts
            _fill_volumes(loc, key, conn, plan_ref, merged, verify, mover)
            volumes_done = True
        part = RestoreReport.from_dict(apply_phase(conn, plan_ref, phase, policy, wait, fresh, merged.volumes))
        merged.outcomes += part.outcomes
        merged.phases += part.phases
        if part.aborted:
            merged.aborted = part.aborted
            rest = plan_ref.phases[i + 1:]
            if rest:
                merged.outcomes += [ObjectOutcome.from_dict(o)
                                    for o in not_attempted_phases(plan_ref, rest, part.aborted)]
            break
    if not volumes_done and merged.aborted is None:
        _fill_volumes(loc, key, conn, plan_ref, merged, verify, mover)
    merged.finished_at = datetime.now(UTC)
    return merged


def _fill_volumes(loc: LocationProfile, key: EncryptionKey, conn: ClusterConnection, plan_ref: PlanRef,
                  report: RestoreReport, verify: bool, mover: dict[str, Any] | None) -> None:
    """Restore the data of the claims this restore created; record one VolumeOutcome per claim."""
    created = {(o.namespace, o.name) for o in report.outcomes
               if o.kind == "PersistentVolumeClaim" and o.action.value in ("created", "recreated")}
    todo = [v for v in plan_ref.volumes if (v.namespace, v.pvc) in created]
    phase = PhaseReport("volume-data", "verified" if verify else "restored", objects=len(todo),
                        started_at=datetime.now(UTC))
    report.phases.append(phase)
    futures = [restore_volume.submit(loc, key, conn, v, verify, mover=mover) for v in todo]
    for v, fut in zip(todo, futures, strict=True):
        try:
            report.volumes.append(fut.result())
        except Exception as exc:  # noqa: BLE001 - recorded as the claim's outcome, never dropped
            report.volumes.append(VolumeOutcome(v.namespace, v.pvc, VolumeStatus.FAILED, source=v.source,
                                                snapshot_id=v.snapshot_id, error=f"{type(exc).__name__}: {exc}"))
    phase.applied_at = datetime.now(UTC)
    bad = [v for v in report.volumes if not v.usable]
    if bad:
        phase.error = "; ".join(v.why_unusable() for v in bad)
    else:
        phase.ready_at = phase.applied_at


def _restore_files(loc: LocationProfile, key: EncryptionKey, conn: ClusterConnection, restore_point: str | None,
                   app: str | None, before: datetime | None, files: dict[str, str]) -> dict[str, Any]:
    from kubekeep.restorepoint import choose_restore_point

    missing = {"pvc", "target"} - set(files)
    if missing:
        raise ValueError(f"files needs {sorted(missing)} (and optionally path)")
    with key.open_repository(loc.storage()) as repo:
        _, record = choose_restore_point(repo, restore_point=restore_point, app=app, before=before)
    ns, _, name = files["pvc"].partition("/")
    volume = next((v for v in record.volumes if v.namespace == ns and v.pvc == name and v.snapshot_id), None)
    if volume is None or volume.snapshot_id is None:
        raise ValueError(f"restore point {record.id} has no data for PVC {files['pvc']} "
                         f"(it has: {', '.join(f'{v.namespace}/{v.pvc}' for v in record.volumes) or 'none'})")
    summary: dict[str, Any] = restore_files(loc, key, volume.snapshot_id, files.get("path"), files["target"])
    return {"restore_point": record.id, "files": summary}


def _publish(report: RestoreReport, plan_ref: PlanRef, restore_id: str) -> None:
    create_markdown_artifact(report.markdown() + (
        f"\nRestore point `{plan_ref.restore_point_id}`; {len(plan_ref.skipped)} object(s) left out by the plan"
        + "".join(f"\n- {s}" for s in plan_ref.skipped[:30])), description=f"Restore {restore_id}")
    rows = report.table_rows()
    if rows:
        create_table_artifact(rows, description=f"Objects of restore {restore_id}")
