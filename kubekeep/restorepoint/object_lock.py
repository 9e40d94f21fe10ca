"""Immutability: every object a restore point needs carries a retention date at least as late as asked.

Packs written by the run already carry it (written with retention); packs it
reuses through deduplication were written earlier with an earlier date, so
they are extended here. The config and key slots are locked too: without
them nothing in the location can be decrypted. Which objects a restore point
needs is the repository's reachability API (kubekeep.repo.reachability).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kubekeep.repo.reachability import object_keys
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import ObjectNotFoundError, Retention, StorageError


@dataclass
class LockReport:
    retain_until: datetime
    mode: str
    objects: int = 0
    errors: list[str] = field(default_factory=list)


def apply_retention(repo: Repository, snapshot_ids: Iterable[str], retention: Retention) -> LockReport:
    mode, until = retention
    keys, errors = object_keys(repo, list(snapshot_ids))
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
