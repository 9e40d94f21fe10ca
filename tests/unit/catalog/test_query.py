from __future__ import annotations

from datetime import timedelta

import pytest

from kubekeep.catalog import (
    Catalog,
    CatalogRecordError,
    RestorePointObject,
    TableName,
    latest_restore_point,
    list_restore_points,
    list_restore_points_table,
    list_restores,
    restore_points_before,
    restore_points_containing,
)
from kubekeep.catalog.records import RestoreRecord

from .factories import T0, make_objects, make_point


@pytest.fixture
def filled(catalog: Catalog) -> Catalog:
    catalog.add_restore_point(make_point("shop-1", hours=1), make_objects("shop-1"))
    catalog.add_restore_point(make_point("shop-2", hours=2, tags={"ticket": "OPS-7"}), make_objects("shop-2"))
    catalog.add_restore_point(make_point("shop-3", hours=3, status="partially_failed"), make_objects("shop-3"))
    catalog.add_restore_point(
        make_point("blog-1", app="blog", hours=4, namespaces=("blog", "shared")),
        make_objects("blog-1", namespace="blog"),
    )
    catalog.add_restore_point(make_point("shop-dr-1", hours=5, cluster="dr"), make_objects("shop-dr-1"))
    return catalog


@pytest.fixture(params=["small-files", "compacted", "half-compacted"])
def layout(request: pytest.FixtureRequest, filled: Catalog) -> Catalog:
    if request.param == "compacted":
        filled.compact()
    elif request.param == "half-compacted":
        # compacted parts plus the small files they merged, as after a crashed compaction
        for table in TableName:
            small = [i for i in filled.storage.list(f"catalog/v1/{table.value}/")]
            filled.compact(table)
            for info in small:
                filled.storage.put(info.key, filled._cache_path(info.key).read_bytes())
    return filled


def test_latest_is_succeeded_only_by_default(layout: Catalog) -> None:
    latest = latest_restore_point(layout, "shop", cluster="prod")
    assert latest is not None and latest.id == "shop-2"
    latest_any = latest_restore_point(layout, "shop", cluster="prod", statuses=None)
    assert latest_any is not None and latest_any.id == "shop-3"
    overall = latest_restore_point(layout, "shop")
    assert overall is not None and overall.id == "shop-dr-1"
    assert latest_restore_point(layout, "nope") is None


def test_latest_before(layout: Catalog) -> None:
    point = latest_restore_point(layout, "shop", before=T0 + timedelta(hours=2))
    assert point is not None and point.id == "shop-1"


def test_points_before(layout: Catalog) -> None:
    ids = [p.id for p in restore_points_before(layout, T0 + timedelta(hours=4, minutes=5), statuses=None)]
    assert ids == ["shop-3", "shop-2", "shop-1"]  # blog-1 finished at exactly 4:05: not before
    ids = [p.id for p in restore_points_before(layout, T0 + timedelta(days=1), app="blog")]
    assert ids == ["blog-1"]


def test_list_filters(layout: Catalog) -> None:
    assert [p.id for p in list_restore_points(layout, namespace="shared")] == ["blog-1"]
    assert [p.id for p in list_restore_points(layout, tags={"ticket": "OPS-7"})] == ["shop-2"]
    assert list_restore_points(layout, tags={"ticket": "OPS-8"}) == []
    assert [p.id for p in list_restore_points(layout, cluster="dr")] == ["shop-dr-1"]
    oldest_first = list_restore_points(layout, statuses=None, newest_first=False, limit=2)
    assert [p.id for p in oldest_first] == ["shop-1", "shop-2"]
    window = list_restore_points(
        layout, finished_after=T0 + timedelta(hours=2), finished_before=T0 + timedelta(hours=5), statuses=None
    )
    assert [p.id for p in window] == ["blog-1", "shop-3", "shop-2"]
    table = list_restore_points_table(layout, app="shop", statuses=["succeeded", "partially_failed"])
    assert table.column_names[0] == "id" and table.num_rows == 4
    projected = list_restore_points_table(layout, namespace="shop", tags={"ticket": "OPS-7"}, columns=["app"])
    assert projected.column_names == ["app"] and projected.to_pylist() == [{"app": "shop"}]


def test_naive_datetime_is_refused(filled: Catalog) -> None:
    with pytest.raises(CatalogRecordError, match="timezone-aware"):
        restore_points_before(filled, T0.replace(tzinfo=None))


def test_points_containing_object(layout: Catalog) -> None:
    hits = restore_points_containing(layout, group="apps", kind="Deployment", namespace="shop", name="web")
    assert [h.restore_point_id for h in hits] == ["shop-dr-1", "shop-3", "shop-2", "shop-1"]
    assert hits[-1].content_hash == "h-web-shop-1" and hits[-1].app == "shop"
    assert hits[0].cluster == "dr"
    only_ok = restore_points_containing(
        layout, kind="Deployment", namespace="shop", name="web", statuses=["succeeded"], app="shop"
    )
    assert [h.restore_point_id for h in only_ok] == ["shop-dr-1", "shop-2", "shop-1"]
    assert restore_points_containing(layout, kind="Deployment", namespace="blog", name="web")[0].app == "blog"
    assert restore_points_containing(layout, kind="Secret", namespace="shop", name="web") == []


def test_cluster_scoped_object(catalog: Catalog) -> None:
    crd = RestorePointObject("rp1", "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "",
                             "widgets.example.com", "h", 10)
    catalog.add_restore_point(make_point("rp1"), [crd])
    hits = restore_points_containing(catalog, kind="CustomResourceDefinition", name="widgets.example.com")
    assert [h.restore_point_id for h in hits] == ["rp1"]


def test_list_restores(catalog: Catalog) -> None:
    for n, (status, dry) in enumerate([("succeeded", True), ("failed", False), ("succeeded", False)]):
        catalog.add_restore(RestoreRecord(
            id=f"r{n}", restore_point_id="rp1" if n < 2 else "rp2", started_at=T0 + timedelta(hours=n),
            finished_at=T0 + timedelta(hours=n, minutes=1), status=status, target_cluster="dr", dry_run=dry,
        ))
    assert [r.id for r in list_restores(catalog)] == ["r2", "r1", "r0"]
    assert [r.id for r in list_restores(catalog, restore_point_id="rp1")] == ["r1", "r0"]
    assert [r.id for r in list_restores(catalog, include_dry_runs=False, statuses=["succeeded"])] == ["r2"]
