"""Restore point ids: ``<app>-<YYYYmmddTHHMMSSZ>-<hex>`` (the backup names its point when it starts).

The form lets a reader find an app's points, in time order, from the catalog's file names alone
(kubekeep.signals reads only the newest points of an app this way, docs/signals.md).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_POINT_ID = re.compile(r"^(?P<app>.+)-(?P<stamp>\d{8}T\d{6}Z)-(?P<nonce>[0-9a-f]+)$")


def id_app(app: str) -> str:
    """The app as its restore point ids spell it (characters other than letters, digits, ``-_.`` folded)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in app)[:80].strip("-.") or "app"


def new_restore_point_id(app: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime(STAMP_FORMAT)
    return f"{id_app(app)}-{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PointIdParts:
    app: str
    stamp: str  # sorts in time order


def parse_point_id(restore_point_id: str) -> PointIdParts | None:
    """The app and time stamp of an id in the backup's form; None for any other id."""
    match = _POINT_ID.match(restore_point_id)
    return PointIdParts(match["app"], match["stamp"]) if match else None
