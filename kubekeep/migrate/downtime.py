"""Downtime of a cutover: from the moment the source stops serving (quiesce starts) until the target is ready.

:class:`DowntimeClock` measures it stage by stage (quiesce, final backup,
restore, volume data, readiness) and returns a :class:`~kubekeep.catalog.Downtime`,
the record kept in the catalog's ``restores`` table (column ``downtime``,
docs/catalog-schema.md) and in the restore's report. Durations come from a
monotonic clock (a wall-clock step during the cutover does not distort them);
timestamps are wall-clock UTC for the reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from kubekeep.catalog import Downtime, DowntimeStage


class CutoverStage(StrEnum):
    """The stages of a cutover, in order (others may be recorded too)."""

    #: pre-quiesce hooks, scale the source's workloads to zero, wait until their pods are gone
    QUIESCE = "quiesce"
    #: the final incremental backup of the quiesced source
    FINAL_BACKUP = "final-backup"
    #: objects created on the target, phase by phase (volume data included when the restore fills it)
    RESTORE = "restore"
    #: volume data brought up to the final snapshot (the delta after the pre-seed) and verified
    VOLUME_DATA = "volume-data"
    #: the target's workloads Ready
    READY = "ready"


class DowntimeClock:
    """Measures a cutover: :meth:`start` when the source stops serving, :meth:`stage` around each step,
    :meth:`ready` when the target is ready, then :meth:`result`.

    ``monotonic`` and ``now`` are injectable for tests.
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._monotonic = monotonic
        self._now = now
        self._start: tuple[datetime, float] | None = None
        self._opened: tuple[datetime, float] | None = None  # start() itself, once began_at() moved the start
        self._ready: float | None = None
        self._stages: list[DowntimeStage] = []

    @property
    def started(self) -> bool:
        return self._start is not None

    def start(self) -> None:
        if self._start is not None:
            raise RuntimeError("the downtime clock was already started")
        self._start = (self._now(), self._monotonic())

    def began_at(self, at: datetime) -> None:
        """The downtime began at ``at``, a wall time between :meth:`start` and now: the quiesce inside the first
        stage (a cutover's final backup takes its manifests while the source still serves, then scales it to
        zero and records when). The stages keep their whole length; only the downtime's start moves."""
        if self._start is None:
            raise RuntimeError("began_at() before start()")
        wall, mono = self._opened if self._opened else self._start
        offset = (at - wall).total_seconds()
        if offset < 0:
            raise ValueError(f"the downtime cannot begin at {at.isoformat()}, before the clock started "
                             f"({wall.isoformat()})")
        if mono + offset > self._monotonic():
            raise ValueError(f"the downtime cannot begin at {at.isoformat()}, after now")
        self._opened = (wall, mono)
        self._start = (at, mono + offset)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage (recorded also when it raises: a failed stage still took that long)."""
        if self._start is None:
            raise RuntimeError(f"stage {name!r}: the downtime clock was not started (start() at quiesce)")
        wall, mono = self._now(), self._monotonic()
        try:
            yield
        finally:
            took = self._monotonic() - mono
            self._stages.append(DowntimeStage(name, wall, wall + timedelta(seconds=took), took))

    def ready(self) -> None:
        if self._start is None:
            raise RuntimeError("ready() before start()")
        self._ready = self._monotonic()

    def result(self) -> Downtime:
        if self._start is None:
            raise RuntimeError("the downtime clock was not started")
        started_wall, started_mono = self._start
        if self._ready is None:
            return Downtime(started_wall, None, None, tuple(self._stages))
        seconds = self._ready - started_mono
        return Downtime(started_wall, started_wall + timedelta(seconds=seconds), seconds, tuple(self._stages))
