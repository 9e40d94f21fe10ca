"""`kubekeep repo ...`: the repository underneath a location (init, snapshots, check, prune, keys, ...)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn
from rich.table import Table

from kubekeep.location import LocationError
from kubekeep.location import open_location as parse_and_open
from kubekeep.repo.crypto import KdfParams, KeyWrapper, LocalKeyWrapper
from kubekeep.repo.errors import RepositoryError, RestoreError
from kubekeep.repo.format import DEFAULT_COMPRESSION_LEVEL
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode, S3Storage, Storage, StorageError

from .app import Flag, app, console
from .common import LocationOpt, fail, out, read_password

repo_app = typer.Typer(help="Manage the repository of a location (init, backup, restore, check, prune, keys).",
                       no_args_is_help=True)
key_app = typer.Typer(help="Add and remove key slots.", no_args_is_help=True)
repo_app.add_typer(key_app, name="key")
app.add_typer(repo_app, name="repo")

NEW_PASSWORD_ENV = "KUBEKEEP_NEW_PASSWORD"

Location = LocationOpt
PasswordFile = Annotated[Path | None, typer.Option("--password-file", help="Read the passphrase from this file.")]
KeyFile = Annotated[Path | None, typer.Option("--key-file", help="Open with an external key file instead.")]


def open_location(location: str) -> Storage:
    """The storage of a ``--location`` (kubekeep.location, the one parser); a bad one is a one-line error."""
    try:
        return parse_and_open(location)
    except (LocationError, StorageError) as exc:
        fail(str(exc))


def _key_wrapper(key_file: Path | None) -> KeyWrapper | None:
    return LocalKeyWrapper.from_file(key_file) if key_file is not None else None


def _kdf() -> KdfParams | None:
    # tests (and only tests) make slot creation cheap through this variable
    return KdfParams.cheap() if os.environ.get("KUBEKEEP_TEST_CHEAP_KDF") == "1" else None


@contextmanager
def errors_reported() -> Iterator[None]:
    """Around every repo command: one line per error, and the repositories it opened closed at the end."""
    try:
        yield
    except RestoreError as exc:
        for path, reason in sorted(exc.failures.items()):
            console.print(f"[red]failed:[/] {path}: {reason}")
        fail(f"{len(exc.failures)} item(s) could not be restored")
    except (RepositoryError, StorageError) as exc:
        fail(str(exc))
    except OSError as exc:  # local files: password files, sources, targets
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}")
    finally:
        while _opened:
            _opened.pop().close()


#: repositories the running command opened (closed by errors_reported when it ends)
_opened: list[Repository] = []


def _open(location: str, password_file: Path | None, key_file: Path | None) -> Repository:
    storage = open_location(location)
    wrapper = _key_wrapper(key_file)
    password = None if wrapper is not None else read_password(password_file)
    repo = Repository.open(storage, passphrase=password, key_wrapper=wrapper)
    _opened.append(repo)
    for warning in repo.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return repo


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int, int | None, str], None]]:
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        DownloadColumn(), TransferSpeedColumn(), console=console, transient=True,
                        disable=not console.is_terminal)
    with progress:
        task = progress.add_task(label, total=total)

        def update(done: int, _total: int | None, _item: str) -> None:
            progress.update(task, completed=done)

        yield update


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


LockMode = Annotated[RetentionMode | None, typer.Option(
    "--lock-mode", case_sensitive=False,
    help="Lock what this command writes with S3 Object Lock: COMPLIANCE (nobody can delete or shorten "
         "it before the date) or GOVERNANCE (an admin with the bypass permission can). Needs --lock-days.")]
LockDays = Annotated[int, typer.Option("--lock-days", min=0, help="How many days the lock lasts.")]


def _retention(mode: RetentionMode | None, days: int) -> tuple[RetentionMode, datetime] | None:
    if mode is None:
        if days:
            fail("--lock-days needs --lock-mode")
        return None
    if days < 1:
        fail("--lock-mode needs --lock-days of at least 1")
    return RetentionMode(mode), datetime.now(UTC) + timedelta(days=days)


@repo_app.command("init")
def init_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None,
             cipher: Annotated[str, typer.Option(help="aes-256-gcm or chacha20-poly1305")] = "aes-256-gcm",
             compression_level: Annotated[int, typer.Option(
                 min=1, max=22, help="zstd level (1-22); higher levels store a little less for much more CPU.")
             ] = DEFAULT_COMPRESSION_LEVEL,
             create_bucket: Annotated[bool, Flag(
                 "--create-bucket", help="Create a missing S3 bucket (with Object Lock when --lock-mode is "
                                         "given). Without it, a missing bucket is an error.")] = False,
             lock_mode: LockMode = None, lock_days: LockDays = 0) -> None:
    """Create a new repository in an empty location (a directory is created; a bucket only with --create-bucket)."""
    with errors_reported():
        retention = _retention(lock_mode, lock_days)
        storage = open_location(repo)
        is_s3 = isinstance(storage, S3Storage)
        if create_bucket and not is_s3:
            fail("--create-bucket is for s3:// locations")
        wrapper = _key_wrapper(key_file)
        password = None if wrapper is not None else read_password(password_file, confirm=True)
        r = Repository.init(storage, passphrase=password, key_wrapper=wrapper, cipher=cipher,
                            compression_level=compression_level, kdf=_kdf(),
                            create_location=create_bucket if is_s3 else True, retention=retention)
        _opened.append(r)
        out.print(f"created repository {r.repository_id.hex()[:12]} at {storage.url}")


@repo_app.command("backup")
def backup_cmd(repo: Location, source: Annotated[Path | None, typer.Argument(help="Directory to back up.")] = None,
               stdin_name: Annotated[str | None, typer.Option("--stdin-name",
                                                              help="Back up standard input as this stream.")] = None,
               tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")] = None,
               meta: Annotated[list[str] | None, typer.Option("--meta", help="key=value (repeatable).")] = None,
               parent: Annotated[str | None, typer.Option(
                   help="Parent snapshot: an id, or 'latest' (the newest snapshot of this directory).")] = None,
               password_file: PasswordFile = None, key_file: KeyFile = None,
               lock_mode: LockMode = None, lock_days: LockDays = 0) -> None:
    """Back up a directory and/or standard input into a new snapshot (into an existing repository only)."""
    with errors_reported():
        retention = _retention(lock_mode, lock_days)
        if source is None and stdin_name is None:
            fail("give a directory to back up and/or --stdin-name")
        if source is not None and not source.is_dir():
            fail(f"{source} is not a directory")
        metadata: dict[str, str] = {}
        for item in meta or []:
            if "=" not in item:
                fail(f"--meta expects key=value, got {item!r}")
            k, v = item.split("=", 1)
            metadata[k] = v
        r = _open(repo, password_file, key_file)
        streams: dict[str, Any] = {stdin_name: sys.stdin.buffer} if stdin_name else {}
        # the total feeds only the progress bar: without a terminal there is none, and no second walk for it
        total = _tree_size(source) if source is not None and console.is_terminal else None
        with _progress("backup", total) as update:
            result = r.backup(source, streams=streams, parent=parent, tags=tag or [], metadata=metadata,
                              retention=retention, progress=update)
        s = result.stats
        for err in result.errors:
            console.print(f"[yellow]warning:[/] {err}")
        out.print(f"snapshot {result.snapshot_id[:12]} saved: {s.files} files, {s.bytes} bytes, "
                  f"{s.new_bytes} new bytes ({s.new_stored_bytes} stored), {s.unchanged_files} unchanged")
        out.print(result.snapshot_id)


@repo_app.command("restore")
def restore_cmd(repo: Location, snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix or 'latest'.")],
                target: Annotated[Path, typer.Option("--target", "-t", help="Directory to restore into.")],
                path: Annotated[str | None, typer.Option(help="Only this file or directory.")] = None,
                stream: Annotated[str | None, typer.Option(help="Write this named stream to --target "
                                                           "(a file, or - for stdout).")] = None,
                password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Restore a snapshot, one path of it, or one named stream."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        if stream is not None:
            if str(target) == "-":
                for part in r.read_stream(snapshot, stream):  # checks the stream name before writing
                    sys.stdout.buffer.write(part)
                return
            size = r.restore_stream(snapshot, stream, target)
            out.print(f"wrote stream {stream} ({size} bytes) to {target}")
            return
        with _progress("restore", None) as update:
            try:
                result = r.restore(snapshot, target, path=path, progress=update)
            except RestoreError as exc:
                if exc.result is not None:
                    _restore_summary(exc.result, target)
                raise
        _restore_summary(result, target)


def _restore_summary(result: Any, target: Path) -> None:
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    out.print(f"restored {result.files} files, {result.dirs} directories, {result.bytes} bytes to {target}")


@repo_app.command("snapshots")
def snapshots_cmd(repo: Location,
                  tag: Annotated[list[str] | None, typer.Option(
                      "--tag", help="Only snapshots with this tag (repeatable).")] = None,
                  password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """List snapshots, oldest first."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        table = Table("id", "time", "host", "tags", "source/streams", "files", "bytes")
        problems: list[str] = []
        listed = r.snapshots(tags=tag or [], problems=problems)
        for problem in problems:
            console.print(f"[yellow]warning:[/] {problem} (`kubekeep repo check` reports it)")
        for s in listed:
            what = s.source or ""
            if s.streams:
                what = (what + " " if what else "") + "streams: " + ",".join(s.streams)
            table.add_row(s.id[:12], s.time.strftime("%Y-%m-%d %H:%M:%S"), s.hostname, ",".join(s.tags), what,
                          str(s.stats.get("files", 0)), str(s.stats.get("bytes", 0)))
        out.print(table)


