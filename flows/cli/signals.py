"""`kubekeep signals list|show|ack` and `kubekeep restore-points ack`: ransomware and anomaly signals of restore
points (docs/signals.md)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

from .app import Flag, app
from .catalog import restore_points_app
from .common import LocationOpt, PasswordFileOpt, VerboseOpt, encryption_key, location_profile, out, session

signals_app = typer.Typer(help="Ransomware and anomaly signals of restore points: scores, suspect points, "
                               "acknowledgements (docs/signals.md).", no_args_is_help=True)
app.add_typer(signals_app, name="signals")


def _who() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@signals_app.command("list")
def list_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application's points.")] = None,
    suspect_only: Annotated[bool, Flag("--suspect", help="Only points that are suspect (not acknowledged).")
                            ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many points (newest first).")
                     ] = 50,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """List scored restore points, newest first: score, threshold, mark and the strongest reason; with --app,
    also the app's last clean point."""
    with session("signals list", verbose=verbose):
        from kubekeep.catalog import acknowledged_points, last_clean_point, list_signals
        from kubekeep.signals import SUSPECT, point_marks

        with encryption_key(password_file).catalog(location_profile(location, must_exist=True)) as catalog:
            rows = list_signals(catalog, app=app_name, volumes=False)
            marks = point_marks(rows, acknowledged_points(catalog, app_name))
            clean = last_clean_point(catalog, app_name) if app_name else None
    shown = [r for r in rows if not suspect_only or marks[r.restore_point_id] == SUSPECT][:limit]
    table = Table("restore point", "app", "finished", "score", "threshold", "mark", "strongest reason")
    for r in shown:
        table.add_row(r.restore_point_id, r.app, r.finished_at.isoformat(timespec="seconds"), f"{r.score:.1f}",
                      f"{r.threshold:g}", marks[r.restore_point_id], r.reasons[0] if r.reasons else "")
    out.print(table)
    if app_name:
        out.print(f"last clean point of {app_name}: {clean or 'none'}")


@signals_app.command("show")
def show_cmd(
    restore_point: Annotated[str, typer.Argument(help="Restore point id.")],
    location: LocationOpt,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Show one point's verdict: every reason, and each volume's measures against the previous point."""
    with session("signals show", verbose=verbose):
        from kubekeep.catalog import acknowledged_points, list_signals
        from kubekeep.signals import point_marks

        with encryption_key(password_file).catalog(location_profile(location, must_exist=True)) as catalog:
            rows = list_signals(catalog, restore_point_ids=[restore_point])
            if not rows:
                raise LookupError(f"restore point {restore_point} has no signals in the catalog of {location} "
                                  "(a mistyped id, or a point that was not scored)")
            app_name = rows[0].app
            marks = point_marks(list_signals(catalog, app=app_name, volumes=False),
                                acknowledged_points(catalog, app_name))
    point = next(r for r in rows if r.subject == "")
    out.print(f"[bold]{point.restore_point_id}[/] ({point.app}): score {point.score:.1f}, threshold "
              f"{point.threshold:g}, {marks.get(point.restore_point_id, '-')}; previous point "
              f"{point.previous_point_id or 'none'}, baseline of {len(point.baseline or ())} point(s)")
    for reason in point.reasons:
        out.print(f"  - {reason}")
    volumes = [r for r in rows if r.subject != ""]
    if volumes:
        table = Table("volume", "files", "added", "changed", "deleted", "high-entropy share", "new unique bytes")
        for v in volumes:
            table.add_row(v.subject, str(v.files or 0), str(v.files_added or 0), str(v.files_changed or 0),
                          str(v.files_deleted or 0),
                          f"{v.high_entropy_share:.0%}" if v.high_entropy_share is not None else "-",
                          str(v.new_unique_bytes or 0))
        out.print(table)
    if point.objects_deleted:
        out.print(f"objects deleted since {point.previous_point_id}: {point.objects_deleted} "
                  + ", ".join(f"{k} {n}" for k, n in sorted((point.deleted_by_kind or {}).items())))


@signals_app.command("ack")
@restore_points_app.command("ack")  # the documented name (issue 13); `signals ack` stays: one implementation
def ack_cmd(
    ctx: typer.Context,
    restore_point: Annotated[str, typer.Argument(help="Id of the suspect restore point.")],
    location: LocationOpt,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the point is not an attack (kept with "
                                                                "the acknowledgement).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who acknowledges (default: the current user).")] = None,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Acknowledge a suspect point as a false positive: it is no longer suspect, joins the app's baseline, and
    the points after it can be the last clean point again."""
    group = ctx.parent.info_name if ctx.parent is not None else "signals"
    with session(f"{group} ack", verbose=verbose):
        from blocks import repository
        from kubekeep.catalog import Catalog, last_clean_point
        from kubekeep.signals import acknowledge
        from tasks.index import publish_restore_points

        loc, key = location_profile(location, must_exist=True), encryption_key(password_file)
        with repository(loc, key) as repo:
            catalog = Catalog(repo.storage, codec=repo.catalog_codec())
            row = acknowledge(repo, catalog, restore_point, by=by or _who(), reason=reason,
                              retention=loc.retention())
            clean = last_clean_point(catalog, row.app)
            publish_restore_points.fn(loc, key, row.app)  # the UI's index shows it now, not at the next run
    typer.echo(f"acknowledged {row.restore_point_id} ({row.app}); last clean point of {row.app}: {clean or 'none'}")
