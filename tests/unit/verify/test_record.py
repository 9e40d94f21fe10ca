"""A verdict is kept in the repository first, then in the catalog; the catalog row can be rebuilt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubekeep.catalog import Catalog, get_verification, verified_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.verify import (
    VERIFICATION_TAG,
    CheckResult,
    CheckType,
    Stage,
    StageName,
    Verdict,
    decide,
    rebuild_verifications,
    record_verification,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _verdict(vid: str, point: str, passed: bool) -> Verdict:
    checks = [CheckResult(name="restore", type=CheckType.RESTORE, passed=True, reason="restore completed",
                          started_at=T0, duration_seconds=12.0),
              CheckResult(name="db-ping", type=CheckType.EXEC, passed=passed, reason="exit code 0" if passed else
                          "exit code 2", started_at=T0, duration_seconds=0.4, attempts=3, output_tail="ok")]
    result, reason = decide(checks)
    return Verdict(id=vid, restore_point_id=point, app="shop", started_at=T0, finished_at=T0 + timedelta(minutes=1),
                   result=result, reason=reason, checks=checks,
                   stages=[Stage.between(StageName.PLAN, T0, T0 + timedelta(seconds=2)),
                           Stage.between(StageName.CHECKS, T0 + timedelta(seconds=30), T0 + timedelta(seconds=31))],
                   rto_seconds=31.0, rpo_seconds=3600.0, point_finished_at=T0 - timedelta(hours=2),
                   sandbox_cluster="testbed", sandbox_namespaces=["kkv-a-shop"], teardown="complete")


def test_record_then_rebuild(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "repo", create=True)
    repo = Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap())
    first, second = _verdict("v-1", "rp-1", True), _verdict("v-2", "rp-2", False)
    for verdict in (first, second):
        record_verification(repo, verdict)
    assert len(list(repo.snapshots(tags=[VERIFICATION_TAG]))) == 2
    catalog = Catalog(storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    assert verified_points(catalog) == {"rp-1": True, "rp-2": False}
    assert Verdict.from_record(get_verification(catalog, "v-2")) == second  # type: ignore[arg-type]
    # the catalog is derived data: lose it, rebuild it from the repository
    for info in list(storage.list("catalog/v1/verifications/")):
        storage.delete(info.key)
    fresh = Catalog(storage, cache_dir=tmp_path / "cache2", codec=repo.catalog_codec())
    assert verified_points(fresh) == {}
    assert rebuild_verifications(repo, cache_dir=str(tmp_path / "cache3")) == (2, 0)
    assert rebuild_verifications(repo, cache_dir=str(tmp_path / "cache4")) == (0, 2)
    rebuilt = Catalog(storage, cache_dir=tmp_path / "cache5", codec=repo.catalog_codec())
    assert verified_points(rebuilt) == {"rp-1": True, "rp-2": False}
    assert Verdict.from_record(get_verification(rebuilt, "v-1")) == first  # type: ignore[arg-type]
    # catalog files are sealed with the repository's key: no app name in the stored bytes
    for info in storage.list("catalog/v1/verifications/"):
        assert b"shop" not in storage.get(info.key)
