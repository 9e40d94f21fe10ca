"""Entry point of the `kubekeep` console script: the core CLI plus the commands that run flows.

Every command prints one clear line per error and exits non-zero; the details
(Prefect's logs, tracebacks) go to a log file named in that line, or to the
terminal with ``--verbose`` (flows/runtime.py). Options mirror the flows'
parameters one to one; structured ones come from a YAML file (``--transforms``,
``--hooks``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.runtime import flow_api, new_log_file, quiet_environment, route_logs, start_server_early
from kubekeep.cli import app

log = logging.getLogger("kubekeep.cli")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def Flag(*names: str, **kwargs: Any) -> Any:  # noqa: N802 - reads like typer.Option in signatures
    """A boolean option that is a flag (``--dry-run``), shown in help without a value."""
    return typer.Option(*names, metavar="", **kwargs)


class LocationNotFoundError(LookupError):
    """A location to read from that does not exist (nothing is created for it)."""


class ExistingPolicy(StrEnum):
    skip = "skip"
    update = "update"
    recreate = "recreate"


class NodePortConflict(StrEnum):
    fail = "fail"
    reassign = "reassign"


class LockMode(StrEnum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


LocationOpt = Annotated[str, typer.Option("--location", "-l", envvar="KUBEKEEP_LOCATION",
                                          help="A directory (local or NFS) or s3://bucket/prefix/. For S3, "
                                               "endpoint and keys come from KUBEKEEP_S3_ENDPOINT, AWS_REGION, "
                                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file",
                                                      help="Passphrase file (else KUBEKEEP_PASSWORD or a prompt).")]
KubeconfigOpt = Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: its current one).")]
VerboseOpt = Annotated[bool, Flag("--verbose", "-v", help="Show Prefect's logs and error details in the "
                                                                  "terminal (they always go to the log file).")]
MoverImageOpt = Annotated[str | None, typer.Option(
    "--mover-image", help="Image of the mover Job, for volumes this machine cannot reach (CSI volumes).")]
MoverRepoOpt = Annotated[str | None, typer.Option(
    "--mover-repository", help="The location as the mover Job sees it (e.g. s3://bucket/prefix/).")]
MoverSecretOpt = Annotated[list[str] | None, typer.Option(
    "--mover-env-from-secret", help="Secret with KUBEKEEP_PASSWORD and storage credentials for the mover "
                                    "(repeatable).")]
MoverSaOpt = Annotated[str | None, typer.Option("--mover-service-account", help="Service account of the mover Job.")]


@dataclass
class _Options:
    verbose: bool = False


_options = _Options()


@app.callback()
def _main_options(verbose: Annotated[bool, Flag(
        "--verbose", "-v", envvar="KUBEKEEP_VERBOSE",
        help="Show Prefect's logs and full error details in the terminal (they always go to the log file).")]
        = False) -> None:
    """Back up, restore, copy and verify Kubernetes applications."""
    _options.verbose = verbose


# ------------------------------------------------------------------ errors and the Prefect runtime

def describe(exc: BaseException) -> str:
    """One line for a user: the domain's own message, or the type and message of a surprise."""
    from flows.restore import RestoreFailed

    if isinstance(exc, RestoreFailed) and exc.report:
        return _restore_summary(exc.report)
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    from kubekeep.repo.errors import RepositoryNotFoundError

    if isinstance(exc, RepositoryNotFoundError):
        text += " (a mistyped location, or a share that is not mounted?)"
    own = type(exc).__module__.split(".")[0] in ("kubekeep", "flows", "tasks", "blocks")
    return text if own or isinstance(exc, LookupError | ValueError) else f"{type(exc).__name__}: {text}"


@contextmanager
def session(what: str, *, flows: bool = False, verbose: bool = False) -> Iterator[Path]:
    """Run one command: quiet Prefect, a log file, the Prefect API when ``flows``; any error becomes one
    line naming the log file, and exit code 1."""
    verbose = verbose or _options.verbose
    quiet_environment()
    log_file = new_log_file()
    try:
        server = start_server_early(log_file) if flows else None
        try:
            import prefect  # noqa: F401 - installs Prefect's logging, which route_logs redirects

            route_logs(log_file, verbose=verbose)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        with flow_api(log_file, server) if flows else nullcontext():
            yield log_file
    except (typer.Exit, typer.Abort, click.exceptions.ClickException):
        raise
    except KeyboardInterrupt:
        console.print(f"{what}: interrupted (log: {log_file})")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; details in the log file
        log.error("%s failed", what, exc_info=True)
        console.print(f"[bold red]{what} failed:[/] {describe(exc)} [dim](details: {log_file})[/]")
        if verbose:
            console.print_exception()
        raise typer.Exit(1) from None


