"""The catalog sealed with the repository's key: nothing readable in the location, tampering detected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.catalog import Catalog, RestorePoint, RestorePointObject, latest_restore_point
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.errors import IntegrityError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage


def _point(rp: str) -> RestorePoint:
    now = datetime.now(UTC)
    return RestorePoint(id=rp, app="payroll", cluster="prod-eu", namespaces=("payroll",),
                        started_at=now - timedelta(minutes=1), finished_at=now, status="succeeded",
                        snapshot_id="ab" * 32, location="file:///x")


def test_catalog_files_are_encrypted_and_bound_to_their_key(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "loc", create=True)
    repo = Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap())
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    catalog.add_restore_point(_point("rp-1"), [RestorePointObject(
        restore_point_id="rp-1", group="", version="v1", kind="Secret", namespace="payroll",
        name="salary-db-password", content_hash="00", size=10)])

    stored = [i.key for i in storage.list("catalog/")]
    assert len(stored) == 2
    for key in stored:
        raw = storage.get(key)
        assert b"PAR1" not in raw and b"salary-db-password" not in raw and b"prod-eu" not in raw

    # a fresh reader (empty cache) with the key reads it back
    reader = Catalog(repo.storage, cache_dir=tmp_path / "cache2", codec=repo.catalog_codec())
    point = latest_restore_point(reader, "payroll")
    assert point is not None and point.cluster == "prod-eu"

    # a catalog file moved to another key fails authentication instead of being read
    first, second = sorted(stored)
    data = storage.get(first)
    storage.delete(second)
    storage.put(second, data)
    with pytest.raises(IntegrityError, match="catalog file"):
        latest_restore_point(Catalog(repo.storage, cache_dir=tmp_path / "cache3", codec=repo.catalog_codec()),
                             "payroll")
