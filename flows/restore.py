"""The restore flow: load -> plan -> (dry run) -> apply phase by phase, volumes before workloads -> report.

Choose the restore point by id, or the latest succeeded point of an app
(optionally before a time). Parameters are plain data (usable from the UI);
blocks are named, never secrets.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from pydantic import BeforeValidator, Field

from blocks import ClusterConnection, EncryptionKey, LocationProfile, keep_open, load_blocks
from flows.approval import ApprovalMode, ask_approval
from kubekeep.restore import Selector
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.record import new_restore_id
from kubekeep.restore.report import RestoreReport
from kubekeep.ui import artifact_key, point_label, restore_run_name
from tasks.index import publish_restore_points
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
from tasks.restore_parameters import (
    Existing,
    ImageRewrites,
    NamespaceMap,
    Options,
    Priorities,
    ReadinessTiers,
    RestoreOptions,
    StorageClassMap,
    Strings,
    Tiers,
    TransformStep,
    as_mapping,
)

#: outcomes in the flow's return value (problems first); every outcome is in the restore's record
RETURNED_OUTCOMES = 1000
#: rows of the objects table artifact (problems first)
TABLE_ROWS = 1000


class RestoreAborted(RuntimeError):
    """The restore was not approved after its dry run: nothing was changed on the cluster."""


class RestoreFailed(RuntimeError):
    """The restore (or dry run) found problems; the message names them, ``report`` holds every outcome."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


def _run_name() -> str:
    """``restore shop@2026-11-29T02:00Z→shop-copy (dry run)`` (docs/ui.md, Run names)."""
    params = flow_run.parameters
    pairs = []
    for item in params.get("namespace_map") or ():
        pairs.append((item["source"], item["target"]) if isinstance(item, dict) else (item.source, item.target))
    if isinstance(params.get("namespace_map"), dict):
        pairs = list(params["namespace_map"].items())
    files = params.get("files")
    name = restore_run_name(app=params.get("app"), restore_point=params.get("restore_point"),
                            namespace_map=pairs, dry_run=bool(params.get("dry_run")))
    return name + (" (files)" if files else "")


@flow(name="restore", log_prints=True, flow_run_name=_run_name)
def restore(
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    restore_point: str | None = None,
    app: str | None = None,
    before: datetime | None = None,
    kinds: Strings = [],  # noqa: B006 - an empty default renders as a list in the run form (docs/ui.md)
    names: Strings = [],  # noqa: B006
    label_selector: str | None = None,
    pvcs: Strings = [],  # noqa: B006
    namespace_map: NamespaceMap = [],  # noqa: B006
    storage_class_map: StorageClassMap = [],  # noqa: B006
    image_rewrite: ImageRewrites = [],  # noqa: B006
    transforms: Annotated[list[TransformStep], BeforeValidator(lambda v: v or [])] = [],  # noqa: B006
    priorities: Priorities = [],  # noqa: B006
    tiers: Tiers = ReadinessTiers(),
    existing: Existing = "skip",
    policy: Options = RestoreOptions(),
    preserve_node_ports: bool = False,
    include_owned: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    restore_volumes: bool = True,
    verify_volumes: bool = True,
    files: FilesToRestore | None = None,
    mover: MoverOptions | None = None,
    restore_status: Strings = [],  # noqa: B006
    last_clean: bool = False,
    approval: ApprovalMode = "none",
    approval_timeout: Annotated[int, Field(ge=10, le=7 * 24 * 3600)] = 3600,
) -> dict[str, Any]:
    """Restore (part of) a restore point onto a cluster; return the report (every object's outcome, up to
    1,000: problems first; ``outcomes_total`` counts them all, and the restore's record keeps every one).

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
        namespace_map: Restore into other namespaces: one entry per source namespace (bindings that grant a
            mapped service account are restored as copies; docs/restore-order.md).
        storage_class_map: Give restored claims other StorageClasses: one entry per source StorageClass.
        image_rewrite: Pull images from another registry or repository: prefix rules.
        transforms: More transform steps after the maps (labels, annotations, json-patch; docs/restore-order.md).
        priorities: Replaces the restore order, line by line (empty: the default order; docs/restore-order.md).
        tiers: Readiness tiers for this run, e.g. StatefulSet/db in tier 0 before Deployment/web in tier 1.
        existing: What to do with objects that exist: skip, update or recreate.
        policy: More of the restore policy: per-kind choices, claims, namespaces, nodePorts, timeouts.
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
        last_clean: Restore ``app``'s last clean point instead of its latest: the newest point that is not
            suspect and follows no unacknowledged suspect point, verified points preferred (docs/signals.md).
        approval: pause: run a dry run first (its report is the restore-<app> artifact), then wait for an
            approval in the Prefect UI before changing anything (abort: nothing is changed).
        approval_timeout: Seconds to wait for the approval (then the run fails and nothing is changed).
    """
    logger = get_run_logger()
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    restore_policy = RestorePolicy.from_dict(policy.to_policy_data(existing))
    options = plan_options(namespace_map=as_mapping(namespace_map), storage_class_map=as_mapping(storage_class_map),
                           image_rewrite=as_mapping(image_rewrite),
                           transforms=[t.to_spec() for t in transforms], priorities=[p.to_spec() for p in priorities],
                           tiers=tiers.to_spec(), preserve_node_ports=preserve_node_ports,
                           include_owned=include_owned, restore_status=restore_status)
    selector = Selector(kinds=tuple(kinds or ()), names=tuple(names or ()),
                        labels=Selector.parse_labels(label_selector))
    with keep_open(loc, key):
        if files is not None:
            return restore_files(loc, key, files, restore_point=restore_point, app=app, before=before,
                                 last_clean=last_clean)
        plan = load_plan(loc, key, conn, restore_point=restore_point, app=app, before=before, selector=selector,
                         pvcs=pvcs or (), options=options, last_clean=last_clean)
        restore_id = new_restore_id()
        logger.info("restore %s of %s: %d objects in %d phases, %d volume(s), %d left out", restore_id,
                    plan.restore_point_id, plan.object_count, len(plan.phases), len(plan.volumes),
                    plan.skipped_count)
        try:
            if approval == "pause" and not dry_run:
                _approve_after_dry_run(loc, key, conn, plan, restore_policy, approval_timeout)
            done = dry_run_plan(conn, plan, restore_policy) if dry_run else apply_plan(
                loc, key, conn, plan, restore_policy, wait=wait, restore_volumes=restore_volumes,
                verify=verify_volumes, mover=mover)
            record_restore(loc, key, done, plan, restore_id)
            report = done.load()  # its outcomes are read from the spool: used before it is discarded
            _publish(report, plan, restore_id)
            result = {**report.to_dict(outcomes=False), "restore_id": restore_id,
                      "restore_point_id": plan.restore_point_id, "outcomes_total": len(report.outcomes)}
            if len(report.outcomes) > RETURNED_OUTCOMES:  # the whole report is in the repository and the catalog
                result["outcomes"] = report.first_outcomes(RETURNED_OUTCOMES)  # problems first
            else:
                result["outcomes"] = [o.to_dict() for o in report.outcomes]
            summary = report.failure_summary() if report.failed else ""
        finally:
            discard_spool(plan)
        if plan.app:
            publish_restore_points(loc, key, plan.app)  # the index table, through the run's open repository
    if summary:
        raise RestoreFailed(f"restore {restore_id} of {plan.restore_point_id}: {summary}", result)
    return result


