"""Entry point of the `kubekeep` console script: the core CLI plus the commands that run flows."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kubekeep.cli import app

console = Console(stderr=True)

LocationOpt = Annotated[str, typer.Option("--location", "-l", envvar="KUBEKEEP_LOCATION",
                                          help="A directory (local or NFS) or s3://bucket/prefix/. For S3, "
                                               "endpoint and keys come from KUBEKEEP_S3_ENDPOINT, AWS_REGION, "
                                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file",
                                                      help="Passphrase file (else KUBEKEEP_PASSWORD or a prompt).")]
KubeconfigOpt = Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]


def _location(location: str, lock_mode: str | None = None, lock_days: int = 0) -> Any:
    from blocks import LocationProfile

    try:
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            return LocationProfile.model_validate({
                "kind": "s3", "bucket": bucket, "prefix": (prefix.rstrip("/") + "/") if prefix else "",
                "endpoint_url": os.environ.get("KUBEKEEP_S3_ENDPOINT"), "region": os.environ.get("AWS_REGION"),
                "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
                "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
                "object_lock_mode": lock_mode, "object_lock_days": lock_days})
        return LocationProfile.model_validate({
            "kind": "filesystem", "path": str(Path(location.removeprefix("file://")).expanduser()),
            "object_lock_mode": lock_mode, "object_lock_days": lock_days})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc), param_hint="--location/--lock-mode") from exc


def _key(password_file: Path | None) -> Any:
    from blocks import EncryptionKey
    from kubekeep.repo.cli import read_password

    return EncryptionKey.model_validate({"passphrase": read_password(password_file),
                                         "cheap_kdf": os.environ.get("KUBEKEEP_TEST_CHEAP_KDF") == "1"})


def _cluster(kubeconfig: str | None, context: str | None, name: str | None = None) -> Any:
    from blocks import ClusterConnection

    return ClusterConnection(name=name or context or "default", kubeconfig_path=kubeconfig, context=context)


class _TaskProgress(logging.Handler):
    """Advance a progress bar as the flow's task runs finish (Prefect logs each one)."""

    def __init__(self, progress: Progress, task_id: Any) -> None:
        super().__init__()
        self.progress, self.task_id = progress, task_id

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Finished in state" in message:
            name = getattr(record, "task_run_name", None) or message.split(" - ")[0]
            self.progress.advance(self.task_id)
            self.progress.update(self.task_id, description=f"done: {name}")


@app.command("demo")
def demo(keep: bool = typer.Option(False, help="Keep the control plane running after the demo (Ctrl-C ends).")
         ) -> None:
    """Start the local test bed, create a sample app and run the main job against it."""
    from flows.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


