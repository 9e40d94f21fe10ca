"""Compute a restore point's signals and verdict: the step the backup flow runs after the catalog rows.

Inputs come from the repository (volume snapshots, through kubekeep.signals.volume)
and from the catalog (previous points, their signals, acknowledgements and object
rows, through :class:`CatalogHistory`), so the step runs after the restore point
is committed and its catalog rows are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow.compute as pc

from kubekeep.catalog import (
    Catalog,
    RestorePointStatus,
    TableName,
    acknowledged_points,
    list_restore_points_table,
    list_signals,
)
from kubekeep.restorepoint.ids import id_app, parse_point_id

from .carry import Candidate, candidate, carry, decode, encode
from .objects import CatalogObjectKeys, ObjectKey, ObjectSignals, object_signals, read_object_keys
from .record import PointSignals
from .rows import points_from_rows
from .score import SignalPolicy, score_against, select_baseline
from .volume import SnapshotSource, VolumeSignals, volume_signals


@dataclass(frozen=True)
class VolumeRef:
    namespace: str
    pvc: str
    snapshot_id: str

    @property
    def subject(self) -> str:
        return f"{self.namespace}/{self.pvc}"


@dataclass(frozen=True)
class PointRef:
    """What the signals step needs to know about the restore point it judges."""

    id: str
    app: str
    finished_at: datetime
    #: volumes with data in this point (volumes that failed have no snapshot and are left out)
    volumes: tuple[VolumeRef, ...] = ()
    #: False when some resource types could not be listed: a missing kind would look deleted
    objects_complete: bool = True


class PointHistory(Protocol):
    """The app's earlier restore points, as the signals step reads them."""

    def previous_point(self, app: str, before: datetime) -> str | None:
        """The newest succeeded point of ``app`` finished before ``before`` (the objects' comparison)."""
        ...

    def previous_volume_snapshot(self, app: str, volume: VolumeRef, before: datetime) -> str | None:
        """The snapshot of the same PVC in the newest earlier point of ``app`` that has one."""
        ...

    def signals_before(self, app: str, before: datetime, limit: int) -> list[PointSignals]:
        """The newest ``limit`` scored points of ``app`` before ``before``, newest first."""
        ...

    def acknowledged(self, app: str) -> set[str]: ...

    def object_keys(self, restore_point_id: str) -> Iterable[ObjectKey]: ...

    def prefetch(self, point: PointRef, limit: int) -> None:
        """Read ahead what judging ``point`` needs (an implementation may do nothing)."""
        ...

    def predecessor_signals(self, point: PointRef) -> PointSignals | None:
        """The signals of the app's newest point before ``point``, with the baseline candidates it carries
        (None: not scored, or the history cannot tell which point that is)."""
        ...

    def scored_outside(self, point: PointRef, candidates: Collection[str]) -> bool:
        """True when a point of the app older than ``point`` and no older than the oldest of ``candidates``,
        not one of them, has signals now (or may have: the history cannot tell)."""
        ...


