"""The verify flow: restore a point into an isolated sandbox, check it, measure it, keep the verdict.

sandbox (abandoned ones removed, this run's created and isolated) -> load-plan -> apply-plan (the restore
tasks, with the isolation transforms) -> record-restore -> checks -> teardown (always) ->
record-verification -> artifacts. A verdict other than ``passed`` fails the flow run, so Prefect
notifications fire. ``verify_latest`` verifies the newest point of every protected app (docs/verification.md).
"""

from __future__ import annotations

import re
from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_run

from blocks import ClusterConnection, EncryptionKey, LocationProfile, keep_open, load_blocks, open_catalog
from kubekeep.catalog import protected_apps
from kubekeep.restore.record import new_restore_id
from kubekeep.verify import (
    StageName,
    UserCheck,
    Verdict,
    VerificationPolicy,
    merge_checks,
    teardown,
)
from tasks.parameters import MoverOptions
from tasks.restore import apply_plan, discard_spool, load_plan, plan_options, record_restore
from tasks.restore_parameters import ImageRewrites, StorageClassMap, as_mapping
from tasks.verify import (
    PointToVerify,
    builtin_checks,
    choose_point,
    record_verification,
    sandboxed,
    user_check,
)


class VerificationFailed(RuntimeError):
    """The restore point did not pass its verification (or could not be judged); the message says why."""

    #: ``verify``: the verdict; ``verify_latest``: app -> its result ("passed" or why not)
    def __init__(self, message: str, verdict: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.verdict = verdict or {}


def sandbox_run_id(flow_run_id: str | None) -> str | None:
    """The sandbox's run id, from the flow run's: a cancellation hook finds the sandbox without state."""
    return flow_run_id.replace("-", "")[:10] if flow_run_id else None


def artifact_key(prefix: str, name: str) -> str:
    """A stable artifact key (lowercase letters, digits and dashes): the same app, the same key."""
    return f"{prefix}-{re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-') or 'unnamed'}"


def _run_name() -> str:
    params = current_run.parameters
    return f"verify-{params.get('restore_point') or params.get('app') or 'latest'}"


def _teardown_on_cancel(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """Cancelled runs tear their sandbox down here too (a run killed outright: the next run's cleanup)."""
    run_id = sandbox_run_id(str(flow_run.id))
    if not run_id:
        return
    # a deployment's parameters name the block; a run started from Python with an instance: the default
    cluster = (flow_run.parameters or {}).get("cluster")
    conn: Any = ClusterConnection.load(cluster) if isinstance(cluster, str) else ClusterConnection()
    with conn.connect() as c:
        result = teardown(c, run_id)
    # the runner calls this in its own process: the flow run's logger puts the line in the run's logs (the UI)
    flow_run_logger(flow_run).warning("flow run cancelled: sandbox %s torn down: %s", run_id, result.describe())


@flow(name="verify", flow_run_name=_run_name, log_prints=True, on_cancellation=[_teardown_on_cancel])
def verify(
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    restore_point: str | None = None,
    app: str | None = None,
    checks: list[UserCheck] | None = None,
    policy: VerificationPolicy | None = None,
    storage_class_map: StorageClassMap = [],  # noqa: B006 - Prefect copies parameters; the form shows "Add item"
    image_rewrite: ImageRewrites = [],  # noqa: B006
    mover: MoverOptions | None = None,
) -> dict[str, Any]:
    """Verify that a restore point restores: into an isolated sandbox, checked, timed; the verdict is recorded.

    Args:
        location: The location block (name, or instance from Python) holding the restore point.
        encryption_key: The key block that opens the location's repository.
        cluster: The sandbox cluster block: the app's own cluster or a separate one (default: the worker's
            kubeconfig).
        restore_point: Restore point id; else the latest succeeded point of ``app``.
        app: Application whose latest succeeded restore point is verified.
        checks: User checks (exec, http) of this run; they win over the policy's and the annotations' of the
            same name.
        policy: How the app is verified: more checks, the built-in checks, isolation (replica cap, DNS),
            the readiness timeout, the sandbox lifetime, whether annotated checks run.
        storage_class_map: Source StorageClass -> sandbox StorageClass (a separate sandbox cluster may name its
            classes differently).
        image_rewrite: Image prefix -> new prefix (a sandbox cluster that pulls from a mirror).
        mover: A mover Job fills sandbox volumes this worker cannot reach (as in the restore flow).
    """
    logger = get_run_logger()
    policy = policy or VerificationPolicy()
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    mapped = plan_options(storage_class_map=as_mapping(storage_class_map), image_rewrite=as_mapping(image_rewrite)
                          ).transforms
    with keep_open(loc, key):
        point = choose_point(loc, key, restore_point=restore_point, app=app,
                             annotation_checks=policy.annotation_checks)
        user_checks = merge_checks(list(checks or ()), list(policy.checks), point.annotation_checks)
        logger.info("verifying %s of %s: %d user check(s)", point.restore_point_id, point.app, len(user_checks))
        run = current_run.id or ""
        with sandboxed(conn, point, policy, run_id=sandbox_run_id(run), flow_run=run) as box:
            with box.stage(StageName.PLAN):
                plan = box.planned(load_plan(loc, key, conn, restore_point=point.restore_point_id,
                                             options=box.plan_options(mapped)))
            try:
                done = apply_plan(loc, key, conn, plan, box.restore_policy(), mover=mover)
                report = box.restored(done.load(in_memory=True))
                record_restore(loc, key, done, plan, new_restore_id())
            finally:
                discard_spool(plan)
            box.checks = builtin_checks(conn, report, box.namespace_map, point, policy.builtin)
            box.checks += [user_check(conn, check, box.namespace_map) for check in user_checks]
        verdict = box.verdict(point)
        record_verification(loc, key, verdict)
    _publish(verdict)
    result = verdict.model_dump(mode="json")
    if not verdict.passed:
        raise VerificationFailed(f"verification of {point.restore_point_id} {verdict.result.value}: {verdict.reason}",
                                 result)
    return result


def _publish(verdict: Verdict) -> None:
    create_markdown_artifact(verdict.markdown(), key=artifact_key("verification", verdict.app),
                             description=f"Verification of {verdict.restore_point_id} ({verdict.app})")
    create_table_artifact(verdict.table_rows(), key=artifact_key("verification-checks", verdict.app),
                          description=f"Checks of the verification of {verdict.restore_point_id}")


@flow(name="verify-latest", flow_run_name="verify-latest", log_prints=True)
def verify_latest(
    location: str | LocationProfile = "default",
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    apps: list[str] | None = None,
    policy: VerificationPolicy | None = None,
    mover: MoverOptions | None = None,
) -> dict[str, str]:
    """Verify the newest succeeded restore point of each protected app, one app after the other.

    Args:
        location: The location block holding the restore points.
        encryption_key: The key block that opens the location's repository.
        cluster: The sandbox cluster block (default: the worker's kubeconfig).
        apps: Only these apps (default: every app with a succeeded restore point in the catalog).
        policy: How each app is verified (checks, built-in checks, isolation, timeouts).
        mover: A mover Job fills sandbox volumes this worker cannot reach.
    """
    loc, key, conn = load_blocks(location, encryption_key, cluster)
    if apps is None:
        with open_catalog(loc, key) as catalog:
            apps = protected_apps(catalog)
    with keep_open(loc, key):  # one open repository for every app's verification
        states = {name: verify(location=loc, encryption_key=key, cluster=conn, app=name, policy=policy, mover=mover,
                               return_state=True) for name in apps}
    results = {name: _outcome(state) for name, state in states.items()}
    create_table_artifact([{"app": name, "result": result} for name, result in results.items()],
                          key="verify-latest", description="Newest restore point of each protected app")
    failed = [f"{name}: {result}" for name, result in results.items() if result != "passed"]
    if failed:
        raise VerificationFailed(f"{len(failed)} of {len(results)} app(s) did not pass: " + "; ".join(failed),
                                 dict(results))
    return results


def _outcome(state: State) -> str:
    if state.is_completed():
        return "passed"
    return state.message or state.name or "failed"


__all__ = ["PointToVerify", "VerificationFailed", "verify", "verify_latest"]
