"""last_clean: an unscored restore point is not proven clean (catalog on filesystem storage, no Prefect)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kubekeep.catalog import Catalog, CleanPoint, last_clean, last_clean_point
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.signals import PointSignals
from kubekeep.signals.rows import signal_rows
from tests.unit.signals.test_history_window import START, _add


def _catalog(tmp_path: Path) -> Catalog:
    return Catalog(FilesystemStorage(tmp_path / "loc", create=True), cache_dir=tmp_path / "cache")


def test_a_scored_clean_point_wins_over_newer_unscored_ones(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    scored = _add(catalog, "shop", START)
    _add(catalog, "shop", START + timedelta(days=1), scored=False)
    newest = _add(catalog, "shop", START + timedelta(days=2), scored=False)
    choice = last_clean(catalog, "shop")
    assert choice == CleanPoint(scored, scored=True, verified=False, warning=None)
    assert last_clean_point(catalog, "shop") == scored
    assert newest != scored


def test_with_no_scored_clean_point_the_newest_unscored_one_comes_with_a_warning(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert last_clean(catalog, "shop") is None
    _add(catalog, "shop", START, scored=False)
    newest = _add(catalog, "shop", START + timedelta(days=1), scored=False)
    choice = last_clean(catalog, "shop")
    assert choice is not None and (choice.restore_point_id, choice.scored) == (newest, False)
    assert choice.warning == (f"restore point {newest} of app shop was never scored for ransomware signals: it is "
                              "not proven clean (no scored point of the app is clean)")


def test_a_suspect_point_still_cuts_off_the_points_after_it(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    clean = _add(catalog, "shop", START)
    attacked = _add(catalog, "shop", START + timedelta(days=1), scored=False)
    finished = (START + timedelta(days=1, minutes=5)).isoformat()
    flagged = PointSignals(restore_point_id=attacked, app="shop", finished_at=finished, previous_point_id=clean,
                           threshold=6.0, computed_at=finished, score=30.0, suspect=True)
    catalog.add_signals(signal_rows(flagged))
    _add(catalog, "shop", START + timedelta(days=2))  # scored, normal-looking, but after the attack
    assert last_clean(catalog, "shop") == CleanPoint(clean, scored=True, verified=False)
