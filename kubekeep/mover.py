"""The data mover: the entrypoint a mover Job runs next to a volume (``python -m kubekeep.mover``).

It streams a mounted volume's files into the repository (incremental from the
PVC's previous snapshot), or restores a snapshot into a mounted volume, and
prints one JSON line with the result for the orchestrator to read from the
Job's log; the exit code is 0 on success, 1 on a failure, 2 on bad arguments.
The location is read by the one parser (kubekeep.location): ``--location``
(or ``KUBEKEEP_LOCATION``; ``--repo`` and ``KUBEKEEP_REPOSITORY`` are older
names). The passphrase comes from ``KUBEKEEP_PASSWORD`` (a Secret mounted as an
environment variable) or ``--password-file``; an external key from
``--key-file``. A small program of its own: it imports no command-line module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from kubekeep.backup.volumes import VolumeError, export_directory, parse_quantity
from kubekeep.location import LOCATION_ENV, LocationError, open_location
from kubekeep.repo.crypto import LocalKeyWrapper
from kubekeep.repo.errors import RepositoryError, RestoreError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import StorageError
from kubekeep.restore.volume_data import VolumeVerificationError, restore_volume

PASSWORD_ENV = "KUBEKEEP_PASSWORD"


class _Usage(Exception):
    """Bad arguments: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubekeep-mover",
                     description="Move one volume's data between a mounted directory and a repository.")
    common = _Parser(add_help=False)
    common.add_argument("--location", "-l", "--repo", "-r", dest="location",
                        default=next((os.environ[v] for v in LOCATION_ENV if os.environ.get(v)), None),
                        help="The location (env KUBEKEEP_LOCATION).")
    common.add_argument("--password-file", type=Path)
    common.add_argument("--key-file", type=Path)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    backup = commands.add_parser("backup", parents=[common], help="Back up a mounted volume.")
    backup.add_argument("--source", type=Path, required=True, help="The mounted volume.")
    backup.add_argument("--pvc", required=True, help="namespace/name of the PVC.")
    backup.add_argument("--restore-point", required=True, help="Id of the restore point being written.")
    backup.add_argument("--storage-class")
    backup.add_argument("--size", help="Requested size, e.g. 10Gi.")
    backup.add_argument("--method", default="csi-snapshot")
    restore = commands.add_parser("restore", parents=[common], help="Restore a snapshot into a mounted volume.")
    restore.add_argument("--snapshot", required=True, help="Volume snapshot id.")
    restore.add_argument("--target", type=Path, required=True, help="The mounted, empty volume.")
    restore.add_argument("--path", help="Only this file or subtree.")
    restore.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                         help="Re-read and compare every file with the snapshot.")
    return parser


def _open(args: argparse.Namespace) -> Repository:
    if not args.location:
        raise _Usage("no location given (--location, or KUBEKEEP_LOCATION)")
    storage = open_location(args.location)
    if args.key_file is not None:
        return Repository.open(storage, key_wrapper=LocalKeyWrapper.from_file(args.key_file))
    if args.password_file is not None:
        password = args.password_file.read_text().rstrip("\r\n")
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise _Usage(f"no passphrase: set {PASSWORD_ENV} or pass --password-file")
    return Repository.open(storage, passphrase=password)


def _backup(args: argparse.Namespace) -> dict[str, Any]:
    if args.pvc.count("/") != 1:
        raise _Usage(f"--pvc must be namespace/name, got {args.pvc!r}")
    namespace, name = args.pvc.split("/")
    with _open(args) as repository:
        record = export_directory(repository, args.source, namespace=namespace, pvc=name,
                                  storage_class=args.storage_class, size_bytes=parse_quantity(args.size),
                                  restore_point_id=args.restore_point, method=args.method)
    return {"ok": True, "volume": asdict(record)}


def _restore(args: argparse.Namespace) -> dict[str, Any]:
    with _open(args) as repository:
        result = restore_volume(repository, args.snapshot, args.target, path=args.path, verify=args.verify)
    return {"ok": True, **result}


def run(argv: Sequence[str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run one mover command; return (exit code, the JSON document to print)."""
    try:
        args = _parser().parse_args(argv)
        return 0, (_backup(args) if args.command == "backup" else _restore(args))
    except _Usage as exc:
        return 2, {"ok": False, "error": str(exc)}
    except RestoreError as exc:
        restored = exc.result
        return 1, {"ok": False, "error": str(exc), "failures": exc.failures,
                   "files": restored.files if restored is not None else None,
                   "bytes": restored.bytes if restored is not None else None}
    except VolumeVerificationError as exc:
        return 1, {"ok": False, "error": str(exc), "mismatches": exc.mismatches[:50]}
    except (VolumeError, LocationError, RepositoryError, StorageError) as exc:
        return 1, {"ok": False, "error": str(exc)}
    except OSError as exc:  # a password or key file that cannot be read
        return 1, {"ok": False, "error": f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")}


def main(argv: Sequence[str] | None = None) -> int:
    code, doc = run(argv)
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
