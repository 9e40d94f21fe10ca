"""`kubekeep forget` and `kubekeep prune`: GFS retention and space reclamation (the retention flows).

``forget`` runs the same flow as the scheduled retention deployments, with the keep rules given on the
command line: it plans (``--dry-run`` stops there), deletes what the plan drops (asking for ``--yes``
when that is more than the approval share of an app's points), optionally prunes, and renews the
Object Lock of kept points when ``--lock-mode`` says the location locks. ``--json`` prints the plan
(every point: keep or drop, with the rule or reason) and what was done.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .app import Flag, app
from .common import LocationOpt, LockMode, PasswordFileOpt, VerboseOpt, encryption_key, location_profile, out, session

if TYPE_CHECKING:
    from flows.retention import RetentionOutcome


def _count(option: str) -> Any:
    return typer.Option(option, min=-1, help=f"{option}: keep the newest point of each of the N most recent "
                                             "periods that have points (-1: all).")


@app.command("forget")
def forget_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application's restore points.")] = None,
    keep_last: Annotated[int, typer.Option("--keep-last", min=-1, help="Keep the N newest points (-1: all).")] = 0,
    keep_hourly: Annotated[int, _count("--keep-hourly")] = 0,
    keep_daily: Annotated[int, _count("--keep-daily")] = 0,
    keep_weekly: Annotated[int, _count("--keep-weekly")] = 0,
    keep_monthly: Annotated[int, _count("--keep-monthly")] = 0,
    keep_yearly: Annotated[int, _count("--keep-yearly")] = 0,
    keep_within: Annotated[str | None, typer.Option(
        "--keep-within", help="Keep every point newer than the latest point minus this (30d, 2w, 1y6m, 36h).")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA timezone the hours, days, weeks, months and "
                                                              "years are counted in.")] = "UTC",
    dry_run: Annotated[bool, Flag("--dry-run", help="Only show the plan; delete nothing.")] = False,
    yes: Annotated[bool, Flag("--yes", "-y", help="Approve a plan that deletes more than the approval share "
                                                  "of an app's points.")] = False,
    approval_share: Annotated[float, typer.Option("--approval-share", min=0.0, max=1.0,
                                                  help="Share of an app's points a run may delete without "
                                                       "--yes.")] = 0.5,
    prune: Annotated[bool, Flag("--prune", help="Then reclaim the space no remaining point needs.")] = False,
    lock_mode: Annotated[LockMode | None, typer.Option(
        "--lock-mode", help="The location's Object Lock mode: renew the locks of kept points in this mode.")] = None,
    lock_days: Annotated[int, typer.Option("--lock-days", min=0, help="Object Lock period in days.")] = 0,
    as_json: Annotated[bool, Flag("--json", help="Print the plan and the result as JSON.")] = False,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Apply keep rules (GFS) to the location's restore points: plan, then delete what they drop."""
    from pydantic import ValidationError

    from kubekeep.policy import describe_errors
    from kubekeep.retention import RetentionError, RetentionRules, zone

    try:
        rules = RetentionRules(keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
                               keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
                               keep_within=keep_within)
        zone(timezone)
    except ValidationError as exc:
        raise typer.BadParameter(describe_errors(exc), param_hint="--keep-*") from None
    except RetentionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timezone") from None
    if rules.is_empty():
        raise typer.BadParameter("give at least one keep rule (--keep-last, --keep-daily, ..., --keep-within): "
                                 "without one every point would be dropped", param_hint="--keep-*")
    with session("forget", flows=True, verbose=verbose):
        from flows.retention import retention

        loc = location_profile(location, lock_mode, lock_days, must_exist=True)
        outcome = retention(location=loc, encryption_key=encryption_key(password_file), rules=rules, app=app_name,
                            timezone=timezone, approval_share=approval_share, dry_run=dry_run, approve=yes,
                            on_approval="fail", prune=prune, renew_locks=lock_mode is not None)
    if as_json:
        typer.echo(json.dumps(outcome_dict(outcome), indent=1))
    else:
        _print_outcome(outcome)


