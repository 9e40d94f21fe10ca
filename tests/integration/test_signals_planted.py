"""Planted attacks, detected at core level: real volume data through the repository, real SeaweedFS S3,
real kube-apiserver for the manifests (issue 13).

Each volume test backs up a deterministic application volume for some benign days
(benchmarks/signals_scenarios.py), then plants an attack and backs up again; the
attack's restore point must be suspect, with reasons naming what happened. The
benign series runs 100 days of churn (log appends and rotation, database pages
rewritten, uploads, releases) and allows at most one false positive.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.signals_scenarios import AppVolume, CorePipeline
from kubekeep.backup.collect import CollectReport, collect
from kubekeep.backup.scope import BackupScope
from kubekeep.catalog import Catalog, last_clean_point, list_signals, suspect_points
from kubekeep.cluster import Cluster
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, S3Storage, Storage
from kubekeep.signals import SignalsError, acknowledge, rebuild_signals

BENIGN_DAYS = 8


def _pipeline(storage: Storage, tmp_path: Path) -> CorePipeline:
    repo = Repository.init(storage, passphrase="signals", kdf=KdfParams.cheap())
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "catalog-cache", codec=repo.catalog_codec())
    return CorePipeline(repo, catalog)


def _benign_history(pipeline: CorePipeline, volume: AppVolume, days: int) -> None:
    volume.create()
    for day in range(days + 1):
        if day:
            volume.benign_day(day)
        signals = pipeline.backup(day, volume.root)
        assert not signals.suspect, signals.reasons


ATTACKS: dict[str, tuple[Callable[[AppVolume], int], list[str]]] = {
    "encrypt-30pct": (lambda v: v.encrypt(0.30), ["files changed", "files rewritten with high-entropy data"]),
    "delete-60pct": (lambda v: v.delete(0.60), ["files deleted"]),
    "rename-locked-with-notes": (lambda v: v.rename_locked(),
                                 ["files whose extension changed", "directories given one identical new small file",
                                  "files with an extension new to the volume"]),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_planted_volume_attack_is_flagged(attack: str, s3_storage: S3Storage, tmp_path: Path) -> None:
    pipeline = _pipeline(s3_storage, tmp_path)
    volume = AppVolume(tmp_path / "volume", seed=13)
    _benign_history(pipeline, volume, BENIGN_DAYS)
    plant, expected = ATTACKS[attack]
    assert plant(volume) > 0
    signals = pipeline.backup(BENIGN_DAYS + 1, volume.root)
    assert signals.suspect, f"{attack} not flagged: score {signals.score}"
    text = "\n".join(signals.reasons)
    for words in expected:
        assert words in text, f"{attack}: no reason mentions {words!r}:\n{text}"
    attacked = signals.restore_point_id
    assert suspect_points(pipeline.catalog, "shop") == {attacked}
    clean = f"shop-d{BENIGN_DAYS:04d}"
    assert last_clean_point(pipeline.catalog, "shop") == clean
    # the next point (the attack stays in the data, the day's changes look normal) is not clean either
    volume.benign_day(BENIGN_DAYS + 2)
    after = pipeline.backup(BENIGN_DAYS + 2, volume.root)
    assert after.baseline[0] != attacked  # the suspect point is not in the baseline
    assert last_clean_point(pipeline.catalog, "shop") == clean


def test_acknowledged_point_joins_the_baseline_and_survives_a_catalog_rebuild(
        s3_storage: S3Storage, tmp_path: Path) -> None:
    pipeline = _pipeline(s3_storage, tmp_path)
    volume = AppVolume(tmp_path / "volume", seed=21)
    _benign_history(pipeline, volume, 5)
    volume.delete(0.6)  # say: an intended clean-up
    flagged = pipeline.backup(6, volume.root)
    assert flagged.suspect
    with pytest.raises(SignalsError, match="is not suspect"):
        acknowledge(pipeline.repo, pipeline.catalog, "shop-d0005")
    with pytest.raises(SignalsError, match="no restore point"):
        acknowledge(pipeline.repo, pipeline.catalog, "shop-nope")
    acknowledge(pipeline.repo, pipeline.catalog, flagged.restore_point_id, by="alice", reason="planned clean-up")
    with pytest.raises(SignalsError, match="acknowledged already .* by alice"):
        acknowledge(pipeline.repo, pipeline.catalog, flagged.restore_point_id)
    assert suspect_points(pipeline.catalog, "shop") == set()
    volume.benign_day(7)
    nxt = pipeline.backup(7, volume.root)
    assert nxt.baseline[0] == flagged.restore_point_id
    assert last_clean_point(pipeline.catalog, "shop") == "shop-d0007"
    before = [(r.restore_point_id, r.subject, r.score, r.suspect) for r in list_signals(pipeline.catalog)]

    # lose the catalog: signals and the acknowledgement come back from the repository
    for info in list(s3_storage.list("catalog/")):
        s3_storage.delete(info.key)
    fresh = Catalog(pipeline.repo.storage, cache_dir=tmp_path / "other-cache", codec=pipeline.repo.catalog_codec())
    from kubekeep.restorepoint import rebuild_repository_catalog

    rebuild_repository_catalog(pipeline.repo, cache_dir=str(tmp_path / "other-cache"))
    result = rebuild_signals(pipeline.repo, fresh)
    assert (result.points_written, result.acks_written, result.problems) == (8, 1, ())
    assert [(r.restore_point_id, r.subject, r.score, r.suspect) for r in list_signals(fresh)] == before
    assert suspect_points(fresh, "shop") == set() and last_clean_point(fresh, "shop") == "shop-d0007"
    assert rebuild_signals(pipeline.repo, fresh).points_written == 0  # idempotent


def _app_objects(cluster: Cluster, namespace: str) -> list[dict[str, object]]:
    return list(collect(cluster, BackupScope(namespaces=(namespace,)), CollectReport()))


def test_mass_deletion_of_secrets_is_flagged(cluster: Cluster, namespace: str, s3_storage: S3Storage,
                                             tmp_path: Path) -> None:
    pipeline = _pipeline(s3_storage, tmp_path)
    pipeline.namespace = namespace
    for i in range(8):
        cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"api-key-{i}",
                        "namespace": namespace}, "stringData": {"key": f"value-{i}"}})
    for i in range(4):
        cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"settings-{i}",
                        "namespace": namespace}, "data": {"level": "info"}})
    for day in range(5):  # benign: a config changes, a secret is rotated (deleted and added under a new name)
        if day:
            cluster.patch("v1", "ConfigMap", "settings-0", {"data": {"level": f"debug-{day}"}}, namespace=namespace)
        if day == 3:
            cluster.delete("v1", "Secret", "api-key-7", namespace)
            cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key-7b",
                            "namespace": namespace}, "stringData": {"key": "rotated"}})
        signals = pipeline.backup(day, None, _app_objects(cluster, namespace))
        assert not signals.suspect, signals.reasons
    for i in range(7):
        cluster.delete("v1", "Secret", f"api-key-{i}", namespace)
    signals = pipeline.backup(5, None, _app_objects(cluster, namespace))
    assert signals.suspect
    assert signals.objects is not None and signals.objects.deleted_by_kind == {"Secret": 7}
    assert signals.reasons[0].startswith("objects: Secret deleted 87.5 % (7 of 8 objects)")


def test_benign_series_of_100_points_has_at_most_one_false_positive(tmp_path: Path) -> None:
    # on a filesystem repository: the scores do not depend on the storage (the attacks above run on S3), and
    # 101 points against SeaweedFS took ~580 s of the CI's budget (~5.7 s a point, 0.24 s on a filesystem)
    pipeline = _pipeline(FilesystemStorage(tmp_path / "repo", create=True), tmp_path)
    volume = AppVolume(tmp_path / "volume", seed=7)
    volume.create()
    flagged: list[tuple[int, float, list[str]]] = []
    scores: list[float] = []
    for day in range(101):  # the first point is the full backup; 100 judged points follow
        if day:
            volume.benign_day(day)
        signals = pipeline.backup(day, volume.root, compact_every=10)
        scores.append(signals.score)
        if signals.suspect:
            flagged.append((day, signals.score, signals.reasons))
    assert len(flagged) <= 1, flagged
    # the series did churn: releases, rotation and uploads were seen
    rows = {r.restore_point_id: r for r in list_signals(pipeline.catalog) if r.subject}
    assert rows["shop-d0025"].files_added and rows["shop-d0025"].files_added >= 40  # a release
    assert rows["shop-d0050"].files_deleted and rows["shop-d0050"].files_deleted >= 40  # the old release dropped
    assert sum(r.files_deleted or 0 for r in rows.values()) > 100  # rotation and deleted uploads
