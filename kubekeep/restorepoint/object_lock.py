"""Immutability: every object a restore point needs carries a retention date at least as late as asked.

Packs written by the run already carry it (written with retention); packs it
reuses through deduplication were written earlier with an earlier date, so
they are extended here. The config and key slots are locked too: without
them nothing in the location can be decrypted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kubekeep.repo.format import pack_key
from kubekeep.repo.maintenance import _walk_snapshot
from kubekeep.repo.repository import Repository, Retention
from kubekeep.repo.storage import ObjectNotFoundError, StorageError

CONFIG_AND_KEYS = ("config", "keys/")
SNAPSHOTS_PREFIX = "snapshots/"


@dataclass
class LockReport:
    retain_until: datetime
    mode: str
    objects: int = 0
    errors: list[str] = field(default_factory=list)


def restore_point_keys(repo: Repository, snapshot_ids: Iterable[str]) -> tuple[set[str], list[str]]:
    """Storage keys of every object the snapshots need (snapshot docs, packs, config, key slots)."""
    index = repo.load_index(reload=True)
    keys: set[str] = {"config"} | {i.key for i in repo.storage.list("keys/")}
    errors: list[str] = []
    seen: set[bytes] = set()

    def visit(blob_id: bytes, _blob_type: int) -> None:
        loc = index.lookup(blob_id)
        if loc is None:
            errors.append(f"blob {blob_id.hex()[:12]} is not in the index")
        else:
            keys.add(pack_key(loc.pack_id))

    for sid in snapshot_ids:
        keys.add(SNAPSHOTS_PREFIX + sid)
        _walk_snapshot(repo, repo.load_snapshot(sid), index, visit, seen, errors)
    return keys, errors


def apply_retention(repo: Repository, snapshot_ids: Iterable[str], retention: Retention) -> LockReport:
    mode, until = retention
    keys, errors = restore_point_keys(repo, list(snapshot_ids))
    report = LockReport(retain_until=until, mode=mode.value, errors=errors)
    for key in sorted(keys):
        try:
            in_force = repo.storage.set_retention(key, mode, until)
        except ObjectNotFoundError:
            report.errors.append(f"{key}: missing")
            continue
        except StorageError as exc:
            report.errors.append(f"{key}: {exc}")
            continue
        if in_force < until:
            report.errors.append(f"{key}: retention in force ends {in_force.isoformat()}, before {until.isoformat()}")
        else:
            report.objects += 1
    return report
