"""Names the Prefect UI lists: flow run names and artifact keys.

Run names say what a run does at a glance in the runs list (``backup shop
2026-11-29T02:00Z``, ``restore shop@2026-11-29T02:00Z→shop-copy (dry run)``).
Artifact keys are stable per app and kind, so the Artifacts page keeps one entry per
key with its history; Prefect accepts only lowercase letters, digits and dashes in a
key (``^[a-z0-9-]*$``), so everything else is folded into dashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

#: longer keys are cut and end in a hash of the whole, so two long keys never collide
ARTIFACT_KEY_MAX = 96

_NOT_KEY = re.compile(r"[^a-z0-9]+")
#: restore point ids are ``<app>-<YYYYmmddTHHMMSSZ>-<hex>`` (kubekeep.restorepoint.ids.new_restore_point_id)
_POINT_ID = re.compile(r"^(?P<app>.+)-(?P<stamp>\d{8}T\d{6}Z)-(?P<nonce>[0-9a-f]+)$")


def artifact_key(kind: str, *parts: str) -> str:
    """A Prefect artifact key for ``kind`` and the parts that make it unique (app, location, id...).

    >>> artifact_key("restore-points", "Shop_EU")
    'restore-points-shop-eu'
    """
    words = [_NOT_KEY.sub("-", p.lower()).strip("-") for p in (kind, *parts)]
    key = "-".join(w for w in words if w)
    if not key:
        raise ValueError("an artifact key needs at least one letter or digit")
    if len(key) > ARTIFACT_KEY_MAX:
        digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
        key = key[: ARTIFACT_KEY_MAX - len(digest) - 1].rstrip("-") + "-" + digest
    return key


def _minute(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("run names need a timezone-aware time")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def backup_run_name(app: str, at: datetime) -> str:
    """``backup shop 2026-11-29T02:00Z`` (the time in UTC, to the minute)."""
    return f"backup {app} {_minute(at)}"


def point_label(restore_point: str) -> str:
    """A restore point id as people read it: ``shop@2026-11-29T02:00Z`` (the id itself if it is not
    in the ``<app>-<stamp>-<hex>`` form backups give it)."""
    match = _POINT_ID.match(restore_point)
    if not match:
        return restore_point
    stamp = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return f"{match['app']}@{_minute(stamp)}"


def restore_run_name(*, app: str | None = None, restore_point: str | None = None,
                     namespace_map: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                     dry_run: bool = False) -> str:
    """``restore shop→shop-copy (dry run)``: what is restored (a restore point, else the latest of an app)
    and where to (the mapped namespaces, in order; none: in place)."""
    source = point_label(restore_point) if restore_point else (app or "latest")
    pairs = list(namespace_map.items() if isinstance(namespace_map, Mapping) else namespace_map or ())
    targets = list(dict.fromkeys(target for _, target in pairs))
    name = f"restore {source}" + (f"→{', '.join(targets)}" if targets else "")
    return name + (" (dry run)" if dry_run else "")
