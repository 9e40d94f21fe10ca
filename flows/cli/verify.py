"""`kubekeep verify` (run the verify flow) and `kubekeep verifications` (pass rate and p95 RTO per app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .app import app
from .common import (
    ContextOpt,
    KubeconfigOpt,
    LocationOpt,
    MoverImageOpt,
    MoverLocationOpt,
    MoverSaOpt,
    MoverSecretOpt,
    PasswordFileOpt,
    VerboseOpt,
    cluster_connection,
    encryption_key,
    location_profile,
    mover_options,
    out,
    pairs,
    progress,
    session,
)


def load_policy(path: Path | None, max_replicas: int | None, ready_timeout: float | None) -> Any:
    """``--policy FILE.yaml`` plus the options that override it, validated before anything runs."""
    from kubekeep.verify import VerificationPolicy, VerificationSpecError

    try:
        text = path.read_text() if path is not None else ""
    except OSError as exc:
        raise typer.BadParameter(f"{path}: {exc.strerror or exc}", param_hint="--policy") from None
    try:
        policy = VerificationPolicy.from_yaml(text, where=str(path or "verification policy"))
        update: dict[str, Any] = {}
        if max_replicas is not None:
            update["isolation"] = {**policy.isolation.model_dump(), "max_replicas": max_replicas}
        if ready_timeout is not None:
            update["ready_timeout_seconds"] = ready_timeout
        return VerificationPolicy.from_data({**policy.model_dump(), **update}) if update else policy
    except VerificationSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy") from None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_verdict(verdict: dict[str, Any]) -> None:
    """The checks and stages of one verdict (a flow result or a catalog row, as plain data)."""
    checks = Table("check", "type", "result", "seconds", "attempts", "reason")
    for c in verdict.get("checks") or ():
        checks.add_row(str(c["name"]), str(c["type"]), "passed" if c["passed"] else "[red]FAILED[/]",
                       f"{float(c.get('duration_seconds') or 0):.2f}", str(c.get("attempts", "")), str(c["reason"]))
    out.print(checks)
    stages = Table("stage", "seconds")
    for s in verdict.get("stages") or ():
        stages.add_row(str(s["name"]), f"{float(s['seconds']):.2f}")
    out.print(stages)
    out.print(f"verification {verdict['id']} of {verdict['restore_point_id']} ({verdict['app']}): "
              f"[bold]{verdict['result']}[/]; RTO {_seconds(verdict.get('rto_seconds'))} s, RPO of the point "
              f"{_seconds(verdict.get('rpo_seconds'))} s; sandbox {', '.join(verdict.get('sandbox_namespaces') or [])}"
              f" on {verdict.get('sandbox_cluster')}; teardown {verdict.get('teardown') or 'not run'}")
    if verdict.get("reason"):
        out.print(f"reason: {verdict['reason']}")


@app.command("verify")
def verify_cmd(
    location: LocationOpt,
    restore_point: Annotated[str | None, typer.Option("--restore-point", "-p", help="Restore point id.")] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Verify this app's latest restore point.")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="YAML verification policy: checks (exec, http), builtin, isolation, ready_timeout_seconds, "
                         "sandbox_lifetime_seconds, annotation_checks (docs/verification.md).")] = None,
    max_replicas: Annotated[int | None, typer.Option("--max-replicas", min=1,
                                                     help="Cap the replicas of every sandbox workload.")] = None,
    ready_timeout: Annotated[float | None, typer.Option("--ready-timeout", min=1,
                                                        help="Seconds each readiness tier may take.")] = None,
    storage_class_map: Annotated[list[str] | None, typer.Option(
        "--storage-class-map", help="source=sandbox StorageClass (repeatable; a separate sandbox cluster).")] = None,
    image_rewrite: Annotated[list[str] | None, typer.Option(
        "--image-rewrite", help="prefix=new-prefix (repeatable).")] = None,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    mover_image: MoverImageOpt = None,
    mover_location: MoverLocationOpt = None,
    mover_env_from_secret: MoverSecretOpt = None,
    mover_service_account: MoverSaOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Restore a point into an isolated sandbox on the cluster, check it, time it, record the verdict, tear
    the sandbox down. Exit code 1 when the point does not pass."""
    if bool(restore_point) == bool(app_name):
        raise typer.BadParameter("give --restore-point ID or --app NAME (one of them)", param_hint="--restore-point")
    policy = load_policy(policy_file, max_replicas, ready_timeout)
    mover = mover_options(mover_image, mover_location, mover_env_from_secret, mover_service_account)
    from tasks.restore_parameters import ImageRewriteRule, StorageClassMapping

    classes = [StorageClassMapping(source=k, target=v)
               for k, v in (pairs(storage_class_map, "--storage-class-map") or {}).items()]
    images = [ImageRewriteRule(source=k, target=v) for k, v in (pairs(image_rewrite, "--image-rewrite") or {}).items()]
    failed: dict[str, Any] = {}
    with session("verify", flows=True, verbose=verbose):
        from flows.verify import VerificationFailed, verify

        loc, key = location_profile(location, must_exist=True), encryption_key(password_file)
        conn = cluster_connection(kubeconfig, context)
        try:
            with progress("verifying"):
                verdict = verify(location=loc, encryption_key=key, cluster=conn, restore_point=restore_point,
                                 app=app_name, policy=policy, mover=mover, storage_class_map=classes,
                                 image_rewrite=images)
        except VerificationFailed as exc:
            if not exc.verdict:
                raise
            failed = exc.verdict
    print_verdict(failed or verdict)
    if failed:
        raise typer.Exit(1)


@app.command("verifications")
def verifications_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application.")] = None,
    verification_id: Annotated[str | None, typer.Option("--id", help="Show this verification's checks and stages.")
                               ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many recent verifications.")] = 20,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Pass rate and p95 RTO per app, then the recent verifications (or one verification in full)."""
    with session("verifications", verbose=verbose):
        from kubekeep.catalog import get_verification, list_verifications, verification_stats

        with encryption_key(password_file).catalog(location_profile(location, must_exist=True)) as catalog:
            if verification_id is not None:
                record = get_verification(catalog, verification_id)
                if record is None:
                    raise LookupError(f"verification {verification_id} not found in the catalog of {location}")
            else:
                stats = verification_stats(catalog, app_name)
                rows = list_verifications(catalog, app=app_name, limit=limit)
    if verification_id is not None:
        from kubekeep.verify import Verdict

        assert record is not None
        print_verdict(Verdict.from_record(record).model_dump(mode="json"))
        return
    table = Table("app", "runs", "passed", "failed", "errors", "pass rate", "p95 RTO (s)", "last", "last point")
    for s in stats:
        table.add_row(s.app, str(s.runs), str(s.passed), str(s.failed), str(s.errors),
                      "-" if s.pass_rate is None else f"{s.pass_rate:.0%}", _seconds(s.p95_rto_seconds),
                      f"{s.last_result} {s.last_finished_at.isoformat(timespec='seconds')}", s.last_restore_point_id)
    out.print(table)
    recent = Table("id", "restore point", "app", "finished", "result", "RTO (s)", "reason")
    for r in rows:
        recent.add_row(r.id, r.restore_point_id, r.app, r.finished_at.isoformat(timespec="seconds"), r.result,
                       _seconds(r.rto_seconds), r.reason or "")
    out.print(recent)
