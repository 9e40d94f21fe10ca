"""`kubekeep backup`: run the backup flow now (the same flow the deployments run)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .app import Flag, app
from .common import (
    ContextOpt,
    KubeconfigOpt,
    LocationOpt,
    LockMode,
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
    pairs,
    progress,
    session,
    yaml_file,
)


class CopyModeOpt(StrEnum):
    replica = "replica"
    independent = "independent"


@app.command("backup")
def backup_cmd(
    app_name: Annotated[str, typer.Option("--app", help="Application name (restore points are grouped by it).")],
    namespaces: Annotated[list[str], typer.Option("--namespace", "-n", help="Namespace or pattern (repeatable).")],
    location: LocationOpt,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    cluster_name: Annotated[str | None, typer.Option(
        "--cluster-name", help="Cluster name in the catalog (default: the kubeconfig context).")] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-L", help="Label selector.")] = None,
    include_kind: Annotated[list[str] | None, typer.Option(
        "--include-kind", help="Only these kinds (Kind, Kind.group or plural; repeatable).")] = None,
    exclude_kind: Annotated[list[str] | None, typer.Option(
        "--exclude-kind", help="Leave these kinds out (repeatable).")] = None,
    include_crd: Annotated[list[str] | None, typer.Option(
        "--include-crd", help="Also back up the CustomResourceDefinitions of this API group (or CRD name, shell "
                              "patterns allowed), even without custom resources (repeatable).")] = None,
    lock_mode: Annotated[LockMode | None, typer.Option("--lock-mode", help="Object Lock mode (S3 only).")] = None,
    lock_days: Annotated[int, typer.Option("--lock-days", min=0, help="Object Lock retention in days.")] = 0,
    volume_concurrency: Annotated[int, typer.Option("--volume-concurrency", min=1,
                                                    help="Volumes exported at once.")] = 2,
    nfs_mount: Annotated[list[str] | None, typer.Option(
        "--nfs-mount", help="SERVER:/EXPORT=/LOCAL/MOUNT: where an NFS export is mounted on this machine "
                            "(repeatable).")] = None,
    hooks: Annotated[Path | None, typer.Option(
        "--hooks", help="YAML list of hook rules (pre/post commands in pods; see docs/backup.md).")] = None,
    quiesce: Annotated[list[str] | None, typer.Option(
        "--quiesce", help="Scale this workload to zero while volumes are exported: *, Kind/name or "
                          "namespace/Kind/name (repeatable).")] = None,
    mover_image: MoverImageOpt = None,
    mover_location: MoverLocationOpt = None,
    mover_env_from_secret: MoverSecretOpt = None,
    mover_service_account: MoverSaOpt = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Name of the backup policy recorded with the "
                                                                "restore point.")] = None,
    init: Annotated[bool, Flag("--init", help="Create the repository if the location holds none "
                                              "(first backup only).")] = False,
    signal_threshold: Annotated[float, typer.Option(
        "--signal-threshold", min=0.1, help="Mark the new point suspect when its ransomware/anomaly score "
                                            "reaches this (docs/signals.md).")] = 6.0,
    signal_baseline: Annotated[int, typer.Option(
        "--signal-baseline", min=1, max=1000, help="Previous clean points of the app the score is measured "
                                                   "against.")] = 30,
    no_signals: Annotated[bool, Flag("--no-signals", help="Do not score the new point (it is then never "
                                                          "suspect, nor known clean).")] = False,
    copy_to: Annotated[str | None, typer.Option(
        "--copy-to", help="After a successful backup, copy the restore point to the location saved as this "
                          "Location Profile block in the Prefect API (docs/dr-copy.md).")] = None,
    copy_key: Annotated[str | None, typer.Option(
        "--copy-key", help="Encryption Key block that opens the --copy-to destination (default: this backup's "
                           "passphrase).")] = None,
    copy_mode: Annotated[CopyModeOpt, typer.Option("--copy-mode", help="Mode of the copy after the backup.")]
    = CopyModeOpt.replica,
    keep_quiesced: Annotated[bool, Flag("--keep-quiesced", help="Leave the --quiesce workloads at zero after a "
                                                                "successful backup (a manual cutover).")] = False,
    defer_publish: Annotated[bool, Flag("--defer-publish", help="Return once the restore point is written and "
                                        "locked, without its catalog rows, signals score and artifacts (what a "
                                        "migration's final backup does; `kubekeep catalog-rebuild` adds the rows).")
                             ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Back up an application now (the same flow the deployments run); print the restore point id."""
    from pydantic import ValidationError

    from tasks.backup_parameters import HookRuleParameter, NfsMount

    hook_rules: list[HookRuleParameter] = []
    if hooks is not None:
        data = yaml_file(hooks, "--hooks")
        if not isinstance(data, list):
            raise typer.BadParameter(f"{hooks}: expected a list of hook rules", param_hint="--hooks")
        try:
            hook_rules = [HookRuleParameter.model_validate(rule) for rule in data]
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise typer.BadParameter(f"{hooks}: {where}: {first['msg']}", param_hint="--hooks") from None
    mover = mover_options(mover_image, mover_location, mover_env_from_secret, mover_service_account)
    mounts = [NfsMount(export=export, mount=mount)
              for export, mount in (pairs(nfs_mount, "--nfs-mount") or {}).items()]
    with session("backup", flows=True, verbose=verbose):
        from tasks.parameters import CopyAfterBackup

        after = CopyAfterBackup(destination=copy_to, destination_key=copy_key, mode=copy_mode.value) \
            if copy_to else None
        from flows.backup import backup
        from tasks.parameters import SignalOptions

        loc, key = location_profile(location, lock_mode, lock_days), encryption_key(password_file)
        conn = cluster_connection(kubeconfig, context, cluster_name)
        with progress(f"backing up {app_name}"):
            rp_id = backup(app=app_name, namespaces=namespaces, location=loc, encryption_key=key, cluster=conn,
                           label_selector=selector, include_kinds=include_kind or [],
                           exclude_kinds=exclude_kind or [],
                           volume_concurrency=volume_concurrency, nfs_mounts=mounts, hooks=hook_rules,
                           quiesce=quiesce or [], mover=mover, policy=policy, include_crds=include_crd or [],
                           init=init, keep_quiesced=keep_quiesced, defer_publish=defer_publish,
                           signals=SignalOptions(enabled=not no_signals, threshold=signal_threshold,
                                                 baseline_points=signal_baseline),
                           copy_to=after)
    typer.echo(rp_id)
