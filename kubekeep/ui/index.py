"""The restore-point index shown in the Prefect UI: one row per restore point of a location.

Rows are plain strings (a Prefect table artifact shows them as they are): when, status,
size, objects, verified, suspect, locked until, DR copies. The verdicts come from the
catalog tables of the features that make them (``verifications``, ``signals`` and
``signal_acks``, ``dr_copies``); :func:`index_rows` reads them, :func:`restore_point_rows`
turns the records into rows, and a point without a verdict shows ``—``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from kubekeep.catalog import (
    POINT_SUBJECT,
    Catalog,
    DrCopyRecord,
    RestorePoint,
    SignalRow,
    acknowledged_points,
    list_dr_copies,
    list_restore_points,
    list_signals,
    verified_points,
)

NONE = "—"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: int) -> str:
    """``1.5 GiB``: binary units, three significant digits."""
    if count < 0:
        raise ValueError("a byte count is never negative")
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{count} B"
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class RestorePointRow:
    """One restore point as the UI shows it (every field a string)."""

    id: str
    time: str
    status: str
    size: str
    objects: str
    verified: str
    suspect: str
    locked_until: str
    dr_copies: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _suspect(signal: SignalRow | None, acknowledged: bool) -> str:
    if signal is None:
        return NONE
    if not signal.suspect:
        return f"no (score {signal.score:.2f})"
    if acknowledged:
        return f"acknowledged (score {signal.score:.2f})"
    return f"SUSPECT (score {signal.score:.2f} >= {signal.threshold:.2f})"


def restore_point_rows(points: Iterable[RestorePoint], *, verified: Mapping[str, bool] | None = None,
                       signals: Iterable[SignalRow] = (), acknowledged: Collection[str] = (),
                       copies: Iterable[DrCopyRecord] = (), now: datetime | None = None) -> list[RestorePointRow]:
    """Rows for ``points`` in the order given (newest first from the catalog queries).

    ``verified``: restore point id -> passed (its newest conclusive verdict, ``verified_points``);
    ``signals``: the points' rows of ``signals`` (volume rows are ignored); ``acknowledged``: ids whose
    suspicion was acknowledged as a false positive; ``copies``: rows of ``dr_copies``. A lock that has
    expired shows as such.
    """
    verified = verified or {}
    scored = {s.restore_point_id: s for s in signals if s.subject == POINT_SUBJECT}
    where: dict[str, list[str]] = {}
    for c in copies:
        where.setdefault(c.restore_point_id, []).append(c.destination)
    now = now or datetime.now(UTC)
    rows = []
    for p in points:
        size = human_bytes(p.logical_bytes)
        if p.stored_bytes:
            size += f" ({human_bytes(p.stored_bytes)} new)"
        verdict = verified.get(p.id)
        lock = NONE
        if p.retain_until is not None:
            lock = _when(p.retain_until) + (" (expired)" if p.retain_until <= now else "")
        status = p.status if not p.status_reason else f"{p.status}: {p.status_reason}"
        rows.append(RestorePointRow(
            id=p.id, time=_when(p.finished_at), status=status[:200], size=size,
            objects=f"{_count(p.object_count, 'object')}, {_count(p.volume_count, 'volume')}",
            verified=NONE if verdict is None else ("passed" if verdict else "FAILED"),
            suspect=_suspect(scored.get(p.id), p.id in acknowledged),
            locked_until=lock, dr_copies=", ".join(sorted(set(where.get(p.id, ())))) or NONE))
    return rows


def index_rows(catalog: Catalog, app: str, *, limit: int | None = None,
               now: datetime | None = None) -> list[RestorePointRow]:
    """The index of ``app`` at one location: its newest ``limit`` restore points (any status) with their
    verdicts, read from the location's catalog."""
    points = list_restore_points(catalog, app=app, statuses=None, limit=limit)
    if not points:
        return []
    ids = [p.id for p in points]
    return restore_point_rows(
        points, verified=verified_points(catalog, app),
        signals=list_signals(catalog, app=app, restore_point_ids=ids, volumes=False),
        acknowledged=acknowledged_points(catalog, app), copies=list_dr_copies(catalog, app=app, restore_point_ids=ids),
        now=now)


def point_choice(row: RestorePointRow) -> str:
    """The text a restore offers for this point in a pick list: the id first (the choice is
    parsed back with :func:`point_from_choice`), then what helps to choose."""
    notes = [row.time]
    if row.verified != NONE:
        notes.append(f"verified {row.verified}")
    if row.suspect.startswith("SUSPECT"):
        notes.append("suspect")
    if not row.status.startswith("succeeded"):
        notes.append(row.status.split(":", 1)[0])
    return f"{row.id} ({', '.join(notes)})"


def point_from_choice(choice: str) -> str:
    """The restore point id of a :func:`point_choice` text (or of a bare id)."""
    point = choice.split(" (", 1)[0].strip()
    if not point:
        raise ValueError("no restore point was chosen")
    return point

