"""`kubekeep policy ...` (check, apps, save) and `kubekeep protect`: protection policies on the command line.

A policy file holds one policy or ``policies: [...]`` (the fields of the ProtectionPolicy block; see
docs/retention.md). ``check`` validates it (one line per mistake), ``apps`` matches it against the
cluster (protected, covered, unprotected), ``save`` stores it as ProtectionPolicy blocks in the Prefect
API the deployments use, and ``protect`` runs the protect flow now with a policy from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .app import Flag, app
from .common import (
    ContextOpt,
    KubeconfigOpt,
    LocationOpt,
    LockMode,
    PasswordFileOpt,
    VerboseOpt,
    cluster_connection,
    encryption_key,
    fail,
    location_profile,
    out,
    session,
)

if TYPE_CHECKING:
    from kubekeep.policy import ProtectionPolicy

policy_app = typer.Typer(help="Protection policies: check a policy file, match it against the cluster, save it "
                              "as blocks.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

PolicyFileArg = Annotated[Path, typer.Argument(help="YAML file: one policy, or policies: [...].")]


def _load(path: Path) -> list[ProtectionPolicy]:
    from kubekeep.policy import PolicyError, load_policies

    try:
        return load_policies(path)
    except PolicyError as exc:
        fail(str(exc))


@policy_app.command("check")
def check_cmd(policy_file: PolicyFileArg) -> None:
    """Validate a policy file; print each policy's schedule, next run and retention."""
    from datetime import UTC, datetime

    for policy in _load(policy_file):
        next_run = policy.schedule.next_runs(datetime.now(UTC))[0]
        typer.echo(f"{policy.name}: ok; cron {policy.schedule.cron} ({policy.timezone}), next run "
                   f"{next_run.isoformat()}; {policy.retention.describe()}; location {policy.location}"
                   + (f"; DR copy to {policy.dr_copy.location}" if policy.dr_copy else ""))


@policy_app.command("apps")
def apps_cmd(policy_file: PolicyFileArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
             verbose: VerboseOpt = False) -> None:
    """Match the cluster's applications against the policies: protected, covered, unprotected."""
    policies = _load(policy_file)
    with session("policy apps", verbose=verbose):
        from kubekeep.backup.scope import discover_applications
        from kubekeep.policy import match_apps, namespace_labels

        with cluster_connection(kubeconfig, context).connect() as cluster:
            protection = match_apps(discover_applications(cluster), policies, namespace_labels(cluster))
    table = Table("application", "source", "namespaces", "state", "policies")
    for status in sorted(protection.apps, key=lambda a: (a.state, a.name)):
        table.add_row(status.name, status.source, ", ".join(status.namespaces), status.state,
                      ", ".join(status.policies) or ", ".join(status.covered_by))
    out.print(table)
    if protection.unprotected:
        typer.echo(f"{len(protection.unprotected)} application(s) no policy protects: "
                   + ", ".join(a.name for a in protection.unprotected))


@policy_app.command("save")
def save_cmd(policy_file: PolicyFileArg,
             overwrite: Annotated[bool, Flag("--overwrite", help="Replace saved policies of the same "
                                                                 "names.")] = False,
             verbose: VerboseOpt = False) -> None:
    """Save the file's policies as ProtectionPolicy blocks in the Prefect API (PREFECT_API_URL); a deployment
    protect/<policy> then runs on the policy's cron and timezone."""
    policies = _load(policy_file)
    if not os.environ.get("PREFECT_API_URL"):
        fail("set PREFECT_API_URL to the Prefect server the deployments use (a temporary server would forget "
             "the policies)")
    with session("policy save", flows=True, verbose=verbose):
        from blocks import ProtectionPolicy
        from blocks.policy import sync_protect_schedule

        for policy in policies:
            try:
                ProtectionPolicy.of(policy).save(policy.name, overwrite=overwrite)
            except ValueError as exc:
                if "already in use" in str(exc):
                    raise ValueError(f"a policy named {policy.name} is already saved (--overwrite replaces "
                                     "it)") from None
                raise
            typer.echo(f"saved policy {policy.name}")
            synced = sync_protect_schedule(policy)
            typer.echo(f"  {synced[0]} runs on {policy.schedule.cron} ({policy.timezone})" if synced else
                       f"  no deployment protect/{policy.name} yet: add one to prefect.yaml (see protect/default) "
                       "and save again to put it on this schedule")


@app.command("protect")
def protect_cmd(
    policy_file: Annotated[Path, typer.Option("--policy-file", "-f", help="YAML file with the policy.")],
    location: LocationOpt,
    name: Annotated[str | None, typer.Option("--policy", help="Which policy of the file (default: its only "
                                                               "one).")] = None,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    lock_mode: Annotated[LockMode | None, typer.Option("--lock-mode", help="Object Lock mode (S3 only).")] = None,
    lock_days: Annotated[int, typer.Option("--lock-days", min=0, help="Object Lock retention in days.")] = 0,
    init: Annotated[bool, Flag("--init", help="Create the repository if the location holds none.")] = False,
    no_retention: Annotated[bool, Flag("--no-retention", help="Back up only; apply no retention.")] = False,
    no_verify: Annotated[bool, Flag("--no-verify", help="Verify no app now, even one the policy's verify "
                                                        "frequency says is due.")] = False,
    yes: Annotated[bool, Flag("--yes", "-y", help="Approve a retention plan over the approval share.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run a policy now: back up every app it selects, then apply its retention (the protect flow)."""
    policies = _load(policy_file)
    chosen = [p for p in policies if name is None or p.name == name]
    if len(chosen) != 1:
        fail(f"{policy_file} holds {', '.join(p.name for p in policies)}: say which with --policy" if name is None
             else f"{policy_file} holds no policy named {name}")
    with session("protect", flows=True, verbose=verbose):
        from blocks import ProtectionPolicy
        from flows.protect import protect

        outcome = protect(policy=ProtectionPolicy.of(chosen[0]), location=location_profile(location, lock_mode,
                                                                                           lock_days),
                          encryption_key=encryption_key(password_file), cluster=cluster_connection(kubeconfig, context),
                          init=init, apply_retention=not no_retention, approve_retention=yes, on_approval="fail",
                          verify=not no_verify)
    for app_name, result in outcome.backups.items():
        typer.echo(f"{app_name}: {result.status} {result.restore_point or result.detail}")
    if outcome.retention is not None and outcome.retention.expiry is not None:
        typer.echo(f"retention: deleted {len(outcome.retention.expiry.deleted)} restore point(s)")
    if outcome.dr_retention is not None and outcome.dr_retention.expiry is not None:
        typer.echo(f"retention at the DR site: deleted {len(outcome.dr_retention.expiry.deleted)} restore point(s)")
    for app_name, verdict in outcome.verifications.items():
        typer.echo(f"{app_name}: verification {verdict}")
    for skipped in outcome.skipped:
        typer.echo(f"not done: {skipped}")
    if outcome.unprotected:
        typer.echo(f"unprotected: {', '.join(outcome.unprotected)}")
