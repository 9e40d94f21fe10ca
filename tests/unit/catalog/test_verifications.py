"""The ``verifications`` table: records, storage, and the queries retention and the CLI use."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kubekeep.catalog import (
    Catalog,
    CatalogRecordError,
    TableName,
    VerificationRecord,
    get_verification,
    list_restore_points,
    list_verifications,
    newest_verified_point,
    newest_verified_time,
    percentile,
    verification_stats,
    verified_points,
)

from .factories import T0, make_objects, make_point, make_volumes


def verification(vid: str, point: str, *, result: str = "passed", minutes: int = 0, app: str = "shop",
                 rto: float | None = 60.0) -> VerificationRecord:
    started = T0 + timedelta(days=1, minutes=minutes)
    return VerificationRecord(
        id=vid, restore_point_id=point, app=app, started_at=started, finished_at=started + timedelta(seconds=90),
        result=result, sandbox_cluster="sandbox", sandbox_namespaces=("kkv-1-shop",),
        reason=None if result == "passed" else "exec db-ping: exit code 2",
        rto_seconds=rto, rpo_seconds=3600.0, point_finished_at=T0,
        stages=[{"name": "plan", "started_at": started, "finished_at": started + timedelta(seconds=2),
                 "seconds": 2.0}],
        checks=[{"name": "db-ping", "type": "exec", "passed": result == "passed", "reason": "exit code 0",
                 "started_at": started, "duration_seconds": 0.5, "attempts": 1, "output_tail": "ok"}],
        teardown="complete")


def test_record_round_trip_and_validation(catalog: Catalog) -> None:
    record = verification("v-1", "rp-1")
    catalog.add_verification(record)
    catalog.add_verification(record)  # a retried write is a no-op
    assert list_verifications(catalog, details=True) == [record]
    brief = list_verifications(catalog)[0]
    assert brief.checks == () and brief.stages == () and brief.rto_seconds == 60.0
    assert get_verification(catalog, "v-1") == record and get_verification(catalog, "v-2") is None
    keys = [i.key for i in catalog.storage.list("catalog/v1/verifications/")]
    assert keys == ["catalog/v1/verifications/v-v-1.parquet"]
    with pytest.raises(CatalogRecordError, match="result 'maybe' is not one of"):
        verification("v-2", "rp-1", result="maybe")
    with pytest.raises(CatalogRecordError, match="rto_seconds must be >= 0"):
        verification("v-2", "rp-1", rto=-1)
    with pytest.raises(CatalogRecordError, match="verification id"):
        verification("../x", "rp-1")


def test_no_table_yet_reads_empty(catalog: Catalog) -> None:
    assert verified_points(catalog) == {}
    assert newest_verified_point(catalog, "shop") is None
    assert verification_stats(catalog) == [] and list_verifications(catalog) == []


def test_verified_points_take_the_newest_conclusive_verdict(catalog: Catalog) -> None:
    for hours, point in enumerate(("rp-a", "rp-b", "rp-c")):
        catalog.add_restore_point(make_point(point, hours=hours), make_objects(point), make_volumes(point))
    catalog.add_verification(verification("v-1", "rp-a", result="failed", minutes=0))
    catalog.add_verification(verification("v-2", "rp-a", result="passed", minutes=10))   # newer: passed
    catalog.add_verification(verification("v-3", "rp-b", result="passed", minutes=0))
    catalog.add_verification(verification("v-4", "rp-b", result="failed", minutes=10))  # newer: failed
    catalog.add_verification(verification("v-5", "rp-b", result="error", minutes=20))   # inconclusive: ignored
    catalog.add_verification(verification("v-6", "rp-c", result="error", minutes=0))
    catalog.add_verification(verification("v-7", "rp-x", result="passed", app="blog"))
    assert verified_points(catalog, "shop") == {"rp-a": True, "rp-b": False}
    assert verified_points(catalog) == {"rp-a": True, "rp-b": False, "rp-x": True}
    # rp-b is newer but failed its newest verification: rp-a is the newest verified point
    assert newest_verified_point(catalog, "shop") == "rp-a"
    catalog.add_verification(verification("v-8", "rp-c", result="passed", minutes=30))
    assert newest_verified_point(catalog, "shop") == "rp-c"
    point_c = [p for p in list_restore_points(catalog, app="shop", statuses=None) if p.id == "rp-c"][0]
    assert newest_verified_time(catalog, "shop") == point_c.finished_at
    assert newest_verified_time(catalog, "blog") is None
    # a verified point that is gone from the catalog (expired) is not the answer
    assert newest_verified_point(catalog, "blog") is None
    assert [v.id for v in list_verifications(catalog, restore_point_id="rp-b")] == ["v-5", "v-4", "v-3"]
    assert [v.id for v in list_verifications(catalog, app="shop", results=["error"])] == ["v-5", "v-6"]


def test_answers_survive_compaction(catalog: Catalog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for i in range(6):
        catalog.add_verification(verification(f"v-{i}", f"rp-{i % 2}", result="passed" if i % 3 else "failed",
                                               minutes=i))
    before = (verified_points(catalog), verification_stats(catalog))
    result = catalog.compact(TableName.VERIFICATIONS, min_files=2)[0]
    assert result.rows == 6 and len(result.deleted_keys) == 6
    fresh = Catalog(catalog.storage, cache_dir=tmp_path / "other-cache")
    assert (verified_points(fresh), verification_stats(fresh)) == before


def test_stats_pass_rate_and_p95_rto(catalog: Catalog) -> None:
    rtos = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0, 130.0, 140.0, 150.0,
            160.0, 170.0, 180.0, 190.0, 500.0]
    for i, rto in enumerate(rtos):
        catalog.add_verification(verification(f"v-s{i:02d}", f"rp-{i}", minutes=i, rto=rto))
    catalog.add_verification(verification("v-f1", "rp-f", result="failed", minutes=100, rto=9999.0))
    catalog.add_verification(verification("v-e1", "rp-e", result="error", minutes=101, rto=None))
    catalog.add_verification(verification("v-b1", "rp-b", app="blog", result="failed", minutes=5))
    stats = {s.app: s for s in verification_stats(catalog)}
    shop = stats["shop"]
    assert (shop.runs, shop.passed, shop.failed, shop.errors) == (22, 20, 1, 1)
    assert shop.pass_rate == pytest.approx(20 / 21)
    assert shop.p95_rto_seconds == 190.0  # nearest rank: the 19th of 20 passed runs; failed runs do not count
    assert shop.last_result == "error" and shop.last_restore_point_id == "rp-e"
    blog = stats["blog"]
    assert (blog.pass_rate, blog.p95_rto_seconds) == (0.0, None)
    assert [s.app for s in verification_stats(catalog, app="blog")] == ["blog"]


def test_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_protected_apps_are_the_apps_with_a_succeeded_point(catalog: Catalog) -> None:
    from kubekeep.catalog import protected_apps

    assert protected_apps(catalog) == []
    catalog.add_restore_point(make_point("shop-1", app="shop"), make_objects("shop-1"))
    catalog.add_restore_point(make_point("shop-2", app="shop", hours=1), make_objects("shop-2"))
    catalog.add_restore_point(make_point("blog-1", app="blog"), make_objects("blog-1"))
    catalog.add_restore_point(make_point("wiki-1", app="wiki", status="failed"), make_objects("wiki-1"))
    assert protected_apps(catalog) == ["blog", "shop"]
