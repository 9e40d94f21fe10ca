"""The baseline carried from point to point (kubekeep.signals.carry) judges every point as the window would.

A series of points of one app (and another app interleaved) is judged twice at every step, against
the same catalog: once as the backup flow does (the predecessor's carried candidates when valid) and
once reading the window of earlier points (the path before candidates were carried). Score, verdict,
reasons and baseline must be the same, through suspect points, an acknowledgement, a deleted point,
an unscored point, and two points scored out of order. The carried path must read one signals file
per step, however many points the app has.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubekeep.catalog import (
    Catalog,
    DeletedRestorePoint,
    RestorePoint,
    RestorePointObject,
    RestorePointVolume,
    SignalAck,
    TableName,
    list_signals,
)
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint.ids import new_restore_point_id
from kubekeep.signals import PointSignals, SignalPolicy, compute_signals, signal_rows
from kubekeep.signals.compute import CatalogHistory, PointRef, VolumeRef

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


class Snapshots:
    """Volume snapshots with stats only (no trees): the volume's new-bytes share varies from point to point."""

    index = None

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def load_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self.docs[snapshot_id]

    def read_blob(self, blob_id: bytes, *, recent: bool = False) -> bytes:
        raise AssertionError("no tree is read")


class WindowOnly(CatalogHistory):
    """The history as it was before candidates were carried: the window is always read."""

    def predecessor_signals(self, point: PointRef) -> PointSignals | None:
        return None