@repo_app.command("check")
def check_cmd(repo: Location, read_data: Annotated[bool, Flag(
                  "--read-data", help="Also read and authenticate every blob (slow: reads all data).")] = False,
              password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Verify the repository's structure (and, with --read-data, every blob)."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        result = r.check(read_data=read_data)
        for w in result.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        for e in result.errors:
            console.print(f"[red]error:[/] {e}")
        if not result.ok:
            fail(f"check found {len(result.errors)} error(s)")
        out.print(f"no errors: {result.snapshots} snapshots, {result.packs} packs"
                  + (f", {result.blobs_read} blobs read" if read_data else ""))


@repo_app.command("repair-index")
def repair_index_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Rebuild the index from the packs."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        result = r.repair_index()
        for p in result.unreadable_packs:
            console.print(f"[yellow]unreadable pack:[/] {p}")
        out.print(f"indexed {result.blobs_indexed} blobs in {result.packs_indexed} packs")


@repo_app.command("prune")
def prune_cmd(repo: Location, snapshot: Annotated[list[str] | None, typer.Argument(help="Snapshots to drop.")] = None,
              wait: Annotated[float, typer.Option(help="Seconds to wait for running backups.")] = 600.0,
              leftover_age: Annotated[float, typer.Option(
                  "--leftover-age", min=0,
                  help="Seconds after which temporary files of interrupted writers, and unindexed packs while "
                       "other backups run, are reclaimed.")] = 3600.0,
              password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Drop snapshots and remove data no remaining snapshot needs."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        result = r.prune(snapshot or [], wait_timeout=wait, leftover_age=leftover_age)
        for m in result.messages:
            console.print(f"[yellow]{m}[/]")
        out.print(f"removed {len(result.snapshots_removed)} snapshots, deleted {result.packs_deleted} packs "
                  f"({result.bytes_freed} bytes), repacked {result.packs_repacked}")


@repo_app.command("unlock")
def unlock_cmd(repo: Location,
               remove_all: Annotated[bool, Flag(
                   "--remove-all", help="Remove every lock, also of operations that may still run (only when "
                                        "you know nothing runs on this repository).")] = False,
               password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Remove stale locks: expired ones, and those of processes that are gone on this host."""
    with errors_reported():
        result = _open(repo, password_file, key_file).unlock(remove_all=remove_all)
        for line in result.removed:
            console.print(f"removed: {line}")
        for line in result.kept:
            console.print(f"kept: {line}")
        what = "lock(s)" if remove_all else "stale lock(s)"
        out.print(f"removed {len(result.removed)} {what}, {len(result.kept)} live lock(s) kept")


@repo_app.command("recover")
def recover_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """S3 with versioning/Object Lock: make objects that delete markers or forged newer versions hide
    visible again (their authentic, possibly locked, version becomes current)."""
    with errors_reported():
        result = _open(repo, password_file, key_file).recover()
        for action in result.actions:
            console.print(f"recovered {action.key}: {action.action}")
        for problem in result.problems:
            console.print(f"[yellow]left:[/] {problem}")
        out.print(f"recovered {len(result.actions)} object(s)" + (f", {len(result.problems)} left as they are"
                                                                 if result.problems else ""))


@repo_app.command("stats")
def stats_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Logical vs stored bytes."""
    with errors_reported():
        s = _open(repo, password_file, key_file).stats()
        out.print(f"snapshots: {s.snapshots}\nlogical bytes: {s.logical_bytes}\nunique bytes: {s.unique_bytes}\n"
                  f"stored bytes: {s.stored_bytes}\npacks: {s.packs}\nblobs: {s.blobs}\n"
                  f"dedup ratio: {s.dedup_ratio:.2f}\ncompression ratio: {s.compression_ratio:.2f}")


@key_app.command("list")
def key_list_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    with errors_reported():
        for k in _open(repo, password_file, key_file).list_keys():
            out.print(f"{k.slot_id}  {k.type}  {k.provider or ''}  {k.created}")


@key_app.command("add")
def key_add_cmd(repo: Location, password_file: PasswordFile = None, key_file: KeyFile = None,
                new_password_file: Annotated[Path | None, typer.Option(help="The new passphrase's file.")] = None,
                new_key_file: Annotated[Path | None, typer.Option(help="Add an external key slot.")] = None) -> None:
    """Add a passphrase (from KUBEKEEP_NEW_PASSWORD, --new-password-file or a prompt) or an external key."""
    with errors_reported():
        r = _open(repo, password_file, key_file)
        if new_key_file is not None:
            slot = r.add_external_key(LocalKeyWrapper.from_file(new_key_file))
        else:
            new = read_password(new_password_file, confirm=True, env=NEW_PASSWORD_ENV, prompt="New passphrase")
            slot = r.add_passphrase(new, kdf=_kdf())
        out.print(f"added key slot {slot}")


@key_app.command("remove")
def key_remove_cmd(repo: Location, slot: Annotated[str, typer.Argument(help="Key slot id.")],
                   password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Remove a key slot (never the last one)."""
    with errors_reported():
        _open(repo, password_file, key_file).remove_key(slot)
        out.print(f"removed key slot {slot}")
