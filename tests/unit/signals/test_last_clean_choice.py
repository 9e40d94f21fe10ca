"""choose_restore_point(..., last_clean=True): the restore option --last-clean, on a real filesystem repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.signals_scenarios import AppVolume, CorePipeline
from kubekeep.catalog import Catalog
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint import RestorePointNotFoundError, choose_restore_point


def test_last_clean_is_the_point_before_the_attack(tmp_path: Path) -> None:
    repo = Repository.init(FilesystemStorage(tmp_path / "repo", create=True), passphrase="p", kdf=KdfParams.cheap())
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    with pytest.raises(RestorePointNotFoundError, match="has no clean restore point"):
        choose_restore_point(repo, app="shop", catalog=catalog, last_clean=True)
    pipeline = CorePipeline(repo, catalog)
    volume = AppVolume(tmp_path / "volume", seed=3)
    volume.create()
    for day in range(3):
        if day:
            volume.benign_day(day)
        pipeline.backup(day, volume.root)
    volume.delete(0.6)
    assert pipeline.backup(3, volume.root).suspect
    _sid, record = choose_restore_point(repo, app="shop", catalog=catalog, last_clean=True)
    assert record.id == "shop-d0002"
    assert choose_restore_point(repo, app="shop", catalog=catalog)[1].id == "shop-d0003"  # latest, as before

    for kwargs, message in (({"restore_point": "shop-d0001"}, "by app alone"), ({}, "needs an app"),
                            ({"app": "shop", "catalog": None}, "no catalog")):
        args = {"app": None, "catalog": catalog, **kwargs}
        if "restore_point" in kwargs:
            args["app"] = "shop"
        with pytest.raises(ValueError, match=message):
            choose_restore_point(repo, last_clean=True, **args)
