"""The protect flow, run on a ProtectionPolicy's schedule: discover apps -> back up each matching app (a
``backup`` subflow each, at most ``backup_concurrency`` at once) -> DR copy -> retention (at the
location, then at the DR site with the DR copy's own retention).

Discovery runs every time, so an app created after the policy was written is protected from the next
run on, with no edit. The run publishes the protection table (artifact ``protection-<policy>``): every
discovered app with its last restore point, its status and the next run, and the apps no saved policy
protects, listed as unprotected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import ClusterConnection, EncryptionKey, LocationProfile, ProtectionPolicy, keep_open, load_blocks
from blocks.policy import load_policy, saved_policies
from kubekeep.policy import ProtectionPolicy as PolicySpec
from kubekeep.policy import RunOutcome, protection_rows
from tasks.common import run_bounded
from tasks.parameters import CopyAfterBackup
from tasks.protect import (
    AppToProtect,
    apps_due_for_verification,
    discover_apps,
    last_restore_points,
    sync_schedule,
)

from .backup import backup
from .retention import RetentionOutcome, retention
from .verify import VerificationFailed, verify_latest


@dataclass
class ProtectOutcome:
    """What a protect run did: per app, its backup's outcome; the retention run; what was not done."""

    policy: str
    backups: dict[str, RunOutcome] = field(default_factory=dict)
    unprotected: list[str] = field(default_factory=list)
    retention: RetentionOutcome | None = None
    #: retention of the copies at the DR site (a policy with a dr_copy)
    dr_retention: RetentionOutcome | None = None
    #: app -> its verification's result ("passed", or why not), for the apps that were due
    verifications: dict[str, str] = field(default_factory=dict)
    #: steps the policy asks for that this run did not do, with why
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [app for app, outcome in self.backups.items() if outcome.status == "failed"]

    @property
    def not_verified(self) -> list[str]:
        return [app for app, result in self.verifications.items() if result != "passed"]


@task(name="backup-app", persist_result=False)
def backup_app(app: AppToProtect, policy: str, location: LocationProfile, key: EncryptionKey,
               cluster: ClusterConnection, init: bool, copy_to: CopyAfterBackup | None = None
               ) -> tuple[str, RunOutcome]:
    """Back up one app as a ``backup`` subflow (which runs the policy's DR copy after a successful backup);
    its failure is this app's outcome, not the run's end."""
    try:
        point = backup.with_options(flow_run_name=f"backup {app.name} ({policy})")(
            app=app.name, namespaces=list(app.namespaces), label_selector=app.label_selector, location=location,
            encryption_key=key, cluster=cluster, policy=policy, init=init, copy_to=copy_to)
    except Exception as exc:  # noqa: BLE001 - one app's failure is reported in the table; the others go on
        return app.name, RunOutcome("failed", None, "; ".join(str(exc).splitlines())[:500])
    return app.name, RunOutcome("backed up", point)


def _run_name() -> str:
    policy = flow_run.parameters.get("policy")
    return f"protect {getattr(policy, 'name', policy)}"


