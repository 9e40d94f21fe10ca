"""The restore-point index shown in the Prefect UI: one row per restore point of a location.

Rows are plain strings (a Prefect table artifact shows them as they are): when, status,
size, objects, verified, suspect, locked until, DR copies. The verdicts come from the
catalog queries of the features that make them (verification, signals, DR copy) and are
passed in, so a location without them shows ``—``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from kubekeep.catalog import RestorePoint

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


def restore_point_rows(points: Iterable[RestorePoint], *, verified: Mapping[str, bool] | None = None,
                       suspect: Collection[str] = (), copies: Mapping[str, Sequence[str]] | None = None,
                       now: datetime | None = None) -> list[RestorePointRow]:
    """Rows for ``points`` in the order given (newest first from the catalog queries).

    ``verified``: restore point id -> passed (newest verdict); ``suspect``: ids flagged and not
    acknowledged; ``copies``: id -> where DR copies of it are. A lock that has expired shows as such.
    """
    verified = verified or {}
    copies = copies or {}
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
            suspect="SUSPECT" if p.id in suspect else "",
            locked_until=lock, dr_copies=", ".join(copies.get(p.id, ())) or NONE))
    return rows


def point_choice(row: RestorePointRow) -> str:
    """The text a restore offers for this point in a pick list: the id first (the choice is
    parsed back with :func:`point_from_choice`), then what helps to choose."""
    notes = [row.time]
    if row.verified != NONE:
        notes.append(f"verified {row.verified}")
    if row.suspect:
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

