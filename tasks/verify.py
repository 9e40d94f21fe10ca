"""Verification tasks: thin wrappers over kubekeep.verify, and the sandbox bracket.

The verify flow restores with the restore tasks (``load_plan``, ``apply_plan``, ``record_restore``); what
is its own lives here: :func:`choose_point` (the point, its RPO and the checks its annotations declare),
the :func:`sandboxed` bracket (abandoned sandboxes removed, the isolated sandbox created, a heartbeat while
it runs, teardown always), the checks, and :func:`record_verification` (repository, then catalog).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile, repository
from kubekeep.catalog import Catalog, restore_points_before
from kubekeep.restore import PlanOptions, TransformChain
from kubekeep.restore.policy import ConflictPolicy, RestorePolicy
from kubekeep.restore.report import RestoreReport
from kubekeep.restore.source import load_manifests
from kubekeep.restorepoint import choose_restore_point
from kubekeep.verify import (
    BuiltinChecks,
    CheckResult,
    ExecCheck,
    Heartbeat,
    HttpCheck,
    Owner,
    Sandbox,
    Stage,
    StageName,
    TeardownResult,
    Verdict,
    VerificationPolicy,
    checks_from_annotations,
    checks_stage,
    cleanup_abandoned,
    create_sandbox,
    declarations_check,
    isolation_chain,
    new_verification_id,
    restore_stages,
    run_builtin_checks,
    run_user_check,
    teardown,
)
from kubekeep.verify import record_verification as record_verdict

from .common import DATA_TASK
from .restore import PlanRef, discard_spool

#: steps that act on the sandbox cluster once (a retry could act twice on a half-done step)
ONCE: dict[str, Any] = {**DATA_TASK, "retries": 0}


@dataclass(frozen=True)
class PointToVerify:
    """The chosen restore point, what its RPO needs, and the checks its annotations declare."""

    restore_point_id: str
    app: str
    namespaces: list[str]
    finished_at: datetime | None
    #: when the app's previous succeeded point finished (the RPO of this one)
    previous_finished_at: datetime | None
    #: (source namespace, claim) of every volume whose data the point holds
    volumes_with_data: list[tuple[str, str]]
    annotation_checks: list[ExecCheck | HttpCheck] = field(default_factory=list)
    annotation_errors: list[str] = field(default_factory=list)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@task(name="choose-point", **DATA_TASK)
def choose_point(location: LocationProfile, key: EncryptionKey, *, restore_point: str | None = None,
                 app: str | None = None, annotation_checks: bool = True) -> PointToVerify:
    """The point (by id, or the latest succeeded one of ``app``), the previous point's time, and the checks
    annotated on its objects (read from the restore point, streamed)."""
    with repository(location, key) as repo:
        catalog = Catalog(repo.storage, codec=repo.catalog_codec())
        _, record = choose_restore_point(repo, restore_point=restore_point, app=app, catalog=catalog)
        finished = _time(record.finished_at)
        previous = restore_points_before(catalog, finished, app=record.app, limit=1) if finished else []
        checks: list[ExecCheck | HttpCheck] = []
        errors: list[str] = []
        if annotation_checks:
            checks, errors = checks_from_annotations(load_manifests(repo, record))
    return PointToVerify(restore_point_id=record.id, app=record.app, namespaces=sorted(record.namespaces),
                         finished_at=finished, previous_finished_at=previous[0].finished_at if previous else None,
                         volumes_with_data=[(v.namespace, v.pvc) for v in record.volumes if v.snapshot_id],
                         annotation_checks=checks, annotation_errors=errors)


# ------------------------------------------------------------------ sandbox


@task(name="clean-abandoned-sandboxes", **ONCE)
def clean_abandoned_sandboxes(cluster: ClusterConnection, keep: Sequence[str] = ()) -> list[str]:
    """Tear down the sandboxes earlier runs left behind (their owner is gone); one line per sandbox."""
    logger = get_run_logger()
    with cluster.connect() as c:
        removed = cleanup_abandoned(c, keep=keep)
    for result in removed:
        logger.warning("removed abandoned sandbox %s (%s): %s; teardown %s", result.run_id,
                       ", ".join(result.namespaces), result.why, result.describe())
    return [f"{r.run_id}: {r.why}; teardown {r.describe()}" for r in removed]


@task(name="create-sandbox", **DATA_TASK)
def create_sandbox_task(cluster: ClusterConnection, sandbox: Sandbox, allow_dns: bool = True) -> list[str]:
    """The sandbox namespaces, their isolation NetworkPolicy and the heartbeat Lease (safe to retry)."""
    with cluster.connect() as c:
        create_sandbox(c, sandbox, allow_dns=allow_dns)
    return sorted(sandbox.namespaces.values())


@task(name="teardown-sandbox", **DATA_TASK)
def teardown_sandbox(cluster: ClusterConnection, run_id: str) -> TeardownResult:
    """Delete everything of the sandbox and wait until it is gone (idempotent; ``left`` says what stayed)."""
    with cluster.connect() as c:
        return teardown(c, run_id)


@dataclass
class SandboxRun:
    """One verification's sandbox and what was measured in it (filled by the flow, read by the verdict)."""

    sandbox: Sandbox
    policy: VerificationPolicy
    cluster_name: str
    started_at: datetime
    stages: list[Stage] = field(default_factory=list)
    report: RestoreReport | None = None
    checks: list[CheckResult] = field(default_factory=list)
    #: why the verification could not judge the point (an error of the sandbox cluster or the restore)
    error: str | None = None
    teardown: TeardownResult | None = None
    spools: list[PlanRef] = field(default_factory=list)

    @property
    def namespace_map(self) -> dict[str, str]:
        return dict(self.sandbox.namespaces)

    def plan_options(self, transforms: TransformChain | None = None) -> PlanOptions:
        """How the sandbox restore plans: the run's transforms, then the map into the sandbox and isolation."""
        return PlanOptions(transforms=isolation_chain(self.sandbox.namespaces, self.sandbox.run_id,
                                                      self.policy.isolation, transforms))

    def restore_policy(self) -> RestorePolicy:
        """Existing objects are never changed (a cluster-scoped one is left as it is)."""
        return RestorePolicy(existing=ConflictPolicy.SKIP, ready_timeout=self.policy.ready_timeout_seconds)

    @contextmanager
    def stage(self, name: StageName) -> Iterator[None]:
        started = datetime.now(UTC)
        try:
            yield
        finally:
            self.stages.append(Stage.between(name, started, datetime.now(UTC)))

    def planned(self, plan: PlanRef) -> PlanRef:
        """Keep the plan's spool to delete when the sandbox goes."""
        self.spools.append(plan)
        return plan

    def restored(self, report: RestoreReport) -> RestoreReport:
        self.report = report
        return report

    def verdict(self, point: PointToVerify, *, verification_id: str | None = None) -> Verdict:
        stages = [*self.stages]
        if self.report is not None:
            stages += restore_stages(self.report.phases)
        measured = checks_stage(self.checks)
        if measured is not None:
            stages.append(measured)
        if self.teardown is not None:
            ended = datetime.now(UTC)
            stages.append(Stage.between(StageName.TEARDOWN, ended - timedelta(seconds=self.teardown.seconds), ended))
        order = list(StageName)
        stages.sort(key=lambda s: order.index(s.name))
        return Verdict.assemble(
            id=verification_id or new_verification_id(), restore_point_id=point.restore_point_id, app=point.app,
            started_at=self.started_at, finished_at=datetime.now(UTC), checks=self.checks, stages=stages,
            sandbox_cluster=self.cluster_name, sandbox_namespaces=sorted(self.sandbox.namespaces.values()),
            teardown=self.teardown.describe() if self.teardown else None, point_finished_at=point.finished_at,
            previous_finished_at=point.previous_finished_at, error=self.error)


