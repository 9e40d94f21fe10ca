"""Signals and acknowledgements in the repository (the source of truth) and their catalog rows.

Write order, as for every other record (docs/catalog-schema.md): the record is a
small snapshot in the repository first — sealed with the key, locked like the
restore point it judges — then the catalog row derived from it. Losing the
catalog loses nothing: :func:`rebuild_signals` writes back the rows of every
record the catalog lacks. Acknowledgements are user decisions that cannot be
recomputed, which is why they are records too.

- signals: tag ``kubekeep:signals`` (+ ``app:<app>``), stream ``signals.json``
  (a :class:`~kubekeep.signals.record.PointSignals`), metadata ``restore_point``, ``app``;
- acknowledgements: tag ``kubekeep:signal-ack`` (+ ``app:<app>``), stream
  ``signal-ack.json``, metadata ``restore_point``, ``app``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc

from kubekeep.catalog import (
    Catalog,
    SignalAck,
    TableName,
    acknowledged_points,
    list_signal_acks,
    list_signals,
)
from kubekeep.catalog.records import signal_acks_table, signals_table
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention

from .record import PointSignals
from .rows import signal_rows

SIGNALS_STREAM = "signals.json"
SIGNALS_TAG = "kubekeep:signals"
ACK_STREAM = "signal-ack.json"
ACK_TAG = "kubekeep:signal-ack"
ACK_FORMAT = 1


class SignalsError(Exception):
    """A signals operation that cannot be done as asked (the message says why, in one line)."""


def write_signals(repo: Repository, signals: PointSignals, *, retention: Retention | None = None) -> str:
    """Store the record in the repository; return its snapshot id."""
    result = repo.backup(streams={SIGNALS_STREAM: [signals.to_json()]},
                         tags=[SIGNALS_TAG, f"app:{signals.app}"],
                         metadata={"restore_point": signals.restore_point_id, "app": signals.app},
                         retention=retention)
    return result.snapshot_id


def read_signals(repo: Repository, snapshot_id: str) -> PointSignals:
    return PointSignals.from_json(b"".join(repo.read_stream(snapshot_id, SIGNALS_STREAM)))


def find_signals(repo: Repository, restore_point_id: str) -> PointSignals | None:
    """The newest signals record of a restore point in the repository (reads every snapshot's manifest)."""
    for info in reversed(repo.snapshots(tags=[SIGNALS_TAG])):
        if info.metadata.get("restore_point") == restore_point_id:
            return read_signals(repo, info.id)
    return None


def record_signals(repo: Repository, catalog: Catalog, signals: PointSignals, *,
                   retention: Retention | None = None, check: bool = True) -> bool:
    """Repository record first, then the catalog rows; False when the catalog has the point's rows already
    (``check=False``: the caller has just looked).

    A step retried after its record was written but before the rows were writes a second
    record with the rows of that second one; :func:`rebuild_signals` takes the newest record
    of a point, so a rebuilt catalog says the same.
    """
    if check and list_signals(catalog, restore_point_ids=[signals.restore_point_id], volumes=False):
        return False
    write_signals(repo, signals, retention=retention)
    catalog.add_signals(signal_rows(signals))
    return True


@dataclass
class Acknowledgement:
    restore_point_id: str
    app: str
    acknowledged_at: str
    acknowledged_by: str | None = None
    reason: str | None = None
    format: int = ACK_FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Acknowledgement:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != ACK_FORMAT:
            raise ValueError("unsupported acknowledgement record")
        def text(name: str, required: bool) -> str | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or (required and not value):
                raise ValueError(f"acknowledgement record: {name} must be a string")
            return value

        return cls(restore_point_id=str(text("restore_point_id", True)), app=str(text("app", True)),
                   acknowledged_at=str(text("acknowledged_at", True)), acknowledged_by=text("acknowledged_by", False),
                   reason=text("reason", False))

    def row(self, snapshot_id: str | None) -> SignalAck:
        return SignalAck(restore_point_id=self.restore_point_id, app=self.app,
                         acknowledged_at=datetime.fromisoformat(self.acknowledged_at),
                         acknowledged_by=self.acknowledged_by, reason=self.reason, snapshot_id=snapshot_id)


def acknowledge(repo: Repository, catalog: Catalog, restore_point_id: str, *, by: str | None = None,
                reason: str | None = None, now: datetime | None = None,
                retention: Retention | None = None) -> SignalAck:
    """Acknowledge a suspect point as a false positive: it is no longer suspect and joins the baseline."""
    rows = list_signals(catalog, restore_point_ids=[restore_point_id], volumes=False)
    if not rows:
        known = catalog.read(TableName.RESTORE_POINTS, filter=pc.field("id") == restore_point_id, columns=["id"])
        if not known.num_rows:
            raise SignalsError(f"no restore point {restore_point_id} in {catalog.storage.url}")
        raise SignalsError(f"restore point {restore_point_id} has no signals (it was not scored): "
                           "nothing to acknowledge")
    point = rows[0]
    if not point.suspect:
        raise SignalsError(f"restore point {restore_point_id} is not suspect (score {point.score:.1f} < "
                           f"threshold {point.threshold:g}): nothing to acknowledge")
    if restore_point_id in acknowledged_points(catalog, point.app):
        done = next(a for a in list_signal_acks(catalog, app=point.app) if a.restore_point_id == restore_point_id)
        who = f" by {done.acknowledged_by}" if done.acknowledged_by else ""
        raise SignalsError(f"restore point {restore_point_id} was acknowledged already "
                           f"({done.acknowledged_at.isoformat(timespec='seconds')}{who})")
    ack = Acknowledgement(restore_point_id=restore_point_id, app=point.app,
                          acknowledged_at=(now or datetime.now(UTC)).isoformat(), acknowledged_by=by, reason=reason)
    result = repo.backup(streams={ACK_STREAM: [ack.to_json()]}, tags=[ACK_TAG, f"app:{point.app}"],
                         metadata={"restore_point": restore_point_id, "app": point.app}, retention=retention)
    row = ack.row(result.snapshot_id)
    catalog.add_signal_ack(row)
    return row


@dataclass(frozen=True)
class SignalsRebuild:
    points_written: int
    acks_written: int
    #: records that could not be read (one line each)
    problems: tuple[str, ...] = ()


def _records(repo: Repository, tag: str, problems: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """(restore point id, snapshot id, stream bytes) of every record with ``tag``, newest first."""
    stream = SIGNALS_STREAM if tag == SIGNALS_TAG else ACK_STREAM
    for info in reversed(repo.snapshots(tags=[tag], problems=problems)):
        point_id = info.metadata.get("restore_point")
        if not point_id:
            continue
        try:
            yield point_id, info.id, b"".join(repo.read_stream(info.id, stream))
        except Exception as exc:  # noqa: BLE001 - one unreadable record must not stop the rebuild
            problems.append(f"{tag} record {info.id}: {exc}")


def rebuild_signals(repo: Repository, catalog: Catalog, *, batch_points: int = 5000) -> SignalsRebuild:
    """Write the ``signals`` and ``signal_acks`` rows of every record the catalog lacks (idempotent)."""
    problems: list[str] = []
    known = {r.restore_point_id for r in list_signals(catalog, volumes=False)}
    written = 0
    batch: list[PointSignals] = []

    def flush_points() -> None:
        nonlocal written
        if not batch:
            return
        rows = [row for p in batch for row in signal_rows(p)]
        name = "rebuild-" + hashlib.sha256("\n".join(sorted(p.restore_point_id for p in batch)).encode()
                                           ).hexdigest()[:24]
        catalog.write_part(TableName.SIGNALS, signals_table(rows), name=name)
        written += len(batch)
        batch.clear()

    for point_id, _sid, raw in _records(repo, SIGNALS_TAG, problems):
        if point_id in known:
            continue  # in the catalog already, or an older record of the same point (a retried step)
        try:
            batch.append(PointSignals.from_json(raw))
        except (ValueError, TypeError) as exc:
            problems.append(f"signals record of {point_id}: {exc}")
            continue
        known.add(point_id)
        if len(batch) >= batch_points:
            flush_points()
    flush_points()
    acked = acknowledged_points(catalog)
    acks: list[SignalAck] = []
    for point_id, sid, raw in _records(repo, ACK_TAG, problems):
        if point_id in acked:
            continue
        try:
            acks.append(Acknowledgement.from_json(raw).row(sid))
        except (ValueError, TypeError) as exc:
            problems.append(f"acknowledgement record of {point_id}: {exc}")
            continue
        acked.add(point_id)
    if acks:
        name = "rebuild-" + hashlib.sha256("\n".join(sorted(a.restore_point_id for a in acks)).encode()
                                           ).hexdigest()[:24]
        catalog.write_part(TableName.SIGNAL_ACKS, signal_acks_table(acks), name=name)
    return SignalsRebuild(written, len(acks), tuple(problems))