class Series:
    def __init__(self, tmp_path: Path) -> None:
        self.catalog = Catalog(FilesystemStorage(tmp_path / "loc", create=True), cache_dir=tmp_path / "cache")
        self.snapshots = Snapshots()
        self.rng = random.Random(7)
        self.objects = {f"{kind}-{i}" for kind in ("secret", "config") for i in range(40)}
        self.refs: dict[str, PointRef] = {}

    def backup(self, app: str, day: int, *, wipe_secrets: bool = False) -> str:
        when = START + timedelta(days=day, minutes=1 if app != "shop" else 0)
        rp = new_restore_point_id(app, when)
        if app == "shop":
            for name in self.rng.sample(sorted(self.objects), self.rng.randrange(0, 3)):
                self.objects.discard(name)
            self.objects |= {f"config-new-{day}-{i}" for i in range(self.rng.randrange(0, 3))}
            if wipe_secrets:
                secrets = sorted(n for n in self.objects if n.startswith("secret"))
                self.objects -= set(secrets[: len(secrets) * 6 // 10])
        names = sorted(self.objects) if app == "shop" else ["config-a", "config-b"]
        rows = [RestorePointObject(restore_point_id=rp, group="", version="v1",
                                   kind="Secret" if n.startswith("secret") else "ConfigMap", namespace=app, name=n,
                                   content_hash="h", size=1) for n in names]
        snapshot = f"snap-{rp}"
        self.snapshots.docs[snapshot] = {"tree": None, "stats": {
            "files": 100, "dirs": 5, "bytes": 10_000_000, "new_bytes": self.rng.randrange(50_000, 400_000)}}
        finished = when + timedelta(minutes=5)
        self.catalog.add_restore_point(
            RestorePoint(id=rp, app=app, cluster="c", namespaces=(app,), started_at=when, finished_at=finished,
                         status="succeeded", snapshot_id="s" * 64, location="file:///x"),
            rows, [RestorePointVolume(restore_point_id=rp, namespace=app, pvc="data", size_bytes=1, method="fs",
                                      snapshot_id=snapshot)])
        self.refs[rp] = PointRef(id=rp, app=app, finished_at=finished,
                                 volumes=(VolumeRef(app, "data", snapshot),))
        return rp

    def judge(self, rp: str, policy: SignalPolicy, *, windows: list[str] | None = None) -> PointSignals:
        """Judge ``rp`` both ways; they must agree; record the flow's verdict (``windows``: gets ``rp`` when
        the flow's path read the window)."""
        ref, now = self.refs[rp], self.refs[rp].finished_at
        window = compute_signals(self.snapshots, WindowOnly(self.catalog), ref, policy, now=now)
        history = Counting(self.catalog)
        flow = compute_signals(self.snapshots, history, ref, policy, now=now)
        assert (flow.score, flow.suspect, flow.reasons, flow.baseline) == \
               (window.score, window.suspect, window.reasons, window.baseline), rp
        if windows is not None and history.windows_read:
            windows.append(rp)
        self.catalog.add_signals(signal_rows(flow))
        return flow


class Counting(CatalogHistory):
    windows_read = False

    def signals_before(self, app: str, before: datetime, limit: int) -> list[PointSignals]:
        self.windows_read = True
        return super().signals_before(app, before, limit)


@pytest.mark.parametrize("baseline_points", [5, 30])
def test_the_carried_baseline_judges_every_point_as_the_window_does(tmp_path: Path, baseline_points: int) -> None:
    policy = SignalPolicy(baseline_points=baseline_points)
    series = Series(tmp_path)
    windows: list[str] = []
    days: dict[str, int] = {}
    verdicts: dict[str, PointSignals] = {}
    late: str | None = None
    for day in range(48):
        series.backup("shop-eu", day)  # another app whose name extends this one's
        rp = series.backup("shop", day, wipe_secrets=day in (12, 30))
        days[rp] = day
        if day == 33:
            continue  # not scored (the step failed): the chain restarts from the window
        if day == 40:
            late = rp  # scored after the next point (concurrent runs of the app)
            continue
        verdicts[rp] = series.judge(rp, policy, windows=windows)
        if day == 41:
            assert late is not None
            verdicts[late] = series.judge(late, policy)
        if day == 20:  # the first wipe was a planned clean-up: acknowledged, it joins the baseline
            wiped = [p for p, v in verdicts.items() if v.suspect][0]
            series.catalog.add_signal_ack(SignalAck(restore_point_id=wiped, app="shop", acknowledged_at=START))
        if day == 25:  # a point deleted by retention leaves the baseline
            gone = sorted(verdicts)[22]
            series.catalog.add_deletion(DeletedRestorePoint(restore_point_id=gone, app="shop",
                                                            deleted_at=START, reason="retention"))
    suspects = [p for p, v in verdicts.items() if v.suspect]
    assert len(suspects) == 2, suspects  # both wipes, nothing else
    # the window was read for the first point, after the unscored one (33), after the one not scored yet
    # (40), and once more after it was scored late (its file in the listing, not among the candidates);
    # every other step used the carried candidates
    assert [days[rp] for rp in windows] == [0, 34, 41, 42]


def test_the_carried_path_reads_one_signals_file_however_long_the_history(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    policy = SignalPolicy()
    series = Series(tmp_path)
    for day in range(40):
        series.judge(series.backup("shop", day), policy)
    last = series.backup("shop", 40)
    fetched: list[str] = []
    fetch = series.catalog._fetch

    def counting(info: Any, spec: Any) -> Path:
        fetched.append(info.key)
        return fetch(info, spec)

    monkeypatch.setattr(series.catalog, "_fetch", counting)
    compute_signals(series.snapshots, CatalogHistory(series.catalog), series.refs[last], policy,
                    now=series.refs[last].finished_at)
    signals_files = [k for k in fetched if f"/{TableName.SIGNALS.value}/" in k]
    assert len(signals_files) == 1, signals_files


def test_candidates_are_compact_and_read_only_when_asked_for(tmp_path: Path) -> None:
    """The candidates are the widest value of a row: the observation keys are stored once, and the queries
    that list signals (the CLI, the UI) leave the column out."""
    policy = SignalPolicy()
    series = Series(tmp_path)
    for day in range(35):
        last = series.judge(series.backup("shop", day), policy)
    assert last.carried is not None
    # 30 candidates of 12 observations (objects and one volume): ~3 KB; with the keys in every candidate it
    # was ~15 KB
    assert len(last.carried) < 30 * 12 * 6 + 30 * 40 + 1000, len(last.carried)
    assert list_signals(series.catalog, restore_point_ids=[last.restore_point_id])[0].baseline_candidates is None
    assert list_signals(series.catalog, restore_point_ids=[last.restore_point_id],
                        candidates=True)[0].baseline_candidates == last.carried