@app.command("backup")
def backup_cmd(
    app_name: Annotated[str, typer.Option("--app", help="Application name (restore points are grouped by it).")],
    namespaces: Annotated[list[str], typer.Option("--namespace", "-n", help="Namespace or pattern (repeatable).")],
    location: LocationOpt,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    cluster_name: Annotated[str | None, typer.Option("--cluster-name", help="Cluster name in the catalog.")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-L", help="Label selector.")] = None,
    include_kind: Annotated[list[str] | None, typer.Option("--include-kind")] = None,
    exclude_kind: Annotated[list[str] | None, typer.Option("--exclude-kind")] = None,
    lock_mode: Annotated[str | None, typer.Option("--lock-mode", help="COMPLIANCE or GOVERNANCE (S3 only).")] = None,
    lock_days: Annotated[int, typer.Option("--lock-days")] = 0,
    volume_concurrency: Annotated[int, typer.Option("--volume-concurrency", min=1)] = 2,
    init: Annotated[bool, typer.Option("--init", help="Create the repository if the location holds none "
                                                      "(first backup only).")] = False,
) -> None:
    """Back up an application now (the same flow the deployments run), with a progress bar."""
    from flows.backup import BackupFailed, backup

    loc, key, conn = _location(location, lock_mode, lock_days), _key(password_file), _cluster(
        kubeconfig, context, cluster_name)
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    handler: _TaskProgress | None = None
    with progress:
        task_id = progress.add_task(f"backing up {app_name}", total=None)
        handler = _TaskProgress(progress, task_id)
        logging.getLogger("prefect").addHandler(handler)
        try:
            rp_id = backup(app=app_name, namespaces=namespaces, location=loc, encryption_key=key, cluster=conn,
                           label_selector=selector, include_kinds=include_kind, exclude_kinds=exclude_kind,
                           volume_concurrency=volume_concurrency, init=init)
        except BackupFailed as exc:
            console.print(f"[bold red]backup incomplete:[/] {exc}")
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - the flow's own error message is the user's answer
            console.print(f"[bold red]backup failed:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
        finally:
            logging.getLogger("prefect").removeHandler(handler)
        progress.update(task_id, total=progress.tasks[0].completed, description=f"restore point {rp_id}")
    typer.echo(rp_id)


@app.command("restore")
def restore_cmd(
    location: LocationOpt,
    restore_point: Annotated[str | None, typer.Option("--restore-point", "-p", help="Restore point id.")] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Latest restore point of this app.")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="Latest point finished before this time.")] = None,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace_map: Annotated[list[str] | None, typer.Option("--namespace-map", help="old=new (repeatable).")] = None,
    storage_class_map: Annotated[list[str] | None, typer.Option("--storage-class-map", help="old=new.")] = None,
    image_rewrite: Annotated[list[str] | None, typer.Option("--image-rewrite", help="prefix=new-prefix.")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds (repeatable).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Only objects with these names.")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-L", help="Only objects with these labels.")] = None,
    existing: Annotated[str, typer.Option("--existing", help="skip, update or recreate.")] = "skip",
    preserve_node_ports: Annotated[bool, typer.Option("--preserve-node-ports")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate server-side, change nothing.")] = False,
) -> None:
    """Restore a restore point (or part of it) onto a cluster, or dry-run it."""
    from flows.restore import RestoreFailed, restore

    def pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
        out = {}
        for v in values or ():
            if "=" not in v:
                raise typer.BadParameter(f"{v!r}: expected old=new", param_hint=option)
            old, new = v.split("=", 1)
            out[old] = new
        return out or None

    ns_map = pairs(namespace_map, "--namespace-map")
    sc_map = pairs(storage_class_map, "--storage-class-map")
    images = pairs(image_rewrite, "--image-rewrite")
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    with progress:
        task_id = progress.add_task("dry run" if dry_run else "restoring", total=None)
        handler = _TaskProgress(progress, task_id)
        logging.getLogger("prefect").addHandler(handler)
        try:
            report = restore(location=_location(location), encryption_key=_key(password_file),
                             cluster=_cluster(kubeconfig, context), restore_point=restore_point, app=app_name,
                             before=before, kinds=kind, names=name, label_selector=selector, namespace_map=ns_map,
                             storage_class_map=sc_map, image_rewrite=images, existing=existing,
                             preserve_node_ports=preserve_node_ports, dry_run=dry_run)
        except RestoreFailed as exc:
            console.print(f"[bold red]{'dry run found problems' if dry_run else 'restore failed'}:[/] {exc}")
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - the flow's own message is the answer
            console.print(f"[bold red]restore failed:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
        finally:
            logging.getLogger("prefect").removeHandler(handler)
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    typer.echo(f"{report['status']}: {counts}")


@app.command("restore-points")
def restore_points_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="Only points finished before this time.")] = None,
    all_statuses: Annotated[bool, typer.Option("--all", help="Include failed and partial points.")] = False,
    password_file: PasswordFileOpt = None,
) -> None:
    """List restore points from the location's catalog (newest first)."""
    from datetime import UTC

    from kubekeep.catalog import list_restore_points

    catalog = _key(password_file).catalog(_location(location))
    statuses = None if all_statuses else ("succeeded",)
    when = before.replace(tzinfo=before.tzinfo or UTC) if before else None
    points = list_restore_points(catalog, app=app_name, statuses=statuses, finished_before=when, newest_first=True)
    table = Table("id", "app", "finished", "status", "objects", "volumes", "stored bytes", "retain until")
    for p in points:
        table.add_row(p.id, p.app, p.finished_at.isoformat(timespec="seconds"), p.status, str(p.object_count),
                      str(p.volume_count), str(p.stored_bytes),
                      p.retain_until.isoformat(timespec="seconds") if p.retain_until else "-")
    Console().print(table)


@app.command("catalog-rebuild")
def catalog_rebuild_cmd(location: LocationOpt, password_file: PasswordFileOpt = None) -> None:
    """Rebuild the location's catalog from the restore points in its repository (adds what is missing)."""
    from kubekeep.backup.restore_point import rebuild_repository_catalog

    with _key(password_file).open_repository(_location(location).storage()) as repo:
        result = rebuild_repository_catalog(repo)
    typer.echo(f"restore points written: {result.points_written}, already present: {result.points_skipped}")


@app.command("apps")
def apps_cmd(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None) -> None:
    """Discover the cluster's applications: namespaces, Helm releases, part-of label groups."""
    from kubekeep.backup.selection import discover_applications

    with _cluster(kubeconfig, context).connect() as cluster:
        found = discover_applications(cluster)
    table = Table("application", "source", "namespaces", "selector")
    for a in found:
        table.add_row(a.name, a.source, ", ".join(a.namespaces), a.label_selector or "")
    Console().print(table)


def main() -> None:
    app()