def _approve_after_dry_run(loc: LocationProfile, key: EncryptionKey, conn: ClusterConnection, plan: PlanRef,
                           restore_policy: RestorePolicy, timeout: int) -> None:
    """The dry run (recorded and published like any), then the approval form; raise unless approved."""
    checked = dry_run_plan(conn, plan, restore_policy)
    dry_id = new_restore_id()
    record_restore(loc, key, checked, plan, dry_id)
    report = checked.load()
    _publish(report, plan, dry_id)
    if report.failed:
        raise RestoreFailed(f"dry run {dry_id} of {plan.restore_point_id} found problems, nothing was changed and "
                            f"no approval asked: {report.failure_summary()}", report.to_dict())
    counts = ", ".join(f"{n} {action}" for action, n in sorted(report.counts.items())) or "no object"
    description = (f"**Restore `{plan.restore_point_id}`?** Its dry run `{dry_id}` passed: {counts} "
                   f"({len(plan.volumes)} volume(s) to fill). The dry run's report is the run's artifact "
                   f"`{artifact_key('restore', plan.app or plan.restore_point_id)}`. Approve to restore for real; "
                   "abort to change nothing.")
    answer = ask_approval(f"restore of {plan.restore_point_id}", description, key=f"approve-restore-{dry_id}",
                          timeout=timeout)
    if not answer.approve:
        raise RestoreAborted(f"restore of {plan.restore_point_id} not approved"
                             f"{': ' + answer.reason if answer.reason else ''}; nothing was changed "
                             f"(dry run {dry_id})")


def _publish(report: RestoreReport, plan: PlanRef, restore_id: str) -> None:
    """The report as keyed artifacts (``restore-<app>``, ``restore-objects-<app>``): the Artifacts page keeps
    one entry per app with the history of its restores."""
    app = plan.app or plan.restore_point_id
    volumes = report.volumes
    if not volumes:
        data = "no volume data restored" + (" (dry run)" if report.dry_run else "")
    else:
        done = Counter(v.status.value for v in volumes)
        data = f"volume data of {len(volumes)} claim(s): " + ", ".join(f"{n} {s}" for s, n in sorted(done.items()))
    head = (f"Restore `{restore_id}` of restore point `{plan.restore_point_id}` ({point_label(plan.restore_point_id)})"
            f"; {data}; {plan.skipped_count} object(s) left out by the plan.\n\n")
    more = plan.skipped_count - len(plan.skipped)
    left_out = "".join(f"\n- left out: {s}" for s in plan.skipped)
    if more > 0:
        left_out += f"\n- ... and {more} more (every one is in the report)"
    create_markdown_artifact(head + report.markdown() + left_out,
                             key=artifact_key("restore", app),
                             description=f"{'Dry run' if report.dry_run else 'Restore'} {restore_id} of "
                                         f"{plan.restore_point_id}")
    # problems first when there are more than TABLE_ROWS; the whole report is kept with the restore (restore id)
    rows = report.table_rows(TABLE_ROWS if len(report.outcomes) > TABLE_ROWS else None)
    if rows:
        create_table_artifact(rows, key=artifact_key("restore-objects", app),
                              description=f"Objects of restore {restore_id}"
                              + (f" (first {len(rows)} of {len(report.outcomes)}, problems first)"
                                 if len(report.outcomes) > len(rows) else ""))