@app.command("prune")
def prune_cmd(
    location: LocationOpt,
    repack_threshold: Annotated[float, typer.Option("--repack-threshold", min=0.0, max=1.0,
                                                    help="Repack packs of which less than this share is "
                                                         "still needed.")] = 0.5,
    as_json: Annotated[bool, Flag("--json", help="Print the result as JSON.")] = False,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Reclaim the space of packs no restore point needs (locked packs stay, sparse packs are repacked)."""
    with session("prune", flows=True, verbose=verbose):
        from flows.retention import prune_flow

        summary = prune_flow(location=location_profile(location, must_exist=True),
                             encryption_key=encryption_key(password_file), repack_threshold=repack_threshold)
    if as_json:
        typer.echo(json.dumps(summary.__dict__, indent=1))
    else:
        typer.echo(f"prune: {summary.packs_deleted} pack(s) deleted, {summary.packs_repacked} repacked, "
                   f"{summary.bytes_freed} bytes freed, {summary.locked_kept} locked object(s) kept")
        for message in summary.messages:
            typer.echo(f"  {message}")


def outcome_dict(outcome: RetentionOutcome) -> dict[str, Any]:
    """The plan (every point with keep/drop and its reasons) and what the run did, as JSON-ready data."""
    doc: dict[str, Any] = {"plan": outcome.plan.to_dict(), "approval": outcome.approval}
    if outcome.expiry is not None:
        e = outcome.expiry
        doc["expired"] = {"deleted": e.deleted, "snapshots_deleted": e.snapshots_deleted,
                          "held": [{"id": h.id, "app": h.app, "detail": h.detail,
                                    "retain_until": h.retain_until.isoformat() if h.retain_until else None}
                                   for h in e.held],
                          "finished": e.finished, "leftovers": e.leftovers, "messages": e.messages}
    if outcome.prune is not None:
        doc["prune"] = outcome.prune.__dict__
    if outcome.renew is not None:
        r = outcome.renew
        doc["renewed"] = {"points": r.renewed, "retain_until": r.retain_until.isoformat() if r.retain_until else None,
                          "objects": r.objects, "errors": r.errors, "messages": r.messages}
    if outcome.catalog is not None:
        doc["catalog_compaction"] = dict(outcome.catalog.__dict__)
    return doc


def _print_outcome(outcome: RetentionOutcome) -> None:
    table = Table("restore point", "app", "time", "status", "action", "why", "locked until")
    for row in outcome.plan.rows():
        table.add_row(row["restore point"], row["app"], row["time"], row["status"], row["action"], row["why"],
                      row["locked until"])
    out.print(table)
    summary = outcome.plan.summary()
    typer.echo(f"plan: {summary['keep']} kept, {summary['drop']} dropped, {summary['held_by_lock']} held by "
               f"Object Lock ({outcome.approval})")
    if outcome.expiry is not None:
        e = outcome.expiry
        typer.echo(f"deleted {len(e.deleted)} restore point(s) ({e.snapshots_deleted} snapshot(s))")
        for held in e.held:
            typer.echo(f"  kept {held.id}: expires when its lock ends ({held.detail})")
        for message in e.messages:
            typer.echo(f"  {message}")
    if outcome.prune is not None:
        p = outcome.prune
        typer.echo(f"prune: {p.packs_deleted} pack(s) deleted, {p.packs_repacked} repacked, "
                   f"{p.bytes_freed} bytes freed")
    if outcome.renew is not None and outcome.renew.renewed:
        typer.echo(f"renewed the locks of {len(outcome.renew.renewed)} point(s) until {outcome.renew.retain_until}")
    if outcome.catalog is not None and outcome.catalog.tables:
        c = outcome.catalog
        typer.echo(f"catalog: merged {c.files_merged} file(s) of {len(c.tables)} table(s) into {c.parts_written} "
                   f"part(s)" + (f", {c.files_kept} kept under retention" if c.files_kept else ""))
