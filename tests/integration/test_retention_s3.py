"""Retention against the real SeaweedFS Object Lock bucket, in COMPLIANCE mode.

The locks here are real and enforced by the S3 server with its own clock: a COMPLIANCE lock cannot
be shortened or bypassed, so the test uses short locks (tens of seconds) and waits for them to end,
instead of a fake clock the server would not honour. Retention's own notion of "now" is the real
time too, so what the plan says ("expires when its lock ends") and what the server enforces agree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.catalog import Catalog, list_restore_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import RetentionMode, S3Storage
from kubekeep.retention import (
    RetentionPlan,
    RetentionRules,
    build_plan,
    collect_points,
    expire,
    renew_locks,
)
from tests.integration.retention_points import CHUNKER, PACK_SIZE, data_bytes, digest_tree, write_point
from tests.plugins.s3 import S3TestServer

pytestmark = pytest.mark.s3


@pytest.fixture
def locked_repo(seaweedfs: S3TestServer) -> Iterator[Repository]:
    storage = seaweedfs.storage(seaweedfs.locked_bucket)
    repo = Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap(), chunker=CHUNKER, pack_size=PACK_SIZE)
    yield repo
    repo.close()


def _catalog(repo: Repository, tmp_path: Path) -> Catalog:
    return Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())


def _lock(seconds: float) -> tuple[RetentionMode, datetime]:
    return RetentionMode.COMPLIANCE, (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 1.5)


def _plan(repo: Repository, catalog: Catalog, rules: RetentionRules) -> RetentionPlan:
    return build_plan(collect_points(repo, catalog), rules, "UTC")


def test_compliance_locks_hold_points_until_they_end_then_the_next_run_drops_them(
        locked_repo: Repository, tmp_path: Path) -> None:
    repo, catalog = locked_repo, _catalog(locked_repo, tmp_path)
    base = datetime.now(UTC) - timedelta(days=10)
    snapshot_lock = _lock(40)
    old = [write_point(repo, catalog, tmp_path, app="db", started=base + timedelta(days=n), seed=n,
                       retention=snapshot_lock) for n in range(3)]
    newest = write_point(repo, catalog, tmp_path, app="db", started=base + timedelta(days=5), seed=9)
    # the packs of the old points stay locked 20 s longer than their snapshots
    pack_until = snapshot_lock[1] + timedelta(seconds=20)
    for info in repo.storage.list("data/"):
        repo.storage.set_retention(info.key, RetentionMode.COMPLIANCE, pack_until)
    rules = RetentionRules(keep_last=1)

    # 1. while locked: the plan keeps them as "expires when its lock ends"; expiry deletes nothing
    plan = _plan(repo, catalog, rules)
    held = {d.point.id for d in plan.held}
    assert held == {p.id for p in old} and plan.drops == []
    assert all("expires when its lock ends" in d.reasons[0].detail for d in plan.held)
    assert all(d.point.retain_until == snapshot_lock[1] for d in plan.held)

    # a plan made from a stale view (locks not known) drops them: expiry does not fail, it reports
    stale = RetentionPlan(plan.created_at, plan.timezone, 1.0, tuple(
        replace(g, decisions=tuple(
            replace(d, keep=d.point.id == newest.id, expires_when_unlocked=False,
                    point=replace(d.point, retain_until=None)) for d in g.decisions)) for g in plan.groups))
    assert len(stale.drops) == 3
    report = expire(repo, catalog, stale)
    assert report.deleted == [] and sorted(h.id for h in report.held) == sorted(p.id for p in old)
    assert all(h.retain_until == snapshot_lock[1] for h in report.held)
    assert len(list_restore_points(catalog, statuses=None)) == 4
    assert all(repo.storage.exists(SNAPSHOTS_PREFIX + sid) for p in old for sid in p.snapshots)

    # 2. the snapshots' locks ended, the packs' not yet: the first run after drops the points;
    #    prune keeps the locked packs and reports them, and fails on nothing
    _sleep_until(snapshot_lock[1])
    plan = _plan(repo, catalog, rules)
    assert {d.point.id for d in plan.drops} == {p.id for p in old} and not plan.held
    report = expire(repo, catalog, plan, approved=True)
    assert sorted(report.deleted) == sorted(p.id for p in old) and not report.held and not report.leftovers
    assert [p.id for p in list_restore_points(catalog, statuses=None)] == [newest.id]
    before = data_bytes(repo)
    first = repo.prune()
    assert first.locked_skipped and all(k.startswith("data/") for k in first.locked_skipped)
    assert repo.check().ok

    # 3. after the packs' locks: the next prune reclaims them
    _sleep_until(pack_until)
    second = repo.prune()
    after = data_bytes(repo)
    print(f"\nlocked packs kept by the first prune: {len(first.locked_skipped)}; "
          f"second prune freed {before - after} bytes ({second.packs_deleted} packs)")
    assert second.packs_deleted > 0 and after < before and not second.locked_skipped
    assert repo.check(read_data=True).ok
    repo.restore(newest.volume_snapshot, tmp_path / "restored")
    assert digest_tree(tmp_path / "restored") == newest.digest


def test_renewal_extends_the_locks_of_points_the_rules_keep(locked_repo: Repository, tmp_path: Path) -> None:
    repo, catalog = locked_repo, _catalog(locked_repo, tmp_path)
    base = datetime.now(UTC) - timedelta(days=3)
    short = _lock(120)
    expiring = write_point(repo, catalog, tmp_path, app="web", started=base, seed=1, retention=short)
    kept = write_point(repo, catalog, tmp_path, app="web", started=base + timedelta(days=1), seed=2, retention=short)
    plan = _plan(repo, catalog, RetentionRules(keep_last=1))
    assert [d.point.id for d in plan.held] == [expiring.id]

    report = renew_locks(repo, plan, mode="COMPLIANCE", days=1, renew_before=timedelta(days=2))
    assert report.renewed == [kept.id] and not report.errors
    until = report.retain_until
    assert until is not None and until > datetime.now(UTC) + timedelta(hours=23)
    for sid in kept.snapshots:
        assert repo.storage.stat(SNAPSHOTS_PREFIX + sid).retain_until == until.replace(microsecond=0)
    # everything the kept point needs is locked as long: its packs, the config, the key slots
    assert repo.storage.stat("config").retain_until == until.replace(microsecond=0)
    # the point the rules drop keeps its short lock: it expires when that ends
    assert repo.storage.stat(SNAPSHOTS_PREFIX + expiring.record_snapshot).retain_until == short[1]
    # the next plan sees the renewed lock (read from the storage, not the catalog row)
    again = {d.point.id: d for d in _plan(repo, catalog, RetentionRules(keep_last=1)).decisions()}
    assert again[kept.id].point.retain_until == until.replace(microsecond=0)
    # nothing is due any more
    assert renew_locks(repo, _plan(repo, catalog, RetentionRules(keep_last=1)), mode="COMPLIANCE", days=1,
                       renew_before=timedelta(hours=12)).renewed == []


def test_a_location_that_cannot_lock_renews_nothing(seaweedfs: S3TestServer, tmp_path: Path) -> None:
    storage: S3Storage = seaweedfs.storage(seaweedfs.plain_bucket)
    repo = Repository.init(storage, passphrase="pw", kdf=KdfParams.cheap(), chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = _catalog(repo, tmp_path)
    write_point(repo, catalog, tmp_path, app="web", started=datetime.now(UTC) - timedelta(days=1), seed=1)
    report = renew_locks(repo, _plan(repo, catalog, RetentionRules(keep_last=1)), mode="COMPLIANCE", days=7)
    assert report.renewed == [] and "cannot lock objects" in report.messages[0]
    repo.close()


def test_prune_does_not_copy_locked_packs(locked_repo: Repository, tmp_path: Path) -> None:
    repo, catalog = locked_repo, _catalog(locked_repo, tmp_path)
    base = datetime.now(UTC) - timedelta(days=10)
    points = [write_point(repo, catalog, tmp_path, app="db", started=base + timedelta(days=n), seed=n)
              for n in range(3)]
    until = _lock(300)[1]
    for info in repo.storage.list("data/"):
        repo.storage.set_retention(info.key, RetentionMode.COMPLIANCE, until)
    plan = _plan(repo, catalog, RetentionRules(keep_last=1))
    expire(repo, catalog, plan, approved=True)
    assert [p.id for p in list_restore_points(catalog, statuses=None)] == [points[-1].id]
    before = data_bytes(repo)
    result = repo.prune()
    assert result.locked_skipped and repo.check().ok
    # nothing can be deleted yet, so nothing should be written either
    assert result.packs_repacked == 0 and data_bytes(repo) == before
