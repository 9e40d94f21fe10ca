"""The data mover: the entrypoint a mover Job runs next to a volume (``python -m kubekeep.mover``).

It streams a mounted volume's files into the repository (incremental from the
PVC's previous snapshot), or restores a snapshot into a mounted volume, and
prints one JSON line with the result for the orchestrator to read from the
Job's log. The passphrase comes from ``KUBEKEEP_PASSWORD`` (a Secret mounted as
an environment variable) or ``--password-file``; an external key from
``--key-file``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from kubekeep.backup.volumes import VolumeError, export_directory, parse_quantity
from kubekeep.repo.cli import open_location, read_password
from kubekeep.repo.crypto import LocalKeyWrapper
from kubekeep.repo.errors import RepositoryError, RestoreError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import StorageError
from kubekeep.restore.volume_data import VolumeVerificationError, restore_volume

app = typer.Typer(name="kubekeep-mover", no_args_is_help=True, add_completion=False,
                  help="Move one volume's data between a mounted directory and a repository.")

Repo = Annotated[str, typer.Option("--repo", "-r", envvar="KUBEKEEP_REPOSITORY", help="Repository location.")]
PasswordFile = Annotated[Path | None, typer.Option("--password-file")]
KeyFile = Annotated[Path | None, typer.Option("--key-file")]


def _open(repo: str, password_file: Path | None, key_file: Path | None) -> Repository:
    storage = open_location(repo)
    if key_file is not None:
        return Repository.open(storage, key_wrapper=LocalKeyWrapper.from_file(key_file))
    return Repository.open(storage, passphrase=read_password(password_file))


def _emit(doc: dict[str, object], code: int = 0) -> None:
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    sys.stdout.flush()
    raise typer.Exit(code)


@app.command("backup")
def backup_cmd(repo: Repo, source: Annotated[Path, typer.Option(help="The mounted volume.")],
               pvc: Annotated[str, typer.Option(help="namespace/name of the PVC.")],
               restore_point: Annotated[str, typer.Option(help="Id of the restore point being written.")],
               storage_class: Annotated[str | None, typer.Option()] = None,
               size: Annotated[str | None, typer.Option(help="Requested size, e.g. 10Gi.")] = None,
               method: Annotated[str, typer.Option()] = "csi-snapshot",
               password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Back up a mounted volume; print the volume record as JSON."""
    if pvc.count("/") != 1:
        _emit({"ok": False, "error": f"--pvc must be namespace/name, got {pvc!r}"}, 2)
    namespace, name = pvc.split("/")
    try:
        with _open(repo, password_file, key_file) as repository:
            record = export_directory(repository, source, namespace=namespace, pvc=name,
                                      storage_class=storage_class, size_bytes=parse_quantity(size),
                                      restore_point_id=restore_point, method=method)
    except (VolumeError, RepositoryError, StorageError) as exc:
        _emit({"ok": False, "error": str(exc)}, 1)
    _emit({"ok": True, "volume": asdict(record)})


@app.command("restore")
def restore_cmd(repo: Repo, snapshot: Annotated[str, typer.Option(help="Volume snapshot id.")],
                target: Annotated[Path, typer.Option(help="The mounted, empty volume.")],
                path: Annotated[str | None, typer.Option(help="Only this file or subtree.")] = None,
                verify: Annotated[bool, typer.Option(help="Re-read and compare every file with the snapshot.")] = True,
                password_file: PasswordFile = None, key_file: KeyFile = None) -> None:
    """Restore a volume snapshot into a mounted volume (and verify it); print the result as JSON."""
    try:
        with _open(repo, password_file, key_file) as repository:
            result = restore_volume(repository, snapshot, target, path=path, verify=verify)
    except RestoreError as exc:
        restored = exc.result
        _emit({"ok": False, "error": str(exc), "failures": exc.failures,
               "files": restored.files if restored is not None else None,
               "bytes": restored.bytes if restored is not None else None}, 1)
    except VolumeVerificationError as exc:
        _emit({"ok": False, "error": str(exc), "mismatches": exc.mismatches[:50]}, 1)
    except (RepositoryError, StorageError) as exc:
        _emit({"ok": False, "error": str(exc)}, 1)
    _emit({"ok": True, **result})


if __name__ == "__main__":
    app()
