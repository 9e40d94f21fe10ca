"""Downtime of a cutover: from the moment the source stops serving (quiesce starts) until the target is ready.

:class:`DowntimeClock` measures it stage by stage (quiesce, final backup,
restore, volume data, readiness); :class:`Downtime` is the record kept in the
catalog's ``restores`` table (column ``downtime``, docs/catalog-schema.md) and
in the migration's report. Durations come from a monotonic clock (a wall-clock
step during the cutover does not distort them); timestamps are wall-clock UTC
for the reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class Stage:
    name: str
    started_at: datetime
    finished_at: datetime
    seconds: float

    def to_row(self) -> dict[str, Any]:
        return {"name": self.name, "started_at": self.started_at, "finished_at": self.finished_at,
                "seconds": self.seconds}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Stage:
        return cls(str(row["name"]), _aware(row["started_at"]), _aware(row["finished_at"]), float(row["seconds"]))


@dataclass(frozen=True)
class Downtime:
    """The measured downtime of one cutover."""

    #: when the source stopped serving (quiesce started)
    started_at: datetime
    #: when the target was ready (None: it never was; the downtime has no end yet)
    ready_at: datetime | None
    #: seconds from ``started_at`` to ``ready_at`` on a monotonic clock (None with ``ready_at``)
    seconds: float | None
    stages: tuple[Stage, ...] = field(default_factory=tuple)

    def stage_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.stages:
            out[s.name] = out.get(s.name, 0.0) + s.seconds
        return out

    def ratio_to(self, baseline_seconds: float) -> float | None:
        """This downtime as a share of ``baseline_seconds`` (e.g. a cold backup + restore)."""
        if self.seconds is None or baseline_seconds <= 0:
            return None
        return self.seconds / baseline_seconds

    def to_row(self) -> dict[str, Any]:
        """The catalog's ``downtime`` struct (``restores`` table)."""
        return {"started_at": self.started_at, "ready_at": self.ready_at, "seconds": self.seconds,
                "stages": [s.to_row() for s in self.stages]}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Downtime:
        ready = row.get("ready_at")
        seconds = row.get("seconds")
        return cls(_aware(row["started_at"]), _aware(ready) if ready is not None else None,
                   float(seconds) if seconds is not None else None,
                   tuple(Stage.from_row(s) for s in row.get("stages") or ()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the restore report kept in the repository)."""
        return {"started_at": self.started_at.isoformat(),
                "ready_at": self.ready_at.isoformat() if self.ready_at else None, "seconds": self.seconds,
                "stages": [{**s.to_row(), "started_at": s.started_at.isoformat(),
                            "finished_at": s.finished_at.isoformat()} for s in self.stages]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Downtime:
        return cls.from_row({**data, "started_at": datetime.fromisoformat(str(data["started_at"])),
                             "ready_at": datetime.fromisoformat(str(data["ready_at"])) if data.get("ready_at")
                             else None,
                             "stages": [{**s, "started_at": datetime.fromisoformat(str(s["started_at"])),
                                         "finished_at": datetime.fromisoformat(str(s["finished_at"]))}
                                        for s in data.get("stages") or ()]})

    def summary(self) -> str:
        if self.seconds is None:
            return f"downtime since {self.started_at.isoformat(timespec='seconds')}: the target never became ready"
        parts = ", ".join(f"{name} {sec:.2f}s" for name, sec in self.stage_seconds().items())
        return f"downtime {self.seconds:.2f}s ({parts})"


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
        self._ready: float | None = None
        self._stages: list[Stage] = []

    @property
    def started(self) -> bool:
        return self._start is not None

    def start(self) -> None:
        if self._start is not None:
            raise RuntimeError("the downtime clock was already started")
        self._start = (self._now(), self._monotonic())

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
            self._stages.append(Stage(name, wall, wall + timedelta(seconds=took), took))

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
