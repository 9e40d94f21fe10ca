"""`kubekeep dr-copy` (also `kubekeep copy`): copy restore points to a second site now (docs/dr-copy.md)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import Flag, app
from .common import LockMode, PasswordFileOpt, VerboseOpt, encryption_key, progress, read_password, session

if TYPE_CHECKING:
    from blocks import EncryptionKey, LocationProfile

#: the destination's passphrase (default: the source's)
TO_PASSWORD_ENV = "KUBEKEEP_TO_PASSWORD"
#: variables read for an S3 destination: KUBEKEEP_TO_<name> first, then <name>
_S3_VARIABLES = ("KUBEKEEP_S3_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "KUBEKEEP_S3_ADDRESSING_STYLE",
                 "KUBEKEEP_S3_CONNECT_TIMEOUT", "KUBEKEEP_S3_READ_TIMEOUT", "KUBEKEEP_S3_DEADLINE")


class Mode(StrEnum):
    replica = "replica"
    independent = "independent"


def destination_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the destination is read with: ``KUBEKEEP_TO_<VAR>`` overrides ``<VAR>``, so two S3
    sites can have different endpoints and credentials."""
    env = dict(os.environ if env is None else env)
    for name in _S3_VARIABLES:
        if env.get(f"KUBEKEEP_TO_{name}"):
            env[name] = env[f"KUBEKEEP_TO_{name}"]
    return env


def _profile(location: str, option: str, env: dict[str, str] | None = None, lock_mode: LockMode | None = None,
             lock_days: int = 0) -> LocationProfile:
    from blocks import LocationProfile

    try:
        return LocationProfile.from_location(location, object_lock_mode=lock_mode.value if lock_mode else None,
                                             object_lock_days=lock_days, env=env)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[0], param_hint=option) from None


def _destination_key(password_file: Path | None, source: EncryptionKey) -> EncryptionKey:
    from blocks import EncryptionKey

    if password_file is None and not os.environ.get(TO_PASSWORD_ENV):
        return source
    return EncryptionKey.model_validate({"passphrase": read_password(password_file, env=TO_PASSWORD_ENV,
                                                                     prompt="Destination passphrase"),
                                         "cheap_kdf": source.cheap_kdf})


def copy_cmd(
    source: Annotated[str, typer.Option("--from", help="Location to copy from (directory, file://path or "
                                                       "s3://bucket/prefix/; S3 settings from the environment).")],
    destination: Annotated[str, typer.Option("--to", help="Location to copy to; for S3, KUBEKEEP_TO_<VAR> "
                                                          "overrides each S3 variable (KUBEKEEP_TO_AWS_ACCESS_KEY_ID, "
                                                          "KUBEKEEP_TO_KUBEKEEP_S3_ENDPOINT, ...).")],
    app_name: Annotated[str | None, typer.Option("--app", help="Copy every restore point of this app.")] = None,
    restore_point: Annotated[str | None, typer.Option("--restore-point", "-p", help="Copy this restore point.")]
    = None,
    all_points: Annotated[bool, Flag("--all", help="Copy every restore point.")] = False,
    mode: Annotated[Mode, typer.Option("--mode", help="replica: same master key, packs byte for byte (fastest); "
                                                      "independent: the destination's own key, re-encrypted.")]
    = Mode.replica,
    limit_upload: Annotated[float | None, typer.Option("--limit-upload", min=0.01, help="Upload limit in MiB/s.")]
    = None,
    lock_mode: Annotated[LockMode | None, typer.Option("--lock-mode", help="Object Lock mode at the destination "
                                                                           "(S3 only).")] = None,
    lock_days: Annotated[int, typer.Option("--lock-days", min=0, help="Object Lock days at the destination.")] = 0,
    init: Annotated[bool, Flag("--init", help="Create the destination repository (in --mode) when the location "
                                              "holds none.")] = False,
    password_file: PasswordFileOpt = None,
    to_password_file: Annotated[Path | None, typer.Option(
        "--to-password-file", help=f"Destination passphrase file (else {TO_PASSWORD_ENV}, else the source's).")]
    = None,
    verbose: VerboseOpt = False,
) -> None:
    """Copy restore points to a second site: incremental, verified before visible, locked, one-way."""
    if sum(1 for g in (app_name, restore_point, all_points) if g) != 1:
        raise typer.BadParameter("give exactly one of --app, --restore-point, --all", param_hint="--app")
    src = _profile(source, "--from")
    dst = _profile(destination, "--to", destination_environment(), lock_mode, lock_days)
    with session("copy", flows=True, verbose=verbose):
        from flows.dr_copy import dr_copy
        from kubekeep.drcopy import CopyMode

        src_key = encryption_key(password_file)
        dst_key = _destination_key(to_password_file, src_key)
        with progress(f"copying to {dst.describe()}"):
            results = dr_copy(source=src, destination=dst, source_key=src_key, destination_key=dst_key,
                              restore_point=restore_point, app=app_name, all_points=all_points,
                              mode=CopyMode(mode.value), limit_upload_mib=limit_upload, init=init)
    for r in results:
        locked = f", locked until {r.locked_until}" if r.locked_until else ""
        typer.echo(f"{r.restore_point}: {r.status}" + (
            f" ({r.packs_copied} packs, {r.bytes_copied} bytes, verified{locked})" if r.status == "copied" else ""))


app.command("dr-copy")(copy_cmd)
app.command("copy", help="The same as `kubekeep dr-copy`.")(copy_cmd)