class CatalogHistory:
    """:class:`PointHistory` answered by the catalog of the location, reading only the app's newest points.

    The catalog keeps one file per restore point and table until it is compacted. Reading a whole table
    would make the step grow with every point of every app, so :meth:`prefetch` first picks the app's
    newest points from the restore-point files' *names* (ids in the backup's ``<app>-<stamp>-<hex>`` form,
    kubekeep.restorepoint.ids): the judged point and the ``limit`` newest of its app before it (for the
    baseline's signals, when the predecessor carries no candidates: kubekeep.signals.carry; the first
    :attr:`TIERS` of them for the point and volume rows), plus every file whose id is in another form (its
    app cannot be told from its name; compacted parts are always read). Every read after that opens only
    those points' files (objects: the two points compared). A previous point or PVC snapshot older than
    the newest ones is looked up in the next tier's points, then in all of the app's points (rare).
    A point whose own id is not in the backup's form reads the tables whole, as before.

    Each answer is kept for the life of the object (one signals step). :meth:`prefetch` reads in two
    stages of a few reads at once: each read lists and fetches catalog files, mostly waiting on storage.
    """

    #: catalog reads at once in :meth:`prefetch`
    READERS = 4
    #: the app's newest points whose point and volume rows are read, widening tier by tier (the previous
    #: point, and the previous snapshot of each PVC, are almost always the newest; after the last tier all
    #: of the app's points are read)
    TIERS = (2, 8)

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._points: dict[str, list[tuple[str, datetime, str]]] = {}
        self._volumes: dict[str, dict[tuple[str, str, str], str]] = {}
        self._signals: dict[tuple[str, datetime, int], list[PointSignals]] = {}
        self._acks: dict[str, set[str]] = {}
        self._objects: dict[str, CatalogObjectKeys] = {}
        #: app -> the restore points whose signals are read (None: all) ...
        self._window: dict[str, list[str] | None] = {}
        #: ... and, tier by tier, the fewer whose point and volume rows are read (the last: None, all) ...
        self._tiers: dict[str, list[list[str] | None]] = {}
        #: ... and the oldest point of each tier when older ones were left out
        self._cutoffs: dict[str, list[str | None]] = {}
        #: app -> its points before the judged one, (stamp, id) newest first; ids in other forms
        self._mine: dict[str, list[tuple[str, str]]] = {}
        self._other: dict[str, list[str]] = {}
        self._predecessor: dict[str, PointSignals | None] = {}

    def window(self, point: PointRef, limit: int) -> list[str] | None:
        """The restore point ids whose one-point files judging ``point`` reads (None: every file)."""
        if point.app in self._window:
            return self._window[point.app]
        me = parse_point_id(point.id)
        if me is None or me.app != id_app(point.app):
            self._window[point.app] = None
            self._tiers[point.app], self._cutoffs[point.app] = [None], [None]
            return None
        mine: list[tuple[str, str]] = []
        other: list[str] = []
        for unit in self.catalog.units(TableName.RESTORE_POINTS):
            parts = parse_point_id(unit)
            if parts is None:
                other.append(unit)
            elif parts.app == me.app and parts.stamp <= me.stamp and unit != point.id:
                mine.append((parts.stamp, unit))
        mine.sort(reverse=True)
        self._mine[point.app], self._other[point.app] = mine, other
        self._window[point.app] = [point.id, *(unit for _, unit in mine[:limit]), *other]
        tiers: list[list[str] | None] = []
        cutoffs: list[str | None] = []
        for n in self.TIERS:
            tiers.append([point.id, *(unit for _, unit in mine[:n]), *other])
            cutoffs.append(mine[n - 1][1] if len(mine) > n else None)
            if cutoffs[-1] is None:
                break  # this tier holds every point of the app
        if cutoffs[-1] is not None:
            tiers.append(None)
            cutoffs.append(None)
        self._tiers[point.app], self._cutoffs[point.app] = tiers, cutoffs
        return self._window[point.app]

    def prefetch(self, point: PointRef, limit: int) -> None:
        """Stage one: the app's points, the acknowledgements, the point's objects and its predecessor's signals
        (with the baseline candidates it carries); stage two: the volumes, the previous point's objects, and
        the window's signals only when no candidates were carried."""
        self.window(point, limit)
        with ThreadPoolExecutor(self.READERS, thread_name_prefix="signals-catalog") as pool:
            carried = pool.submit(self.predecessor_signals, point)
            first: list[Future[Any]] = [pool.submit(self._app_points, point.app),
                                        pool.submit(self.acknowledged, point.app), carried]
            if point.objects_complete:
                first.append(pool.submit(self.object_keys, point.id))
            for future in first:
                future.result()
            previous = self.previous_point(point.app, point.finished_at)
            second: list[Future[Any]] = [pool.submit(self._app_volumes, point.app)] if point.volumes else []
            if previous and point.objects_complete:
                second.append(pool.submit(self.object_keys, previous))
            predecessor = carried.result()
            if predecessor is None or predecessor.carried is None:
                second.append(pool.submit(self.signals_before, point.app, point.finished_at, limit))
            for future in second:
                future.result()

    def predecessor_signals(self, point: PointRef) -> PointSignals | None:
        if point.app not in self._predecessor:
            self._predecessor[point.app] = self._read_predecessor(point)
        return self._predecessor[point.app]

    def _read_predecessor(self, point: PointRef) -> PointSignals | None:
        if self._window.get(point.app) is None or self._other[point.app] or not self._mine[point.app]:
            # not prefetched, or ids in other forms: which point came before cannot be told from the names
            return None
        newest = self._mine[point.app][0][1]
        found = points_from_rows(list_signals(self.catalog, restore_point_ids=[newest], candidates=True))
        if not found:
            return None
        signals = found[0]
        return signals if datetime.fromisoformat(signals.finished_at) < point.finished_at else None

    def scored_outside(self, point: PointRef, candidates: Collection[str]) -> bool:
        if self._window.get(point.app) is None or self._other[point.app]:
            return True
        stamps = [parsed.stamp for parsed in map(parse_point_id, candidates) if parsed is not None]
        if len(stamps) != len(candidates):
            return True
        oldest, skip = min(stamps, default=""), set(candidates)
        between = {unit for stamp, unit in self._mine[point.app] if stamp >= oldest and unit not in skip}
        if not between:
            return False
        units, others = self.catalog.unit_listing(TableName.SIGNALS)
        return bool(others) or not between.isdisjoint(units)

    def _tier_units(self, app: str, tier: int) -> list[str] | None:
        tiers = self._tiers.get(app, [None])
        return tiers[min(tier, len(tiers) - 1)]

    def _app_points(self, app: str, *, tier: int = 0) -> list[tuple[str, datetime, str]]:
        """(id, finished_at, status) of the app's points in ``tier`` (the last: all of them), newest first."""
        key = f"{tier}\0{app}"
        if key not in self._points:
            table = list_restore_points_table(self.catalog, app=app, statuses=None,
                                              columns=["id", "finished_at", "status"],
                                              units=self._tier_units(app, tier))
            self._points[key] = list(zip(table["id"].to_pylist(), table["finished_at"].to_pylist(),
                                         table["status"].to_pylist(), strict=True))
        return self._points[key]

    def _app_volumes(self, app: str, *, tier: int = 0) -> dict[tuple[str, str, str], str]:
        """(restore point id, namespace, pvc) -> snapshot id, for the volumes with data of ``app``'s points."""
        key = f"{tier}\0{app}"
        if key not in self._volumes:
            ids = [p[0] for p in self._app_points(app, tier=tier)]
            rows = self.catalog.read(TableName.RESTORE_POINT_VOLUMES,
                                     filter=pc.field("restore_point_id").isin(ids),
                                     columns=["restore_point_id", "namespace", "pvc", "snapshot_id"],
                                     units=ids) if ids else None
            found: dict[tuple[str, str, str], str] = {}
            if rows is not None:
                for point_id, ns, pvc, sid in zip(*(rows[c].to_pylist() for c in rows.column_names), strict=True):
                    if sid:
                        found[(point_id, ns, pvc)] = sid
            self._volumes[key] = found
        return self._volumes[key]

    def _newest_before(self, app: str, before: datetime, match: Callable[[str, str, int], bool]
                       ) -> tuple[str, int] | None:
        """(the newest point of ``app`` finished before ``before`` that ``match(id, status, tier)`` accepts, the
        tier it was found in).

        Tier by tier: an answer older than the oldest point of a tier (a point with an id in another form)
        could hide a newer one outside it, and no answer may be outside it, so then the next tier is read."""
        cutoffs = self._cutoffs.get(app, [None])
        for tier, cutoff in enumerate(cutoffs):
            rows = self._app_points(app, tier=tier)
            cutoff_time = None if cutoff is None else next(
                (finished for point_id, finished, _ in rows if point_id == cutoff), None)
            for point_id, finished, status in rows:
                if finished < before and match(point_id, status, tier):
                    if cutoff is None or cutoff_time is None or finished >= cutoff_time:
                        return point_id, tier
                    break
            if cutoff is None:
                return None
        return None

    def previous_point(self, app: str, before: datetime) -> str | None:
        found = self._newest_before(app, before, lambda _id, status, _tier: status == RestorePointStatus.SUCCEEDED)
        return found[0] if found else None

    def previous_volume_snapshot(self, app: str, volume: VolumeRef, before: datetime) -> str | None:
        def has(point_id: str, _status: str, tier: int) -> bool:
            return (point_id, volume.namespace, volume.pvc) in self._app_volumes(app, tier=tier)

        found = self._newest_before(app, before, has)
        if found is None:
            return None
        return self._app_volumes(app, tier=found[1])[(found[0], volume.namespace, volume.pvc)]

    def signals_before(self, app: str, before: datetime, limit: int) -> list[PointSignals]:
        """The newest ``limit`` scored points of ``app`` before ``before`` (among the window's points)."""
        if (app, before, limit) not in self._signals:
            self._signals[(app, before, limit)] = points_from_rows(
                list_signals(self.catalog, app=app, finished_before=before, limit_points=limit,
                             units=self._window.get(app)))
        return self._signals[(app, before, limit)]

    def acknowledged(self, app: str) -> set[str]:
        if app not in self._acks:
            self._acks[app] = acknowledged_points(self.catalog, app)
        return self._acks[app]

    def object_keys(self, restore_point_id: str) -> Iterable[ObjectKey]:
        """The point's object keys (kept as Arrow columns, ~45 B an object: prefetched, then iterated once)."""
        if restore_point_id not in self._objects:
            self._objects[restore_point_id] = read_object_keys(self.catalog, restore_point_id)
        return self._objects[restore_point_id]


