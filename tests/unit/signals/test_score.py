"""Scoring: robust z-scores against the app's baseline (pure functions)."""

from __future__ import annotations

import pytest

from kubekeep.signals import FEATURES, ObjectSignals, PointSignals, SignalPolicy, VolumeSignals, robust_z, score_point
from kubekeep.signals.score import select_baseline


def volume(*, prev: int = 1000, added: int = 5, changed: int = 10, deleted: int = 2,
           **kw: int | float) -> VolumeSignals:
    v = VolumeSignals(namespace="shop", pvc="data", snapshot_id="s", previous_snapshot_id="p", files=prev,
                      previous_files=prev, previous_directories=50, logical_bytes=100 << 20,
                      files_added=added, files_changed=changed, files_deleted=deleted, new_unique_bytes=1 << 20)
    for k, value in kw.items():
        setattr(v, k, value)
    return v


def point(n: int, v: VolumeSignals | None = None, objects: ObjectSignals | None = None, *,
          suspect: bool = False) -> PointSignals:
    return PointSignals(restore_point_id=f"p{n:03d}", app="shop",
                        finished_at=f"2026-01-{n % 28 + 1:02d}T00:00:00+00:00",
                        previous_point_id=f"p{n - 1:03d}", volumes=[v or volume()], objects=objects,
                        suspect=suspect)


def baseline(n: int = 20) -> list[PointSignals]:
    # a steady app: 0.8-1.2 % of files changed, a couple deleted, a few added
    return [point(i, volume(changed=8 + i % 5, deleted=1 + i % 3, added=3 + i % 4)) for i in range(n)]


def test_robust_z_ignores_outliers_and_floors_a_steady_baseline() -> None:
    z, median, scale = robust_z(0.30, [0.01] * 10 + [0.9], floor=0.02, direction=1)
    assert median == 0.01 and scale == 0.02  # MAD 0: the floor is the spread
    assert z == pytest.approx(14.5)
    z, _, scale = robust_z(0.05, [0.01, 0.03, 0.05, 0.07, 0.09], floor=0.001, direction=1)
    assert scale == pytest.approx(1.4826 * 0.02) and z == pytest.approx(0.0)
    assert robust_z(0.0, [0.5] * 5, floor=0.02, direction=1)[0] == 0.0  # only the suspicious direction counts
    assert robust_z(0.1, [], floor=0.02, direction=1)[0] == pytest.approx(5.0)  # no baseline: median 0


def test_a_normal_day_is_not_suspect_and_has_no_reasons() -> None:
    result = score_point(point(99, volume(changed=11, deleted=2, added=4)), baseline(), SignalPolicy())
    assert not result.suspect and result.score < 1.0 and result.reasons == []


def test_mass_deletion_is_suspect_with_a_readable_reason() -> None:
    result = score_point(point(99, volume(deleted=600)), baseline(), SignalPolicy())
    assert result.suspect and result.score > 20
    assert result.reasons[0].startswith("volume shop/data: files deleted 60.0 % (600 of 1000 files); "
                                        "baseline median 0.2 % over 20 point(s); z ")
    assert result.subject_scores["shop/data"] == result.score


def test_threshold_is_per_policy() -> None:
    p = point(99, volume(changed=80))  # 8 % of files changed against ~1 %
    assert not score_point(p, baseline(), SignalPolicy(threshold=6)).suspect
    assert score_point(p, baseline(), SignalPolicy(threshold=3)).suspect


def test_a_few_files_are_never_a_mass_event() -> None:
    tiny = volume(prev=4, deleted=3, added=0, changed=0)  # 75 % of a 4-file volume
    result = score_point(point(99, tiny), baseline(), SignalPolicy(min_files=5))
    assert not result.suspect
    assert score_point(point(99, tiny), baseline(), SignalPolicy(min_files=3)).suspect


def test_high_entropy_share_is_judged_only_on_enough_new_content() -> None:
    small = volume(new_chunk_bytes=200 << 10, incompressible_bytes=200 << 10)
    big = volume(new_chunk_bytes=20 << 20, incompressible_bytes=20 << 20)
    quiet = [point(i, volume(new_chunk_bytes=2 << 20, incompressible_bytes=100 << 10)) for i in range(10)]
    assert not score_point(point(99, small), quiet, SignalPolicy()).suspect
    result = score_point(point(99, big), quiet, SignalPolicy())
    assert result.suspect and "new content that did not compress 100.0 %" in result.reasons[0]


def test_first_points_are_not_judged_and_do_not_enter_the_baseline() -> None:
    first = volume(added=1000)
    first.previous_snapshot_id = None
    assert score_point(point(0, first), [], SignalPolicy()).score == 0.0
    # a first point in the baseline adds no values: the median comes from the others
    result = score_point(point(99, volume(deleted=2)), [point(0, first), *baseline(5)], SignalPolicy())
    assert not result.suspect


def test_suspect_points_leave_the_baseline_unless_acknowledged() -> None:
    history = [point(50, volume(deleted=500), suspect=True), *baseline(10)]
    assert [p.restore_point_id for p in select_baseline(history, set(), SignalPolicy())][0] == "p000"
    assert select_baseline(history, {"p050"}, SignalPolicy())[0].restore_point_id == "p050"
    assert len(select_baseline(history, set(), SignalPolicy(baseline_points=3))) == 3
    # an acknowledged big deletion in the baseline makes the next one less surprising
    big = [point(60 + i, volume(deleted=400 + i * 50)) for i in range(6)]
    assert not score_point(point(99, volume(deleted=500)), big, SignalPolicy()).suspect


def objects(deleted: dict[str, int], previous: dict[str, int]) -> ObjectSignals:
    return ObjectSignals(previous_point_id="p", objects=100, previous_objects=sum(previous.values()),
                         deleted=sum(deleted.values()), previous_by_kind=previous, deleted_by_kind=deleted,
                         examples=[f"Secret shop/s{i}" for i in range(3)])


def test_mass_deletion_of_secrets_is_suspect() -> None:
    kinds = {"Secret": 12, "ConfigMap": 8, "Deployment.apps": 3, "Pod": 40}
    steady = [point(i, objects=objects({"Pod": 40}, kinds)) for i in range(10)]  # pods come and go
    assert not score_point(point(99, objects=objects({"Pod": 40}, kinds)), steady, SignalPolicy()).suspect
    result = score_point(point(99, objects=objects({"Secret": 12}, kinds)), steady, SignalPolicy())
    assert result.suspect
    assert result.reasons[0].startswith("objects: Secret deleted 100.0 % (12 of 12 objects)")
    one = score_point(point(99, objects=objects({"Secret": 1}, kinds)), steady, SignalPolicy())
    assert not one.suspect  # one Secret is below min_objects


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        SignalPolicy(threshold=0)
    with pytest.raises(ValueError, match="unknown feature"):
        SignalPolicy(floors={"files_delted": 0.1})
    assert SignalPolicy(floors={"files_deleted": 0.2}).floor(FEATURES["files_deleted"]) == 0.2
