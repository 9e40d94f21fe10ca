"""What every `kubekeep` command shares: its options, reading its inputs, one line per error.

Every command prints one clear line per error and exits non-zero; the details
(Prefect's logs, tracebacks) go to a log file named in that line, or to the
terminal with ``--verbose`` (flows/runtime.py). Options mirror the flows'
parameters one to one; structured ones come from a YAML file (``--transforms``,
``--hooks``). A location is read by the one parser, kubekeep.location.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from flows.runtime import flow_api, new_log_file, quiet_environment, route_logs, start_server_early
from kubekeep.location import LOCATION_ENV

from .app import Flag, console, log, options

if TYPE_CHECKING:
    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from tasks.parameters import MoverOptions

out = Console(soft_wrap=True)

PASSWORD_ENV = "KUBEKEEP_PASSWORD"


class LocationNotFoundError(LookupError):
    """A location to read from that does not exist (nothing is created for it)."""


class LockMode(StrEnum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


#: the one location option of every command (``--repo``/``-r`` and KUBEKEEP_REPOSITORY are its older names)
LocationOpt = Annotated[str, typer.Option(
    "--location", "-l", "--repo", "-r", envvar=list(LOCATION_ENV),
    help="A directory (local or NFS), file://path or s3://bucket/prefix/ (env KUBEKEEP_LOCATION; --repo and "
         "KUBEKEEP_REPOSITORY are older names). For S3, endpoint, region and keys come from "
         "KUBEKEEP_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; "
         "addressing from KUBEKEEP_S3_ADDRESSING_STYLE; timeouts from KUBEKEEP_S3_CONNECT_TIMEOUT, "
         "KUBEKEEP_S3_READ_TIMEOUT, KUBEKEEP_S3_DEADLINE (seconds).")]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file",
                                                      help="Passphrase file (else KUBEKEEP_PASSWORD or a prompt).")]
KubeconfigOpt = Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: its current one).")]
VerboseOpt = Annotated[bool, Flag("--verbose", "-v", help="Show Prefect's logs and error details in the "
                                                          "terminal (they always go to the log file).")]
MoverImageOpt = Annotated[str | None, typer.Option(
    "--mover-image", help="Image of the mover Job, for volumes this machine cannot reach (CSI volumes).")]
MoverLocationOpt = Annotated[str | None, typer.Option(
    "--mover-location", "--mover-repository",
    help="The location as the mover Job sees it (e.g. s3://bucket/prefix/).")]
MoverSecretOpt = Annotated[list[str] | None, typer.Option(
    "--mover-env-from-secret", help="Secret with KUBEKEEP_PASSWORD and storage credentials for the mover "
                                    "(repeatable).")]
MoverSaOpt = Annotated[str | None, typer.Option("--mover-service-account", help="Service account of the mover Job.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit ``code`` (for commands without a log file: ``repo``, ``testbed``)."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# ------------------------------------------------------------------ errors and the Prefect runtime

def describe(exc: BaseException) -> str:
    """One line for a user: the domain's own message, or the type and message of a surprise."""
    flow_module = sys.modules.get("flows.restore")  # loaded only by commands that run the restore flow
    if flow_module is not None and isinstance(exc, flow_module.RestoreFailed) and exc.report:
        from .restore import restore_summary

        return restore_summary(exc.report)
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
    verbose = verbose or options.verbose
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
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own click: usage errors stay usage errors
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


def progress(description: str) -> Any:
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

def read_password(password_file: Path | None, *, confirm: bool = False, env: str = PASSWORD_ENV,
                  prompt: str = "Repository passphrase") -> str:
    """The passphrase: from ``password_file``, else ``$KUBEKEEP_PASSWORD``, else a prompt on a terminal."""
    if password_file is not None:
        try:
            text = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            fail(f"cannot read password file {password_file}: {exc.strerror}")
    elif os.environ.get(env):
        text = os.environ[env]
    elif sys.stdin.isatty():
        text = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    else:
        fail(f"no passphrase: set {env}, pass --password-file, or run interactively")
    if not text:
        fail("the passphrase is empty")
    return text


def location_profile(location: str, lock_mode: LockMode | None = None, lock_days: int = 0, *,
                     must_exist: bool = False) -> LocationProfile:
    """The location block of a ``--location`` string (kubekeep.location, the one parser)."""
    from blocks import LocationProfile

    try:
        profile = LocationProfile.from_location(location, object_lock_mode=lock_mode.value if lock_mode else None,
                                                object_lock_days=lock_days)
    except ValueError as exc:  # LocationError and pydantic's ValidationError are ValueErrors
        raise typer.BadParameter(str(exc).splitlines()[0], param_hint="--location/--lock-mode") from None
    if must_exist and profile.kind == "filesystem" and not Path(str(profile.path)).is_dir():
        raise LocationNotFoundError(f"location {profile.path} does not exist (a mistyped path, or a share that is "
                                    "not mounted?)")
    return profile


def encryption_key(password_file: Path | None) -> EncryptionKey:
    from blocks import EncryptionKey

    return EncryptionKey.model_validate({"passphrase": read_password(password_file),
                                         "cheap_kdf": os.environ.get("KUBEKEEP_TEST_CHEAP_KDF") == "1"})


def cluster_connection(kubeconfig: str | None, context: str | None, name: str | None = None) -> ClusterConnection:
    from blocks import ClusterConnection

    return ClusterConnection(name=name or None, kubeconfig_path=kubeconfig, context=context)


def pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """``old=new`` options as a mapping."""
    out_: dict[str, str] = {}
    for v in values or ():
        old, sep, new = v.partition("=")
        if not sep or not old:
            raise typer.BadParameter(f"{v!r}: expected old=new", param_hint=option)
        out_[old] = new
    return out_ or None


def yaml_file(path: Path, option: str) -> Any:
    import yaml  # only the commands that read a YAML file pay for it

    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", param_hint=option) from None


def mover_options(image: str | None, location: str | None, secrets: list[str] | None,
                  service_account: str | None) -> MoverOptions | None:
    from tasks.parameters import MoverOptions

    if not (image or location or secrets or service_account):
        return None
    if not image or not location:
        raise typer.BadParameter("a mover needs both --mover-image and --mover-location", param_hint="--mover-image")
    return MoverOptions(image=image, location=location, env_from_secrets=tuple(secrets or ()),
                        service_account=service_account)
