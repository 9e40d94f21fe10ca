"""Expiry and prune on a real repository (filesystem location): what a plan drops is deleted in a
crash-safe order, prune frees the space, what is kept still restores, and a catalog rebuild agrees."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.catalog import Catalog, DeletedRestorePoint, list_restore_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.reachability import reachable
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint import rebuild_repository_catalog
from kubekeep.retention import ApprovalRequired, RetentionRules, Rule, build_plan, collect_points, expire
from tests.integration.retention_points import (
    CHUNKER,
    PACK_SIZE,
    UNIQUE_BYTES,
    WrittenPoint,
    data_bytes,
    digest_tree,
    write_point,
)

START = datetime(2026, 1, 1, 2, tzinfo=UTC)
NOW = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    storage = FilesystemStorage(tmp_path / "location", create=True)
    return Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap(), chunker=CHUNKER, pack_size=PACK_SIZE)


@pytest.fixture
def catalog(repo: Repository, tmp_path: Path) -> Catalog:
    return Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())


def _ids(catalog: Catalog) -> set[str]:
    return {p.id for p in list_restore_points(catalog, statuses=None)}


def _restores(repo: Repository, point: WrittenPoint, target: Path) -> bool:
    repo.restore(point.volume_snapshot, target)
    return digest_tree(target) == point.digest


def test_expire_then_prune_frees_space_and_kept_points_restore(repo: Repository, catalog: Catalog,
                                                               tmp_path: Path) -> None:
    points = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n), seed=n,
                          status="failed" if n == 5 else "succeeded") for n in range(8)]
    plan = build_plan(collect_points(repo, catalog), RetentionRules(keep_daily=2), "Europe/Berlin", now=NOW)
    kept = {d.point.id for d in plan.decisions() if d.keep}
    # days 7 and 6 (the newest succeeded days), and day 5 as the newest failed point
    assert kept == {points[7].id, points[6].id, points[5].id}
    assert {r.rule for d in plan.decisions() if d.point.id == points[5].id for r in d.reasons} == {
        Rule.NEWEST_FAILED}
    assert plan.needs_approval  # 5 of 8 points

    snapshots_before = set(repo.snapshot_ids())
    with pytest.raises(ApprovalRequired, match=r"shop \(5 of 8\)"):
        expire(repo, catalog, plan)
    assert set(repo.snapshot_ids()) == snapshots_before  # nothing was touched

    report = expire(repo, catalog, plan, approved=True, reason="retention test")
    dropped = [p for p in points if p.id not in kept]
    assert sorted(report.deleted) == sorted(p.id for p in dropped)
    assert report.snapshots_deleted == 3 * len(dropped) and not report.held and not report.leftovers
    assert report.catalog_files_removed == 3 * len(dropped)
    assert _ids(catalog) == kept
    assert set(repo.snapshot_ids()) == {sid for p in points if p.id in kept for sid in p.snapshots}
    assert catalog.deleted_ids() == {p.id for p in dropped}

    before = data_bytes(repo)
    result = repo.prune()
    after = data_bytes(repo)
    freed = before - after
    print(f"\nprune after expiring {len(dropped)} of {len(points)} points: packs {before} -> {after} bytes, "
          f"freed {freed} ({result.packs_deleted} packs deleted, {result.packs_repacked} repacked)")
    assert result.bytes_freed > 0 and not result.locked_skipped
    # Which pack a blob landed in depends on the writer threads' timing, so a pack may mix a dropped
    # point's data with live data. Prune keeps a pack that is at least half live (repack_threshold 0.5):
    # check that every remaining pack is, and that the dropped points' data (UNIQUE_BYTES of
    # incompressible data each) is either freed or in the dead part of such a pack.
    live = reachable(repo, repo.snapshot_ids()).blobs
    per_pack: dict[bytes, list[int]] = {}
    for loc in repo.load_index(reload=True):
        entry = per_pack.setdefault(loc.pack_id, [0, 0])
        entry[0] += loc.entry.length if loc.entry.blob_id in live else 0
        entry[1] += loc.entry.length
    assert all(used / total >= 0.5 for used, total in per_pack.values()), per_pack
    dead_left = sum(total - used for used, total in per_pack.values())
    print(f"dead bytes left in packs that are at least half live: {dead_left}")
    assert freed + dead_left >= 0.9 * len(dropped) * UNIQUE_BYTES
    assert repo.check(read_data=True).ok
    for point in points:
        if point.id in kept:
            assert _restores(repo, point, tmp_path / f"restored-{point.id}")

    # applying the same rules again drops nothing more
    again = build_plan(collect_points(repo, catalog), RetentionRules(keep_daily=2), "Europe/Berlin", now=NOW)
    assert again.drops == []

    # the catalog rebuilt from the repository alone agrees with what retention left
    for info in list(repo.storage.list("catalog/")):
        repo.storage.delete(info.key)
    rebuild_repository_catalog(repo, cache_dir=str(tmp_path / "cache2"))
    rebuilt = Catalog(repo.storage, cache_dir=tmp_path / "cache3", codec=repo.catalog_codec())
    assert _ids(rebuilt) == kept


def test_a_deletion_interrupted_at_any_step_is_finished_by_the_next_run(repo: Repository, catalog: Catalog,
                                                                        tmp_path: Path) -> None:
    points = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n), seed=n)
              for n in range(4)]
    # crashed after deleting the record (step 2): the catalog still lists the point
    repo.storage.delete(SNAPSHOTS_PREFIX + points[0].record_snapshot)
    # crashed after the tombstone (step 3): manifest and volume snapshots are still there
    repo.storage.delete(SNAPSHOTS_PREFIX + points[1].record_snapshot)
    catalog.add_deletion(DeletedRestorePoint(points[1].id, "shop", NOW, "retention", tuple(points[1].snapshots)))

    plan = build_plan(collect_points(repo, catalog), RetentionRules(keep_last=10), "UTC", now=NOW)
    decisions = {d.point.id: d for d in plan.decisions()}
    assert points[1].id not in decisions  # hidden by its tombstone
    gone = decisions[points[0].id]
    assert not gone.keep and gone.reasons[0].rule is Rule.RECORD_GONE
    assert not plan.needs_approval  # a point whose record is gone is not counted as a deletion

    report = expire(repo, catalog, plan)
    assert report.deleted == [points[0].id] and report.finished == [points[1].id]
    assert set(repo.snapshot_ids()) == {sid for p in points[2:] for sid in p.snapshots}
    assert _ids(catalog) == {points[2].id, points[3].id}
    repo.prune()
    assert repo.check(read_data=True).ok
    for point in points[2:]:
        assert _restores(repo, point, tmp_path / f"restored-{point.id}")


def test_an_approved_plan_deletes_no_more_than_approved_and_nothing_kept_since(repo: Repository, catalog: Catalog,
                                                                              tmp_path: Path) -> None:
    points = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n), seed=n)
              for n in range(5)]
    approved = build_plan(collect_points(repo, catalog), RetentionRules(keep_last=2), "UTC", now=NOW)
    approved_ids = {d.point.id for d in approved.drops}
    assert approved_ids == {p.id for p in points[:3]}
    # meanwhile: a new point arrives (one more point falls out of keep_last), and points[0] became locked
    # in the plan's view (a fresh plan holds it)
    newer = write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=9), seed=9)
    fresh_facts = [f if f.id != points[0].id else replace(f, retain_until=NOW + timedelta(days=1))
                   for f in collect_points(repo, catalog)]
    fresh = build_plan(fresh_facts, RetentionRules(keep_last=2), "UTC", now=NOW)
    assert {d.point.id for d in fresh.drops} == {points[1].id, points[2].id, points[3].id}
    report = expire(repo, catalog, fresh, approved=True, only=approved_ids)
    # points[3] was not approved, points[0] is held now: only the intersection goes
    assert sorted(report.deleted) == sorted([points[1].id, points[2].id])
    assert _ids(catalog) == {points[0].id, points[3].id, points[4].id, newer.id}