def _progress(description: str) -> Any:
    """A progress bar advanced by Prefect's task-run logs (only on a terminal)."""
    if not console.is_terminal:
        return nullcontext()
    return _TaskProgress(description)


class _TaskProgress(logging.Handler):
    """Advance a progress bar as the flow's task runs finish (Prefect logs each one)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self.description = description
        self.task_id: Any = None

    def __enter__(self) -> _TaskProgress:
        self.bar.__enter__()
        self.task_id = self.bar.add_task(self.description, total=None)
        logging.getLogger("prefect").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("prefect").removeHandler(self)
        self.bar.__exit__(None, None, None)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Finished in state" in message:
            name = getattr(record, "task_run_name", None) or message.split(" - ")[0]
            self.bar.advance(self.task_id)
            self.bar.update(self.task_id, description=f"done: {name}")


# ------------------------------------------------------------------ inputs

def _location(location: str, lock_mode: LockMode | None = None, lock_days: int = 0, *,
              must_exist: bool = False) -> Any:
    from blocks import LocationProfile

    try:
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            return LocationProfile.model_validate({
                "kind": "s3", "bucket": bucket, "prefix": (prefix.rstrip("/") + "/") if prefix else "",
                "endpoint_url": os.environ.get("KUBEKEEP_S3_ENDPOINT"), "region": os.environ.get("AWS_REGION"),
                "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
                "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
                "object_lock_mode": lock_mode.value if lock_mode else None, "object_lock_days": lock_days})
        path = Path(location.removeprefix("file://")).expanduser()
        if must_exist and not path.is_dir():
            raise LocationNotFoundError(f"location {path} does not exist (a mistyped path, or a share that is "
                                        "not mounted?)")
        return LocationProfile.model_validate({
            "kind": "filesystem", "path": str(path),
            "object_lock_mode": lock_mode.value if lock_mode else None, "object_lock_days": lock_days})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc).splitlines()[0], param_hint="--location/--lock-mode") from exc


def _key(password_file: Path | None) -> Any:
    from blocks import EncryptionKey
    from kubekeep.repo.cli import read_password

    return EncryptionKey.model_validate({"passphrase": read_password(password_file),
                                         "cheap_kdf": os.environ.get("KUBEKEEP_TEST_CHEAP_KDF") == "1"})


def _cluster(kubeconfig: str | None, context: str | None, name: str | None = None) -> Any:
    from blocks import ClusterConnection

    return ClusterConnection(name=name or None, kubeconfig_path=kubeconfig, context=context)


def _pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    out_: dict[str, str] = {}
    for v in values or ():
        old, sep, new = v.partition("=")
        if not sep or not old:
            raise typer.BadParameter(f"{v!r}: expected old=new", param_hint=option)
        out_[old] = new
    return out_ or None


def _yaml_file(path: Path, option: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", param_hint=option) from None


TRANSFORM_FILE_KEYS = ("transforms", "priorities", "tiers", "after", "existing_by_kind")


def load_transforms_file(path: Path) -> dict[str, Any]:
    """``--transforms FILE.yaml``: the structured restore parameters, validated before anything runs.

    Keys (all optional): ``transforms`` (the transform chain: namespace-map, storage-class-map,
    image-rewrite, labels, annotations, json-patch), ``priorities`` (the restore order), ``tiers`` and
    ``after`` (readiness tiers), ``existing_by_kind`` (``Kind.group: skip|update|recreate``).
    """
    from kubekeep.restore import TierPolicy, TransformChain, parse_priorities
    from kubekeep.restore.errors import RestorePlanError
    from kubekeep.restore.policy import PolicyError, RestorePolicy

    data = _yaml_file(path, "--transforms")
    if isinstance(data, list):
        data = {"transforms": data}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping with some of {', '.join(TRANSFORM_FILE_KEYS)}",
                                 param_hint="--transforms")
    unknown = sorted(set(data) - set(TRANSFORM_FILE_KEYS) - {"version"})
    if unknown:
        raise typer.BadParameter(f"{path}: unknown key(s) {', '.join(unknown)} (known: "
                                 f"{', '.join(TRANSFORM_FILE_KEYS)})", param_hint="--transforms")
    try:
        if data.get("transforms") is not None:
            TransformChain.from_dict(data["transforms"])
        if data.get("priorities") is not None:
            parse_priorities(data["priorities"])
        tiers = {k: data[k] for k in ("tiers", "after") if data.get(k) is not None}
        if tiers:
            TierPolicy.from_dict(tiers)
        if data.get("existing_by_kind") is not None:
            RestorePolicy.from_dict({"existing_by_kind": data["existing_by_kind"]})
    except (RestorePlanError, PolicyError, ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{path}: {str(exc).splitlines()[0]}", param_hint="--transforms") from None
    return {"transforms": data.get("transforms"), "priorities": data.get("priorities"),
            "tiers": {k: data[k] for k in ("tiers", "after") if data.get(k) is not None} or None,
            "existing_by_kind": data.get("existing_by_kind")}


def _mover(image: str | None, repository: str | None, secrets: list[str] | None,
           service_account: str | None) -> dict[str, Any] | None:
    if not (image or repository or secrets or service_account):
        return None
    if not image or not repository:
        raise typer.BadParameter("a mover needs both --mover-image and --mover-repository", param_hint="--mover-image")
    return {"image": image, "repository": repository, "env_from_secrets": list(secrets or ()),
            "service_account": service_account}


# ------------------------------------------------------------------ commands

@app.command("demo")
def demo(keep: Annotated[bool, Flag("--keep", help="Keep the control plane running after the demo "
                                                          "(Ctrl-C ends).")] = False) -> None:
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
    mover_repository: MoverRepoOpt = None,
    mover_env_from_secret: MoverSecretOpt = None,
    mover_service_account: MoverSaOpt = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Name of the backup policy recorded with the "
                                                                "restore point.")] = None,
    init: Annotated[bool, Flag("--init", help="Create the repository if the location holds none "
                                              "(first backup only).")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Back up an application now (the same flow the deployments run); print the restore point id."""
    hook_rules = None
    if hooks is not None:
        hook_rules = _yaml_file(hooks, "--hooks")
        if not isinstance(hook_rules, list):
            raise typer.BadParameter(f"{hooks}: expected a list of hook rules", param_hint="--hooks")
    mover = _mover(mover_image, mover_repository, mover_env_from_secret, mover_service_account)
    mounts = _pairs(nfs_mount, "--nfs-mount")
    with session("backup", flows=True, verbose=verbose):
        from flows.backup import backup

        loc, key, conn = _location(location, lock_mode, lock_days), _key(password_file), _cluster(
            kubeconfig, context, cluster_name)
        with _progress(f"backing up {app_name}"):
            rp_id = backup(app=app_name, namespaces=namespaces, location=loc, encryption_key=key, cluster=conn,
                           label_selector=selector, include_kinds=include_kind, exclude_kinds=exclude_kind,
                           volume_concurrency=volume_concurrency, nfs_mounts=mounts, hooks=hook_rules,
                           quiesce=quiesce, mover=mover, policy=policy, include_crds=include_crd,
                           init=init)
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
    storage_class_map: Annotated[list[str] | None, typer.Option(
        "--storage-class-map", help="old=new (repeatable).")] = None,
    image_rewrite: Annotated[list[str] | None, typer.Option(
        "--image-rewrite", help="prefix=new-prefix (repeatable).")] = None,
    transforms: Annotated[Path | None, typer.Option(
        "--transforms", help="YAML file with transforms (json-patch, labels, annotations, ...), priorities, "
                             "tiers/after and existing_by_kind (docs/restore-order.md).")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds (repeatable).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Only objects with these names (repeatable).")
                    ] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-L", help="Only objects with these labels.")] = None,
    pvc: Annotated[list[str] | None, typer.Option(
        "--pvc", help="Only these claims (namespace/name, repeatable).")] = None,
    existing: Annotated[ExistingPolicy, typer.Option("--existing", help="What to do with objects that exist.")
                        ] = ExistingPolicy.skip,
    recreate_pvcs: Annotated[bool, Flag(
        "--recreate-pvcs", help="With --existing recreate, also recreate claims and volumes that hold data.")
    ] = False,
    no_create_namespaces: Annotated[bool, Flag(
        "--no-create-namespaces", help="Do not create target namespaces the backup has no object for.")] = False,
    node_port_conflicts: Annotated[NodePortConflict, typer.Option(
        "--node-port-conflicts", help="A kept nodePort taken on the target: fail, or reassign a free one.")
    ] = NodePortConflict.fail,
    ready_timeout: Annotated[float, typer.Option("--ready-timeout", min=1,
                                                 help="Seconds to wait for each readiness tier.")] = 300.0,
    crd_timeout: Annotated[float, typer.Option("--crd-timeout", min=1,
                                               help="Seconds to wait for CRDs to be Established.")] = 60.0,
    delete_timeout: Annotated[float, typer.Option("--delete-timeout", min=1,
                                                  help="Seconds to wait for a deleted object (recreate).")] = 120.0,
    preserve_node_ports: Annotated[bool, Flag("--preserve-node-ports",
                                                      help="Keep nodePorts the source cluster assigned.")] = False,
    include_owned: Annotated[bool, Flag(
        "--include-owned", help="Also restore objects their restored owners would recreate (Pods, ReplicaSets).")
    ] = False,
    restore_status: Annotated[list[str] | None, typer.Option(
        "--restore-status", help="Restore the status of custom resources of this kind (Kind.group) through the "
                                 "status subresource (repeatable).")] = None,
    dry_run: Annotated[bool, Flag("--dry-run", help="Validate server-side, change nothing.")] = False,
    no_wait: Annotated[bool, Flag("--no-wait", help="Do not wait for workload tiers to be Ready.")] = False,
    no_volumes: Annotated[bool, Flag("--no-volumes", help="Restore manifests only, no volume data.")] = False,
    no_verify: Annotated[bool, Flag(
        "--no-verify-volumes", help="Do not re-read restored volume data (then no workload that mounts it starts).")
    ] = False,
    files: Annotated[str | None, typer.Option(
        "--files", help="Restore files of one volume to --target instead of the app: namespace/pvc[:path].")
    ] = None,
    target: Annotated[Path | None, typer.Option("--target", help="Local directory for --files.")] = None,
    mover_image: MoverImageOpt = None,
    mover_repository: MoverRepoOpt = None,
    mover_env_from_secret: MoverSecretOpt = None,
    mover_service_account: MoverSaOpt = None,
    report_file: Annotated[Path | None, typer.Option(
        "--report", help="Write the per-object report to this file: .json or .md.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Restore a restore point (or part of it) onto a cluster, or dry-run it."""
    if report_file is not None and report_file.suffix.lower() not in (".json", ".md"):
        raise typer.BadParameter(f"{report_file}: the report is written as .json or .md", param_hint="--report")
    structured = load_transforms_file(transforms) if transforms is not None else {}
    file_spec = None
    if files is not None:
        pvc_ref, _, path = files.partition(":")
        if "/" not in pvc_ref or target is None:
            raise typer.BadParameter("--files namespace/pvc[:path] needs --target DIR", param_hint="--files")
        file_spec = {"pvc": pvc_ref, "target": str(target), **({"path": path} if path else {})}
    policy: dict[str, Any] = {"recreate_pvcs": recreate_pvcs, "create_namespaces": not no_create_namespaces,
                              "node_port_conflicts": node_port_conflicts.value, "ready_timeout": ready_timeout,
                              "crd_timeout": crd_timeout, "delete_timeout": delete_timeout}
    if structured.get("existing_by_kind"):
        policy["existing_by_kind"] = structured["existing_by_kind"]
    params: dict[str, Any] = {
        "restore_point": restore_point, "app": app_name, "before": before, "kinds": kind, "names": name,
        "label_selector": selector, "pvcs": pvc, "namespace_map": _pairs(namespace_map, "--namespace-map"),
        "storage_class_map": _pairs(storage_class_map, "--storage-class-map"),
        "image_rewrite": _pairs(image_rewrite, "--image-rewrite"), "transforms": structured.get("transforms"),
        "priorities": structured.get("priorities"), "tiers": structured.get("tiers"), "existing": existing.value,
        "policy": policy, "preserve_node_ports": preserve_node_ports, "include_owned": include_owned,
        "dry_run": dry_run, "wait": not no_wait, "restore_volumes": not no_volumes, "verify_volumes": not no_verify,
        "files": file_spec, "restore_status": restore_status,
        "mover": _mover(mover_image, mover_repository, mover_env_from_secret, mover_service_account)}
    what = "dry run" if dry_run else "restore"
    with session(what, flows=True, verbose=verbose):
        from flows.restore import RestoreFailed, restore

        loc, key, conn = _location(location, must_exist=True), _key(password_file), _cluster(kubeconfig, context)
        try:
            with _progress("dry run" if dry_run else "restoring"):
                result = restore(location=loc, encryption_key=key, cluster=conn, **params)
        except RestoreFailed as exc:
            if report_file is not None and exc.report:
                write_report(exc.report, report_file)
            raise
        if report_file is not None and "outcomes" in result:
            write_report(result, report_file)
    if file_spec is not None:
        summary = result["files"]
        typer.echo(f"restored {summary.get('files', 0)} file(s), {summary.get('bytes', 0)} bytes to {target} "
                   f"(verified {summary.get('verified_files', 0)}) from {result['restore_point']}")
        return
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
    typer.echo(f"{result['status']}: {counts}")
    typer.echo(f"restore {result.get('restore_id', '')} of {result.get('restore_point_id', '')}; "
               f"report: kubekeep restores -l {location} --id {result.get('restore_id', '')}")


def _restore_summary(report: dict[str, Any]) -> str:
    problems = [o for o in report.get("outcomes") or () if o.get("action") in _FAILURE_ACTIONS]
    head = f"{report.get('status', 'failed')}"
    if report.get("aborted"):
        head += f": {report['aborted']}"
    elif problems:
        first = problems[0]
        head += f": {first['action']} {first['kind']} {first['namespace']}/{first['name']}: {first['reason']}"
    more = f"; {len(problems)} object(s) with problems" if problems else ""
    rid = report.get("restore_id")
    hint = f"; report: kubekeep restores --id {rid}" if rid else ""
    return " ".join((head + more + hint).split())


_FAILURE_ACTIONS = frozenset({"conflict", "immutable-field", "missing-storage-class", "missing-crd", "not-convertible",
                              "namespace-terminating", "failed", "not-attempted"})


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as JSON (everything) or Markdown (summary, volumes, problems and every object)."""
    from kubekeep.restore.report import RestoreReport

    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
        return
    parsed = RestoreReport.from_dict(report)
    title = f"Restore `{report.get('restore_id', '')}` of `{report.get('restore_point_id', '')}`\n\n"
    path.write_text(title + parsed.markdown(objects=True))


@app.command("restore-points")
def restore_points_cmd(
    location: LocationOpt,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this application's points.")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="Only points finished before this time.")] = None,
    all_statuses: Annotated[bool, Flag("--all", help="Include failed and partial points.")] = False,
    password_file: PasswordFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """List restore points from the location's catalog (newest first)."""
    with session("restore-points", verbose=verbose):
        from kubekeep.catalog import list_restore_points

        catalog = _key(password_file).catalog(_location(location, must_exist=True))
        statuses = None if all_statuses else ("succeeded",)
        when = before.replace(tzinfo=before.tzinfo or UTC) if before else None
        points = list_restore_points(catalog, app=app_name, statuses=statuses, finished_before=when,
                                     newest_first=True)
    table = Table("id", "app", "finished", "status", "objects", "volumes", "stored bytes", "retain until")
    for p in points:
        table.add_row(p.id, p.app, p.finished_at.isoformat(timespec="seconds"), p.status, str(p.object_count),
                      str(p.volume_count), str(p.stored_bytes),
                      p.retain_until.isoformat(timespec="seconds") if p.retain_until else "-")
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

        catalog = _key(password_file).catalog(_location(location, must_exist=True))
        if restore_id is None:
            rows = list_restores(catalog, app=app_name, limit=limit)
        else:
            record = get_restore(catalog, restore_id)
            if record is None:
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
    """Rebuild the location's catalog from its repository (restore points and restore reports; adds what is
    missing)."""
    with session("catalog-rebuild", verbose=verbose):
        from kubekeep.restore.record import rebuild_restores
        from kubekeep.restorepoint import rebuild_repository_catalog

        with _key(password_file).open_repository(_location(location, must_exist=True).storage()) as repo:
            result = rebuild_repository_catalog(repo)
            restores_written, restores_present = rebuild_restores(repo)
    typer.echo(f"restore points written: {result.points_written}, already present: {result.points_skipped}; "
               f"restores written: {restores_written}, already present: {restores_present}")


@app.command("apps")
def apps_cmd(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, verbose: VerboseOpt = False) -> None:
    """Discover the cluster's applications: namespaces, Helm releases, part-of label groups."""
    with session("apps", verbose=verbose):
        from kubekeep.backup.scope import discover_applications

        with _cluster(kubeconfig, context).connect() as cluster:
            found = discover_applications(cluster)
    table = Table("application", "source", "namespaces", "selector")
    for a in found:
        table.add_row(a.name, a.source, ", ".join(a.namespaces), a.label_selector or "")
    out.print(table)


def main() -> None:
    """The console script: one line per error, never a traceback (details in the log file)."""
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last guard: nothing reaches the user as a traceback
        log.error("kubekeep failed", exc_info=True)
        console.print(f"[bold red]kubekeep failed:[/] {describe(exc)}")
        raise SystemExit(1) from None
