"""The plan: groups by app and policy, the approval share, the JSON of a dry run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kubekeep.retention import ApprovalRequired, PointFacts, RetentionError, RetentionRules, build_plan

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def series(app: str, n: int, policy: str | None = "nightly", **kw: object) -> list[PointFacts]:
    return [PointFacts(id=f"{app}-{policy}-{i}", time=NOW - timedelta(days=i + 1), app=app, policy=policy,
                       snapshot_id=f"s{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


def test_groups_by_app_and_policy_so_one_policy_never_drops_another_policys_points() -> None:
    points = series("shop", 5) + series("shop", 5, policy="hourly") + series("blog", 2) + series("shop", 3, None)
    plan = build_plan(points, RetentionRules(keep_last=2), "UTC", now=NOW)
    assert [(g.app, g.policy) for g in plan.groups] == [("blog", "nightly"), ("shop", None), ("shop", "hourly"),
                                                        ("shop", "nightly")]
    assert {g.policy: len(g.drops) for g in plan.groups if g.app == "shop"} == {None: 1, "hourly": 3, "nightly": 3}
    only_nightly = build_plan(points, lambda app, policy: RetentionRules(keep_last=1) if policy == "nightly" else None,
                              "UTC", now=NOW)
    assert {(g.app, g.policy) for g in only_nightly.groups} == {("blog", "nightly"), ("shop", "nightly")}


def test_approval_needed_above_the_share_per_app() -> None:
    points = series("shop", 4) + series("blog", 10)
    plan = build_plan(points, RetentionRules(keep_last=2), "UTC", now=NOW)
    shares = {s.app: (s.dropped, s.total) for s in plan.shares()}
    assert shares == {"blog": (8, 10), "shop": (2, 4)}
    assert [s.app for s in plan.over_threshold()] == ["blog"]  # 50 % exactly is not more than 50 %
    assert plan.needs_approval
    with pytest.raises(ApprovalRequired, match=r"more than 50% of the restore points of blog \(8 of 10\)"):
        plan.check_approved(False)
    plan.check_approved(True)
    lenient = build_plan(points, RetentionRules(keep_last=2), "UTC", now=NOW, approval_share=0.9)
    assert not lenient.needs_approval
    lenient.check_approved(False)
    with pytest.raises(RetentionError, match="between 0 and 1"):
        build_plan(points, RetentionRules(keep_last=2), now=NOW, approval_share=50)


def test_points_already_gone_do_not_count_for_the_share() -> None:
    points = series("shop", 2) + [PointFacts(id=f"gone-{i}", time=NOW - timedelta(days=30 + i), app="shop",
                                             policy="nightly", record_present=False) for i in range(5)]
    plan = build_plan(points, RetentionRules(keep_last=2), "UTC", now=NOW)
    assert len(plan.drops) == 5 and not plan.needs_approval


def test_json_lists_each_point_with_action_and_reasons() -> None:
    points = series("shop", 3) + [PointFacts(id="locked", time=NOW - timedelta(days=10), app="shop",
                                             policy="nightly", retain_until=NOW + timedelta(days=1))]
    plan = build_plan(points, RetentionRules(keep_last=1, keep_daily=2), "Europe/Berlin", now=NOW)
    doc = json.loads(plan.to_json())
    assert doc["timezone"] == "Europe/Berlin" and doc["summary"] == {"points": 4, "keep": 3, "drop": 1,
                                                                      "held_by_lock": 1}
    rows = {p["id"]: p for p in doc["groups"][0]["points"]}
    assert rows["shop-nightly-0"]["action"] == "keep"
    assert [r["rule"] for r in rows["shop-nightly-0"]["reasons"]] == ["last", "daily", "newest-clean"]
    assert rows["shop-nightly-1"]["reasons"] == [{"rule": "daily", "detail": "daily:2026-05-30"}]
    assert rows["shop-nightly-2"]["action"] == "drop"
    assert rows["shop-nightly-2"]["reasons"][0]["rule"] == "matched-no-rule"
    assert rows["locked"]["action"] == "keep" and rows["locked"]["expires_when_unlocked"]
    assert doc["groups"][0]["rules"] == {"keep_last": 1, "keep_daily": 2}
    table = plan.rows()
    assert table[1]["why"] == "daily:2026-05-30" and table[3]["action"] == "keep"