@flow(name="protect", flow_run_name=_run_name, log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=8))  # type: ignore[arg-type]
def protect(
    policy: str | ProtectionPolicy,
    location: str | LocationProfile | None = None,
    encryption_key: str | EncryptionKey = "default",
    cluster: str | ClusterConnection | None = None,
    init: bool = False,
    apply_retention: bool = True,
    approve_retention: bool = False,
    on_approval: Literal["pause", "fail"] = "pause",
    verify: bool = True,
) -> ProtectOutcome:
    """Protect every app a policy selects: discover, back up each, DR copy, retention.

    Args:
        policy: The ProtectionPolicy block (name, or instance from Python).
        location: The location block to back up to (default: the block the policy names).
        encryption_key: The key block that opens the location's repository.
        cluster: The cluster block (default: the worker's kubeconfig).
        init: Create the repository when the location holds none (first run only).
        apply_retention: Apply the policy's retention after the backups.
        approve_retention: A retention plan over the policy's approval share is approved in advance.
        on_approval: A retention plan over the approval share without approval: pause for the form, or fail.
        verify: Verify (the verify-latest flow) each backed-up app whose newest verified point is older than the
            policy's verify frequency.
    """
    logger = get_run_logger()
    spec = load_policy(policy)
    if isinstance(policy, str):  # a saved block (a deployment's run): its deployment follows the block's schedule
        try:
            sync_schedule(spec)
        except Exception as exc:  # noqa: BLE001 - the schedule of later runs; this run's work goes on
            logger.warning("policy %s: could not put its schedule on protect/%s: %s", spec.name, spec.name, exc)
    loc, key, conn = load_blocks(location or spec.location, encryption_key, cluster)
    outcome = ProtectOutcome(spec.name)
    with keep_open(loc, key):
        found = discover_apps(conn, spec, _all_policies(spec))
        logger.info("policy %s selects %d app(s): %s", spec.name, len(found.apps),
                    ", ".join(a.name for a in found.apps) or "none")
        copy_to = None if spec.dr_copy is None else CopyAfterBackup(
            destination=spec.dr_copy.location, mode=spec.dr_copy.mode, init=init)
        results = run_bounded(found.apps, lambda app: backup_app.submit(app, spec.name, loc, key, conn, init, copy_to),
                              spec.backup_concurrency,
                              on_error=lambda app, exc: (app.name, RunOutcome("failed", None, str(exc)[:500])))
        outcome.backups = dict(sorted(results))
        backed_up = [app for app, o in outcome.backups.items() if o.status == "backed up"]
        if verify and backed_up:  # before retention: it always keeps the newest verified point
            outcome.verifications = _verify_due(loc, key, conn, spec, backed_up)
        if apply_retention and backed_up:
            block = ProtectionPolicy.of(spec)
            outcome.retention = retention(location=loc, encryption_key=key, policy=block,
                                          approve=approve_retention, on_approval=on_approval)
            if spec.dr_copy is not None:  # the copies at the second site, with the DR copy's own retention
                outcome.dr_retention = retention(encryption_key=key, policy=block, site="dr",
                                                 approve=approve_retention, on_approval=on_approval)
        last = last_restore_points(loc, key, [a.name for a in found.protection.apps]) if outcome.backups else {}
    outcome.unprotected = [a.name for a in found.protection.unprotected]
    next_run = spec.schedule.next_runs(datetime.now(UTC))[0]
    rows = protection_rows(found.protection, last, outcome.backups,
                           {name: (next_run if name == spec.name else None) for name in found.protection.by_policy},
                           outcome.verifications)
    create_table_artifact(rows, key=f"protection-{spec.name}",
                          description=f"Protection by policy {spec.name}: {len(found.apps)} app(s) backed up, "
                                      f"{len(outcome.unprotected)} unprotected")
    problems = []
    if outcome.failed:
        problems.append(f"the backup of {', '.join(outcome.failed)} failed ({len(outcome.failed)} of "
                        f"{len(found.apps)} apps)")
    if outcome.not_verified:
        problems.append("the verification of " + "; ".join(f"{app} did not pass ({outcome.verifications[app]})"
                                                           for app in outcome.not_verified))
    if problems:
        raise ProtectFailed(f"policy {spec.name}: " + "; ".join(problems))
    return outcome


def _verify_due(loc: LocationProfile, key: EncryptionKey, conn: ClusterConnection, spec: PolicySpec,
                apps: list[str]) -> dict[str, str]:
    """Run ``verify-latest`` for the apps whose newest verified point is older than the policy's frequency;
    app -> "passed" or why not (a failed verification fails that subflow, and this run at its end)."""
    due = apps_due_for_verification(loc, key, apps, spec.verify)
    if not due:
        return {}
    get_run_logger().info("policy %s: verifying %s (verify %s)", spec.name, ", ".join(due), spec.verify.frequency)
    try:
        return verify_latest(location=loc, encryption_key=key, cluster=conn, apps=due)
    except VerificationFailed as exc:
        return {app: str(exc.verdict.get(app, exc)) for app in due}
    except Exception as exc:  # noqa: BLE001 - no verdict at all: each due app says why; backups and retention go on
        return dict.fromkeys(due, "; ".join(str(exc).splitlines())[:300] or type(exc).__name__)


@flow(name="sync-policies", flow_run_name="sync-policies", log_prints=True)
def sync_policies() -> dict[str, str]:
    """Put every saved ProtectionPolicy's cron and timezone on its deployment protect/<policy>, so a policy
    saved or edited in the UI (or from Python) reschedules its deployment; a matching schedule is left as it is.
    Returns policy name -> "rescheduled", "unchanged" or "no deployment"."""
    policies = saved_policies()
    results = {policy.name: sync_schedule(policy) for policy in policies}
    create_table_artifact([{"policy": name, "deployment": f"protect/{name}", "schedule": f"{p.schedule.cron} "
                            f"({p.schedule.timezone})", "result": results[name]}
                           for name, p in ((p.name, p) for p in policies)],
                          key="policy-schedules", description="Schedules of the protect deployments")
    return results


class ProtectFailed(RuntimeError):
    """Raised at the end of a protect run in which some app's backup failed (the table says which and why)."""


def _all_policies(spec: PolicySpec) -> list[PolicySpec]:
    """The policy of this run and every other saved policy (an app one of them selects is not unprotected)."""
    others = [p for p in saved_policies() if p.name != spec.name]
    return [spec, *others]
