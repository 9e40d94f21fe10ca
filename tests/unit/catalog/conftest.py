from __future__ import annotations

from pathlib import Path

import pytest

from kubekeep.catalog import Catalog
from kubekeep.repo.storage import FilesystemStorage


@pytest.fixture
def storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "location", create=True)


@pytest.fixture
def catalog(storage: FilesystemStorage, tmp_path: Path) -> Catalog:
    return Catalog(storage, cache_dir=tmp_path / "cache")
