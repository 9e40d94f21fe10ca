"""`kubekeep restore-points`, `restores`, `catalog-rebuild`: the location's catalog on the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import Flag, app
from .common import LocationOpt, PasswordFileOpt, VerboseOpt, encryption_key, location_profile, out, session
from .restore import write_report

restore_points_app = typer.Typer(help="List restore points from the location's catalog (newest first); "
                                      "`restore-points ack ID` acknowledges a suspect point (docs/signals.md).")
app.add_typer(restore_points_app, name="restore-points")
#: the group's own --location is optional: `restore-points ack ID -l LOC` gives it to the subcommand
_GroupLocationOpt = Annotated[str | None, LocationOpt.__metadata__[0]]


@restore_points_app.callback(invoke_without_command=True)
def restore_points_cmd(
    ctx: typer.Context,
    location: _GroupLocationOpt = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application's points.")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="Only points finished before this time.")] = None,
    all_statuses: Annotated[bool, Flag("--all", help="Include failed and partial points.")] = False,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """List restore points from the location's catalog (newest first): status, size, lock, signals score and
    mark, verification. Subcommand: ack ID (a suspect point is a false positive)."""
    if ctx.invoked_subcommand is not None:
        return
    if location is None:
        raise typer.BadParameter("a location is needed: -l LOCATION (or KUBEKEEP_LOCATION)",
                                 param_hint="'--location' / '-l'")
    with session("restore-points", verbose=verbose):
        from kubekeep.catalog import acknowledged_points, list_restore_points, list_signals, verified_points
        from kubekeep.signals import point_marks

        statuses = None if all_statuses else ("succeeded",)
        when = before.replace(tzinfo=before.tzinfo or UTC) if before else None
        with encryption_key(password_file).catalog(location_profile(location, must_exist=True)) as catalog:
            points = list_restore_points(catalog, app=app_name, statuses=statuses, finished_before=when,
                                         newest_first=True)
            verdicts = list_signals(catalog, app=app_name, volumes=False)
            marks = point_marks(verdicts, acknowledged_points(catalog, app_name))
            verified = verified_points(catalog, app_name)
    scores = {v.restore_point_id: v.score for v in verdicts}
    table = Table("id", "app", "finished", "status", "objects", "volumes", "stored bytes", "retain until", "score",
                  "signals", "verified")
    for p in points:
        mark = marks.get(p.id, "-")
        table.add_row(p.id, p.app, p.finished_at.isoformat(timespec="seconds"), p.status, str(p.object_count),
                      str(p.volume_count), str(p.stored_bytes),
                      p.retain_until.isoformat(timespec="seconds") if p.retain_until else "-",
                      f"{scores[p.id]:.1f}" if p.id in scores else "-", mark.upper() if mark == "suspect" else mark,
                      {True: "passed", False: "FAILED"}.get(verified.get(p.id), "-"))  # type: ignore[arg-type]
    out.print(table)


@app.command("restores")
def restores_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app", help="Only restores of this application's points.")
                        ] = None,
    restore_id: Annotated[str | None, typer.Option("--id", help="Show this restore's report, object by object.")
                          ] = None,
    report_file: Annotated[Path | None, typer.Option(
        "--report", help="With --id: also write the report to this file (.json or .md).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many restores.")] = 50,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """List the restores (and dry runs) recorded in the location's catalog, or show one restore's report."""
    if report_file is not None and (restore_id is None or report_file.suffix.lower() not in (".json", ".md")):
        raise typer.BadParameter("--report FILE (.json or .md) goes with --id", param_hint="--report")
    with session("restores", verbose=verbose):
        from kubekeep.catalog import get_restore, list_restores
        from kubekeep.restore.report import report_from_record

        with encryption_key(password_file).catalog(location_profile(location, must_exist=True)) as catalog:
            if restore_id is None:
                rows = list_restores(catalog, app=app_name, limit=limit)
            else:
                record = get_restore(catalog, restore_id)
        if restore_id is not None and record is None:
            raise LookupError(f"restore {restore_id} not found in the catalog of {location}")
    if restore_id is None:
        table = Table("id", "restore point", "finished", "status", "dry run", "created", "updated", "skipped",
                      "failed", "cluster", "namespaces")
        for r in rows:
            table.add_row(r.id, r.restore_point_id, r.finished_at.isoformat(timespec="seconds"), r.status,
                          "yes" if r.dry_run else "", str(r.created), str(r.updated), str(r.skipped), str(r.failed),
                          r.target_cluster, ", ".join(r.target_namespaces))
        out.print(table)
        return
    assert record is not None
    report = report_from_record(record)
    data = {**report.to_dict(), "restore_id": record.id, "restore_point_id": record.restore_point_id}
    if report_file is not None:
        write_report(data, report_file)
    out.print(f"[bold]restore {record.id}[/] of {record.restore_point_id} on {record.target_cluster}: "
              f"{record.status}" + (" (dry run)" if record.dry_run else ""))
    if record.aborted:
        out.print(f"stopped: {record.aborted}")
    if record.outcomes is None:
        out.print("(recorded before per-object outcomes were kept: counts only)")
        return
    if report.volumes:
        volumes = Table("claim", "data", "files", "bytes", "error")
        for v in report.volumes:
            volumes.add_row(v.pvc, v.status.value, str(v.files), str(v.bytes), v.error)
        out.print(volumes)
    objects = Table("kind", "namespace", "name", "action", "reason", "phase")
    for o in report.outcomes:
        objects.add_row(o.ref.group_kind, o.namespace, o.name, o.action.value, o.reason, o.phase)
    out.print(objects)


@app.command("catalog-rebuild")
def catalog_rebuild_cmd(location: LocationOpt, password_file: PasswordFileOpt = None,
                        verbose: VerboseOpt = False) -> None:
    """Rebuild the location's catalog from its repository (restore points, restore reports, verifications,
    signals and their acknowledgements; adds what is missing)."""
    with session("catalog-rebuild", verbose=verbose):
        from blocks import repository
        from kubekeep.catalog import Catalog
        from kubekeep.restore.record import rebuild_restores
        from kubekeep.restorepoint import rebuild_repository_catalog
        from kubekeep.signals import rebuild_signals
        from kubekeep.verify import rebuild_verifications

        with repository(location_profile(location, must_exist=True), encryption_key(password_file)) as repo:
            result = rebuild_repository_catalog(repo)
            restores_written, restores_present = rebuild_restores(repo)
            signals = rebuild_signals(repo, Catalog(repo.storage, codec=repo.catalog_codec()))
            verifications_written, verifications_present = rebuild_verifications(repo)
    typer.echo(f"restore points written: {result.points_written}, already present: {result.points_skipped}; "
               f"restores written: {restores_written}, already present: {restores_present}; "
               f"verifications written: {verifications_written}, already present: {verifications_present}; "
               f"signals written: {signals.points_written}, acknowledgements written: {signals.acks_written}")
    for problem in signals.problems:
        typer.echo(f"signals: {problem}", err=True)
