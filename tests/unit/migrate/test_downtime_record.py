"""A cutover's downtime in the catalog's restores table: written after the report, listed, rebuilt."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubekeep.catalog import Catalog, get_restore, list_restores
from kubekeep.migrate import CutoverStage, DowntimeClock
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore.record import rebuild_restores, record_restore
from kubekeep.restore.report import RestoreReport


def test_the_downtime_is_kept_with_the_restore_and_survives_a_catalog_rebuild(tmp_path: Path) -> None:
    ticks = iter([10.0, 10.0, 12.5, 12.5, 13.0, 14.25])
    wall = datetime(2025, 6, 1, 12, tzinfo=UTC)
    clock = DowntimeClock(monotonic=lambda: next(ticks), now=lambda: wall)
    clock.start()
    with clock.stage(CutoverStage.QUIESCE):
        pass
    with clock.stage(CutoverStage.RESTORE):
        pass
    clock.ready()
    downtime = clock.result()
    assert downtime.seconds == 4.25

    storage = FilesystemStorage(tmp_path / "loc", create=True)
    with Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap()) as repo:
        report = RestoreReport(dry_run=False, cluster="old", started_at=wall, finished_at=wall + timedelta(seconds=5))
        record_restore(repo, report, restore_id="r-cutover", restore_point_id="shop-1", target_namespaces=["shop"],
                       downtime=downtime)
        record_restore(repo, report, restore_id="r-plain", restore_point_id="shop-1", target_namespaces=["shop"])
        catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
        rows = {r.id: r for r in list_restores(catalog)}
        assert rows["r-cutover"].downtime == downtime and rows["r-plain"].downtime is None
        got = get_restore(catalog, "r-cutover")
        assert got is not None and got.downtime is not None
        assert got.downtime.stage_seconds() == {"quiesce": 2.5, "restore": 0.5}

        shutil.rmtree(tmp_path / "loc" / "catalog")
        shutil.rmtree(tmp_path / "cache")
        assert rebuild_restores(repo, cache_dir=str(tmp_path / "cache2")) == (2, 0)
        rebuilt = Catalog(repo.storage, cache_dir=tmp_path / "cache2", codec=repo.catalog_codec())
        assert get_restore(rebuilt, "r-cutover").downtime == downtime  # type: ignore[union-attr]