@contextmanager
def sandboxed(cluster: ClusterConnection, point: PointToVerify, policy: VerificationPolicy, *,
              run_id: str | None = None, flow_run: str = "") -> Iterator[SandboxRun]:
    """The sandbox bracket: remove abandoned sandboxes, create this run's (isolated before anything is
    restored), renew its heartbeat while the body runs, and tear it down on every way out.

    An error in the body (the sandbox cluster or the restore failed) does not propagate: it is kept as
    ``error`` and makes the verdict ``error``. A cancellation (a BaseException) still tears down and
    propagates; a run killed outright leaves a sandbox the next run's cleanup removes."""
    started = datetime.now(UTC)
    sandbox = Sandbox.plan(point.namespaces, point.restore_point_id, run_id=run_id,
                           lifetime=timedelta(seconds=policy.sandbox_lifetime_seconds),
                           owner=Owner.current(flow_run))
    clean_abandoned_sandboxes(cluster, keep=[sandbox.run_id])
    box = SandboxRun(sandbox=sandbox, policy=policy, cluster_name=cluster.cluster_name(), started_at=started)
    try:
        create_sandbox_task(cluster, sandbox, allow_dns=policy.isolation.allow_dns)
        box.stages.append(Stage.between(StageName.SANDBOX, started, datetime.now(UTC)))
        with cluster.connect() as c, Heartbeat(c, sandbox):
            yield box
    except Exception as exc:  # noqa: BLE001 - kept as the verdict's error, never dropped
        get_run_logger().error("verification could not judge %s: %s: %s", point.restore_point_id,
                               type(exc).__name__, exc)
        box.error = f"{type(exc).__name__}: {exc}"
    finally:
        for plan in box.spools:
            discard_spool(plan)
        box.teardown = teardown_sandbox(cluster, sandbox.run_id)


# ------------------------------------------------------------------- checks


@task(name="builtin-checks", **ONCE)
def builtin_checks(cluster: ClusterConnection, report: RestoreReport, namespace_map: dict[str, str],
                   point: PointToVerify, builtin: BuiltinChecks) -> list[CheckResult]:
    """The restore check and the built-in checks (objects present by kind, workloads Ready, volume data), and
    one failed check naming every check annotation that is not a valid check."""
    with cluster.connect() as c:
        results = run_builtin_checks(c, report, namespace_map, point.volumes_with_data, builtin)
    declarations = declarations_check(point.annotation_errors)
    return results + ([declarations] if declarations else [])


@task(name="user-check", task_run_name="check-{check.name}", **ONCE)
def user_check(cluster: ClusterConnection, check: ExecCheck | HttpCheck, namespace_map: dict[str, str]
               ) -> CheckResult:
    """One exec or http check in the sandbox, repeated until it passes or its timeout ends."""
    with cluster.connect() as c:
        return run_user_check(c, check, namespace_map)


# ------------------------------------------------------------------- record


@task(name="record-verification", **DATA_TASK)
def record_verification(location: LocationProfile, key: EncryptionKey, verdict: Verdict) -> str:
    """Keep the verdict: a snapshot in the repository, then the catalog's ``verifications`` row."""
    with repository(location, key) as repo:
        return record_verdict(repo, verdict, retention=location.retention())