def _previous_volume(history: Sequence[PointSignals], snapshot_id: str) -> VolumeSignals | None:
    for past in history:
        for v in past.volumes:
            if v.snapshot_id == snapshot_id:
                return v
    return None


def _carried(history: PointHistory, point: PointRef, policy: SignalPolicy
             ) -> tuple[PointSignals, list[Candidate]] | None:
    """The predecessor's signals and the baseline candidates it carries, when they stand for the window
    (kubekeep.signals.carry); None: read the window."""
    predecessor = history.predecessor_signals(point)
    if predecessor is None:
        return None
    carried = decode(predecessor.carried, policy)
    if not carried or carried[0].restore_point_id != predecessor.restore_point_id:
        return None  # none stored, or under another policy
    for ref in point.volumes:
        before = history.previous_volume_snapshot(point.app, ref, point.finished_at)
        if before is not None and _previous_volume([predecessor], before) is None:
            return None  # the PVC's previous snapshot is older than the predecessor: its signals are in the window
    if history.scored_outside(point, [c.restore_point_id for c in carried]):
        return None
    return predecessor, carried


def _history(history: PointHistory, point: PointRef, policy: SignalPolicy, limit: int
             ) -> tuple[list[PointSignals], list[Candidate]]:
    """(earlier scored points to look up previous volumes in, the baseline candidates newest first)."""
    carried = _carried(history, point, policy)
    if carried is not None:
        return [carried[0]], carried[1]
    past = history.signals_before(point.app, point.finished_at, limit)
    return past, [candidate(p, policy) for p in past]


