"""Compute a restore point's signals and verdict: the step the backup flow runs after the catalog rows.

Inputs come from the repository (volume snapshots, through kubekeep.signals.volume)
and from the catalog (previous points, their signals, acknowledgements and object
rows, through :class:`CatalogHistory`), so the step runs after the restore point
is committed and its catalog rows are written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
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

from .objects import ObjectKey, ObjectSignals, catalog_object_keys, object_signals
from .record import PointSignals
from .rows import points_from_rows
from .score import SignalPolicy, score_point, select_baseline
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


class CatalogHistory:
    """:class:`PointHistory` answered by the catalog of the location.

    Each table is read once per app and kept for the life of the object (one signals
    step): the restore points of the app, their volumes, their signals, the acknowledgements.
    :meth:`prefetch` reads them two stages of a few at once: each read lists and fetches catalog
    files, mostly waiting on storage, so overlapping them cuts the step's wall-clock time.
    """

    #: catalog reads at once in :meth:`prefetch`
    READERS = 4

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._points: dict[str, list[tuple[str, datetime, str]]] = {}
        self._volumes: dict[str, dict[tuple[str, str, str], str]] = {}
        self._signals: dict[tuple[str, datetime, int], list[PointSignals]] = {}
        self._acks: dict[str, set[str]] = {}
        self._objects: dict[str, list[ObjectKey]] = {}

    def prefetch(self, point: PointRef, limit: int) -> None:
        with ThreadPoolExecutor(self.READERS, thread_name_prefix="signals-catalog") as pool:
            first: list[Future[Any]] = [pool.submit(self._app_points, point.app),
                     pool.submit(self.signals_before, point.app, point.finished_at, limit),
                     pool.submit(self.acknowledged, point.app)]
            if point.objects_complete:
                first.append(pool.submit(self.object_keys, point.id))
            for future in first:
                future.result()
            previous = self.previous_point(point.app, point.finished_at)
            second: list[Future[Any]] = [pool.submit(self._app_volumes, point.app)] if point.volumes else []
            if previous and point.objects_complete:
                second.append(pool.submit(self.object_keys, previous))
            for future in second:
                future.result()

    def _app_points(self, app: str) -> list[tuple[str, datetime, str]]:
        """(id, finished_at, status) of every point of ``app``, newest first."""
        if app not in self._points:
            table = list_restore_points_table(self.catalog, app=app, statuses=None,
                                              columns=["id", "finished_at", "status"])
            self._points[app] = list(zip(table["id"].to_pylist(), table["finished_at"].to_pylist(),
                                         table["status"].to_pylist(), strict=True))
        return self._points[app]

    def _app_volumes(self, app: str) -> dict[tuple[str, str, str], str]:
        """(restore point id, namespace, pvc) -> snapshot id, for the volumes with data of ``app``'s points."""
        if app not in self._volumes:
            ids = [p[0] for p in self._app_points(app)]
            rows = self.catalog.read(TableName.RESTORE_POINT_VOLUMES,
                                     filter=pc.field("restore_point_id").isin(ids),
                                     columns=["restore_point_id", "namespace", "pvc", "snapshot_id"]) if ids else None
            found: dict[tuple[str, str, str], str] = {}
            if rows is not None:
                for point_id, ns, pvc, sid in zip(*(rows[c].to_pylist() for c in rows.column_names), strict=True):
                    if sid:
                        found[(point_id, ns, pvc)] = sid
            self._volumes[app] = found
        return self._volumes[app]

    def previous_point(self, app: str, before: datetime) -> str | None:
        for point_id, finished, status in self._app_points(app):
            if finished < before and status == RestorePointStatus.SUCCEEDED:
                return point_id
        return None

    def previous_volume_snapshot(self, app: str, volume: VolumeRef, before: datetime) -> str | None:
        volumes = self._app_volumes(app)
        for point_id, finished, _status in self._app_points(app):
            if finished < before:
                sid = volumes.get((point_id, volume.namespace, volume.pvc))
                if sid:
                    return sid
        return None

    def signals_before(self, app: str, before: datetime, limit: int) -> list[PointSignals]:
        if (app, before, limit) not in self._signals:
            self._signals[(app, before, limit)] = points_from_rows(
                list_signals(self.catalog, app=app, finished_before=before, limit_points=limit))
        return self._signals[(app, before, limit)]

    def acknowledged(self, app: str) -> set[str]:
        if app not in self._acks:
            self._acks[app] = acknowledged_points(self.catalog, app)
        return self._acks[app]

    def object_keys(self, restore_point_id: str) -> Iterable[ObjectKey]:
        """The point's object keys (kept: one point's keys, as its catalog rows are read whole anyway)."""
        if restore_point_id not in self._objects:
            self._objects[restore_point_id] = list(catalog_object_keys(self.catalog, restore_point_id))
        return self._objects[restore_point_id]


def _previous_volume(history: Sequence[PointSignals], snapshot_id: str) -> VolumeSignals | None:
    for past in history:
        for v in past.volumes:
            if v.snapshot_id == snapshot_id:
                return v
    return None


def compute_signals(repo: SnapshotSource, history: PointHistory, point: PointRef, policy: SignalPolicy,
                    *, now: datetime | None = None) -> PointSignals:
    """Measure ``point`` against the app's previous points and score it against its baseline."""
    started = time.perf_counter()
    if point.finished_at.tzinfo is None:
        raise ValueError("finished_at must be timezone-aware")
    # a few more than the baseline needs: suspect points are skipped when it is selected
    limit = policy.baseline_points * 2 + 10
    history.prefetch(point, limit)
    past = history.signals_before(point.app, point.finished_at, limit)
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
    baseline = select_baseline(past, history.acknowledged(point.app), policy)
    verdict = score_point(signals, baseline, policy)
    signals.score, signals.suspect, signals.reasons = verdict.score, verdict.suspect, verdict.reasons
    signals.subject_scores = verdict.subject_scores
    signals.baseline = [b.restore_point_id for b in baseline]
    if not point.objects_complete:
        signals.reasons.append("objects not compared: some resource types could not be listed in this point")
    signals.seconds = time.perf_counter() - started
    return signals
