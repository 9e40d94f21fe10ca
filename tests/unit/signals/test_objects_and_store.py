"""Deleted objects by kind (pure), and signals records in a real repository (filesystem storage)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kubekeep.catalog import Catalog, list_signals
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.signals import (
    SIGNALS_TAG,
    ObjectKey,
    PointSignals,
    find_signals,
    manifest_object_keys,
    object_signals,
    rebuild_signals,
    record_signals,
    write_signals,
)
from tests.unit.repo.conftest import make_repo


def key(kind: str, name: str, group: str = "", namespace: str = "shop") -> ObjectKey:
    return ObjectKey(group, kind, namespace, name)


def test_deleted_objects_by_kind() -> None:
    before = [key("Secret", "a"), key("Secret", "b"), key("Deployment", "web", "apps"),
              key("Namespace", "shop", "", "")]
    after = [key("Secret", "a"), key("Deployment", "web", "apps"), key("ConfigMap", "new")]
    sig = object_signals(iter(before), iter(after), previous_point_id="p1")
    assert (sig.objects, sig.previous_objects, sig.deleted) == (3, 4, 2)
    assert sig.previous_by_kind == {"Secret": 2, "Deployment.apps": 1, "Namespace": 1}
    assert sig.deleted_by_kind == {"Secret": 1, "Namespace": 1}
    assert sig.examples == ["Secret shop/b", "Namespace shop"]
    assert sig.deleted_ratio(["Secret"]) == (1, 2)
    first = object_signals(None, iter(after), previous_point_id="ignored")
    assert first.first and first.deleted == 0 and first.previous_point_id is None


def test_same_name_in_another_group_or_namespace_is_another_object() -> None:
    sig = object_signals([key("Ingress", "web", "networking.k8s.io")], [key("Ingress", "web", "extensions")],
                         previous_point_id="p")
    assert sig.deleted_by_kind == {"Ingress.networking.k8s.io": 1}


def test_keys_of_stored_manifests() -> None:
    manifests = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}},
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}]
    assert list(manifest_object_keys(manifests)) == [key("Deployment", "web", "apps"), key("Namespace", "shop", "", "")]


def _point(point_id: str) -> PointSignals:
    when = datetime(2026, 3, 1, tzinfo=UTC).isoformat()
    return PointSignals(restore_point_id=point_id, app="shop", finished_at=when, previous_point_id=None,
                        threshold=6.0, computed_at=when)


def test_retried_steps_and_a_rebuild_agree_with_the_catalog(tmp_path: Path) -> None:
    repo = make_repo(FilesystemStorage(tmp_path / "repo", create=True))
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    first = _point("shop-1")
    first.score = 1.5
    assert record_signals(repo, catalog, first) is True
    again = _point("shop-1")
    again.score = 9.9
    assert record_signals(repo, catalog, again) is False  # rows present: the step is done
    assert len(repo.snapshots(tags=[SIGNALS_TAG])) == 1
    # a step that died between its record and its rows: the retry's record and rows win
    orphan = _point("shop-2")
    orphan.score = 2.0
    write_signals(repo, orphan)
    retried = _point("shop-2")
    retried.score = 3.0
    assert record_signals(repo, catalog, retried) is True
    stored = find_signals(repo, "shop-2")
    assert stored is not None and stored.score == 3.0
    other = Catalog(repo.storage, cache_dir=tmp_path / "cache2", prefix="catalog-copy", codec=repo.catalog_codec())
    result = rebuild_signals(repo, other)
    assert (result.points_written, result.acks_written) == (2, 0)
    assert sorted(r.score for r in list_signals(other)) == sorted(r.score for r in list_signals(catalog)) == [1.5, 3.0]