def compute_signals(repo: SnapshotSource, history: PointHistory, point: PointRef, policy: SignalPolicy,
                    *, now: datetime | None = None) -> PointSignals:
    """Measure ``point`` against the app's previous points and score it against its baseline."""
    started = time.perf_counter()
    if point.finished_at.tzinfo is None:
        raise ValueError("finished_at must be timezone-aware")
    # a few more than the baseline needs: suspect points are skipped when it is selected
    limit = policy.baseline_points * 2 + 10
    history.prefetch(point, limit)
    past, candidates = _history(history, point, policy, limit)
    previous = history.previous_point(point.app, point.finished_at)
    objects: ObjectSignals | None = None
    if point.objects_complete:
        objects = object_signals(history.object_keys(previous) if previous else None,
                                 history.object_keys(point.id), previous_point_id=previous)
    volumes: list[VolumeSignals] = []
    for ref in point.volumes:
        before = history.previous_volume_snapshot(point.app, ref, point.finished_at)
        earlier = _previous_volume(past, before) if before else None
        volumes.append(volume_signals(
            repo, ref.snapshot_id, before, namespace=ref.namespace, pvc=ref.pvc,
            previous_extensions=earlier.extensions if earlier else None,
            previous_dedup_ratio=earlier.dedup_ratio if earlier else None))
    signals = PointSignals(restore_point_id=point.id, app=point.app, finished_at=point.finished_at.isoformat(),
                           previous_point_id=previous, volumes=volumes, objects=objects, threshold=policy.threshold,
                           computed_at=(now or datetime.now(UTC)).isoformat())
    acknowledged = history.acknowledged(point.app)
    baseline = select_baseline(candidates, acknowledged, policy)
    verdict = score_against(signals, [b.values for b in baseline], policy)
    signals.score, signals.suspect, signals.reasons = verdict.score, verdict.suspect, verdict.reasons
    signals.subject_scores = verdict.subject_scores
    signals.baseline = [b.restore_point_id for b in baseline]
    signals.carried = encode(carry(signals, candidates, acknowledged, policy), policy)
    if not point.objects_complete:
        signals.reasons.append("objects not compared: some resource types could not be listed in this point")
    signals.seconds = time.perf_counter() - started
    return signals
