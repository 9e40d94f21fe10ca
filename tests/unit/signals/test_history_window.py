"""The signals step reads only the app's newest points from the catalog (filesystem storage, no Prefect).

A catalog that is never compacted holds one file per point and table: the step must open the files of
the judged point and the window of its app's newest points, not every file, and answer as a whole read
would (previous point, previous snapshot of each PVC, scored points for the baseline).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.catalog import Catalog, RestorePoint, RestorePointVolume, TableName
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint.ids import new_restore_point_id
from kubekeep.signals import PointSignals
from kubekeep.signals.compute import CatalogHistory, PointRef, VolumeRef
from kubekeep.signals.rows import signal_rows

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
LIMIT = 20


def _add(catalog: Catalog, app: str, when: datetime, *, point_id: str | None = None,
         pvcs: tuple[str, ...] = ("data",), scored: bool = True) -> str:
    rp = point_id or new_restore_point_id(app, when)
    catalog.add_restore_point(
        RestorePoint(id=rp, app=app, cluster="c", namespaces=("shop",), started_at=when,
                     finished_at=when + timedelta(minutes=5), status="succeeded", snapshot_id="s" * 64,
                     location="file:///x"),
        volumes=[RestorePointVolume(restore_point_id=rp, namespace="shop", pvc=pvc, size_bytes=1, method="fs",
                                    snapshot_id=f"snap-{pvc}-{rp}") for pvc in pvcs])
    if scored:
        finished = (when + timedelta(minutes=5)).isoformat()
        catalog.add_signals(signal_rows(PointSignals(restore_point_id=rp, app=app, finished_at=finished,
                                                     previous_point_id=None, threshold=6.0, computed_at=finished)))
    return rp


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Catalog, list[str], str]]:
    catalog = Catalog(FilesystemStorage(tmp_path / "loc", create=True), cache_dir=tmp_path / "cache")
    # a point of the app under an id in another form (an old or imported point): always read
    legacy = _add(catalog, "shop", START - timedelta(days=1), point_id="legacy-point-1", pvcs=("data", "old"))
    shop: list[str] = []
    for day in range(60):
        when = START + timedelta(days=day)
        shop.append(_add(catalog, "shop", when, scored=day % 7 != 3))
        _add(catalog, "shop-eu", when + timedelta(minutes=1))  # an app whose name extends this one's
    yield catalog, shop, legacy


def _fetched(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    keys: list[str] = []
    fetch = catalog._fetch

    def counting(info, spec):  # type: ignore[no-untyped-def]
        keys.append(info.key)
        return fetch(info, spec)

    monkeypatch.setattr(catalog, "_fetch", counting)
    return keys


def test_the_step_reads_the_window_of_the_app_not_every_file(history: tuple[Catalog, list[str], str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, shop, legacy = history
    point_id = shop[-1]
    finished = START + timedelta(days=59, minutes=5)
    point = PointRef(id=point_id, app="shop", finished_at=finished,
                     volumes=(VolumeRef("shop", "data", f"snap-data-{point_id}"),))
    keys = _fetched(catalog, monkeypatch)
    h = CatalogHistory(catalog)
    h.prefetch(point, LIMIT)
    window = h.window(point, LIMIT)
    assert window is not None and window[0] == point_id and legacy in window
    assert set(window) == {point_id, *shop[-1 - LIMIT:-1], legacy}
    # files opened: per table the window's (the judged point's, LIMIT previous, the legacy one) and tombstones
    by_table: dict[str, set[str]] = {}
    for key in keys:
        by_table.setdefault(key.split("/")[-2], set()).add(key.rsplit("/", 1)[-1])
    assert not any("shop-eu" in name for names in by_table.values() for name in names), by_table
    recent = CatalogHistory.TIERS[0]
    assert by_table[TableName.RESTORE_POINTS.value] == {f"rp-{rp}.parquet" for rp in (point_id, *shop[-1 - recent:-1],
                                                                                      legacy)}, by_table
    assert len(by_table[TableName.RESTORE_POINT_VOLUMES.value]) == recent + 2
    assert len(by_table[TableName.SIGNALS.value]) <= LIMIT + 2
    # the answers of a whole read
    assert h.previous_point("shop", finished) == shop[-2]
    assert h.previous_volume_snapshot("shop", VolumeRef("shop", "data", "x"), finished) == f"snap-data-{shop[-2]}"
    scored = [p.restore_point_id for p in h.signals_before("shop", finished, LIMIT)]
    expected = [rp for day, rp in enumerate(shop[:-1]) if day % 7 != 3][::-1] + [legacy]
    assert scored == [rp for rp in expected if rp in window][:LIMIT]


def test_a_pvc_older_than_the_window_is_found_in_all_of_the_app_points(
        history: tuple[Catalog, list[str], str], tmp_path: Path) -> None:
    catalog, shop, legacy = history
    old = _add(catalog, "shop", START + timedelta(days=2, hours=1), pvcs=("data", "archive"))
    point_id = shop[-1]
    finished = START + timedelta(days=59, minutes=5)
    h = CatalogHistory(catalog)
    point = PointRef(id=point_id, app="shop", finished_at=finished,
                     volumes=(VolumeRef("shop", "archive", "snap-new"),))
    h.prefetch(point, LIMIT)
    assert old not in (h.window(point, LIMIT) or [])
    assert h.previous_volume_snapshot("shop", VolumeRef("shop", "archive", "snap-new"), finished) == \
        f"snap-archive-{old}"
    assert h.previous_volume_snapshot("shop", VolumeRef("shop", "old", "x"), finished) == f"snap-old-{legacy}"


def test_a_point_id_in_another_form_reads_the_tables_whole(history: tuple[Catalog, list[str], str]) -> None:
    catalog, shop, _legacy = history
    when = START + timedelta(days=90)
    rp = _add(catalog, "shop", when, point_id="shop-imported", scored=False)
    h = CatalogHistory(catalog)
    finished = when + timedelta(minutes=5)
    point = PointRef(id=rp, app="shop", finished_at=finished)
    h.prefetch(point, LIMIT)
    assert h.window(point, LIMIT) is None
    assert h.previous_point("shop", finished) == shop[-1]
    assert len(h.signals_before("shop", finished, 1000)) == sum(1 for day in range(60) if day % 7 != 3) + 1


@pytest.mark.parametrize("failed", [CatalogHistory.TIERS[0], CatalogHistory.TIERS[0] + 2, CatalogHistory.TIERS[-1] + 1])
def test_after_failed_points_the_previous_point_is_found_tier_by_tier(history: tuple[Catalog, list[str], str],
                                                                       failed: int) -> None:
    """The judged point follows a gap of failed points: within the first tier, the second, or beyond both."""
    catalog, shop, _legacy = history
    gap = START + timedelta(days=80)
    for hour in range(failed):
        rp = new_restore_point_id("shop", gap + timedelta(hours=hour))
        catalog.add_restore_point(RestorePoint(
            id=rp, app="shop", cluster="c", namespaces=("shop",), started_at=gap + timedelta(hours=hour),
            finished_at=gap + timedelta(hours=hour, minutes=5), status="failed", snapshot_id="s" * 64,
            location="file:///x"))
    late = _add(catalog, "shop", gap + timedelta(days=1))
    finished = gap + timedelta(days=1, minutes=5)
    h = CatalogHistory(catalog)
    h.prefetch(PointRef(id=late, app="shop", finished_at=finished), LIMIT)
    assert h.previous_point("shop", finished) == shop[-1]
    assert h.previous_volume_snapshot("shop", VolumeRef("shop", "data", "x"), finished) == f"snap-data-{shop[-1]}"
    assert h.previous_volume_snapshot("shop", VolumeRef("shop", "never", "x"), finished) is None
