"""Properties of the retention function over generated histories (hypothesis).

Timezones with DST (including Lord Howe's 30-minute shift), odd offsets (+05:45), and histories that
cross DST changes and ISO week 53 / week 1; gaps (empty buckets); points in the future; failed,
verified, suspect and locked points.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from kubekeep.retention import UNLIMITED, Decision, PointFacts, RetentionRules, Rule, bucket_key, decide

ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                                     "Asia/Kathmandu", "Pacific/Chatham", "America/Santiago")]
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
#: histories around 2026/2027: both DST changes of the northern and southern hemispheres, ISO 2026-W53
START = datetime(2026, 3, 1, tzinfo=UTC)
SPAN_MINUTES = int((NOW - START).total_seconds() // 60)

BUCKET_RULES = [(Rule.HOURLY, "keep_hourly"), (Rule.DAILY, "keep_daily"), (Rule.WEEKLY, "keep_weekly"),
                (Rule.MONTHLY, "keep_monthly"), (Rule.YEARLY, "keep_yearly")]

counts = st.one_of(st.just(0), st.integers(1, 6), st.just(UNLIMITED))
rules_strategy = st.builds(
    RetentionRules, keep_last=counts, keep_hourly=counts, keep_daily=counts, keep_weekly=counts,
    keep_monthly=counts, keep_yearly=counts,
    keep_within=st.one_of(st.none(), st.sampled_from(["1d", "36h", "2w", "1m", "1y", "3d12h"])))


@st.composite
def histories(draw: st.DrawFn, *, failed: bool = True, future: bool = True, marks: bool = True,
              locks: bool = True) -> list[PointFacts]:
    # clustered times: bursts (several points an hour/day) and gaps (empty buckets)
    n = draw(st.integers(0, 30))
    centres = draw(st.lists(st.integers(0, SPAN_MINUTES), min_size=1, max_size=6))
    points = []
    for i in range(n):
        centre = draw(st.sampled_from(centres))
        offset = draw(st.integers(-3 * 24 * 60, 3 * 24 * 60))
        minute = min(max(centre + offset, 0), SPAN_MINUTES)
        when = min(START + timedelta(minutes=minute, seconds=draw(st.integers(0, 59))), NOW)
        if future and draw(st.integers(0, 9)) == 0:
            when = NOW + timedelta(minutes=draw(st.integers(1, 10**6)))
        status = draw(st.sampled_from(["succeeded"] * 4 + (["failed", "partially_failed"] if failed else [])))
        retain = None
        if locks and draw(st.booleans()):
            retain = NOW + timedelta(minutes=draw(st.integers(-10**5, 10**5)))
        points.append(PointFacts(
            id=f"p{i:03d}", time=when, status=status, app="app", retain_until=retain,
            verified=draw(st.sampled_from([None, True, False])) if marks and status == "succeeded" else None,
            suspect=draw(st.booleans()) if marks else False))
    return points


def kept_ids(decisions: list[Decision]) -> set[str]:
    return {d.point.id for d in decisions if d.keep}


def by_id(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.point.id: d for d in decisions}


@settings(max_examples=150, deadline=None)
@given(histories(), rules_strategy, st.sampled_from(ZONES))
def test_idempotent_applying_twice_drops_nothing_more(points: list[PointFacts], rules: RetentionRules,
                                                        tz: ZoneInfo) -> None:
    first = decide(points, rules, tz, NOW)
    survivors = [p for p in points if p.id in kept_ids(first)]
    second = decide(survivors, rules, tz, NOW)
    assert kept_ids(second) == {p.id for p in survivors}


@settings(max_examples=150, deadline=None)
@given(histories(failed=False, future=False, marks=False, locks=False), rules_strategy, st.sampled_from(ZONES))
def test_bucket_rules_match_the_definition(points: list[PointFacts], rules: RetentionRules, tz: ZoneInfo) -> None:
    """Each rule keeps the newest point of each of its N most recent buckets that contain points
    (restated by brute force: group every point by its key, order buckets by their newest point)."""
    decisions = decide(points, rules, tz, NOW)
    for rule, attribute in BUCKET_RULES:
        wanted = getattr(rules, attribute)
        buckets: dict[str, PointFacts] = {}
        for p in points:
            key = bucket_key(rule, p.time, tz)
            if key not in buckets or (p.time, p.id) > (buckets[key].time, buckets[key].id):
                buckets[key] = p
        newest = sorted(buckets.values(), key=lambda p: (p.time, p.id), reverse=True)
        expected = set() if not wanted else {p.id for p in (newest if wanted == UNLIMITED else newest[:wanted])}
        actual = {d.point.id for d in decisions if any(r.rule is rule for r in d.reasons)}
        assert actual == expected, rule


@settings(max_examples=150, deadline=None)
@given(histories(), rules_strategy, st.sampled_from(ZONES))
def test_never_drops_locked_newest_usable_verified_clean_or_future(points: list[PointFacts],
                                                                   rules: RetentionRules, tz: ZoneInfo) -> None:
    decisions = by_id(decide(points, rules, tz, NOW))
    for p in points:
        if p.retain_until is not None and p.retain_until > NOW or p.time > NOW:
            assert decisions[p.id].keep, p
    past = sorted((p for p in points if p.time <= NOW), key=lambda p: (p.time, p.id), reverse=True)
    usable = [p for p in past if p.status == "succeeded"]
    for candidates in (usable, [p for p in usable if not p.suspect], [p for p in past if p.verified is True],
                       [p for p in past if p.status != "succeeded"]):
        if candidates:
            assert decisions[candidates[0].id].keep


@settings(max_examples=100, deadline=None)
@given(histories(future=False), histories(failed=False, marks=False, locks=False), rules_strategy,
       st.sampled_from(ZONES))
def test_future_points_change_no_other_decision(points: list[PointFacts], extra: list[PointFacts],
                                               rules: RetentionRules, tz: ZoneInfo) -> None:
    future = [PointFacts(id=f"f{p.id}", time=NOW + timedelta(seconds=1) + (p.time - START), app="app")
              for p in extra]
    alone = by_id(decide(points, rules, tz, NOW))
    mixed = by_id(decide(points + future, rules, tz, NOW))
    assert {i: d.keep for i, d in alone.items()} == {i: mixed[i].keep for i in alone}
    assert all(mixed[p.id].keep for p in future)


@settings(max_examples=100, deadline=None)
@given(histories(failed=False), histories(failed=False, future=False, marks=False, locks=False), rules_strategy,
       st.sampled_from(ZONES))
def test_failed_points_never_fill_a_bucket(points: list[PointFacts], broken: list[PointFacts],
                                           rules: RetentionRules, tz: ZoneInfo) -> None:
    if rules.is_empty():
        return  # no rules: everything is kept, failed points too
    failed = [PointFacts(id=f"x{p.id}", time=p.time, status="failed", app="app") for p in broken]
    alone = by_id(decide(points, rules, tz, NOW))
    mixed = decide(points + failed, rules, tz, NOW)
    mixed_by_id = by_id(mixed)
    assert {i: d.keep for i, d in alone.items()} == {i: mixed_by_id[i].keep for i in alone}
    kept_failed = [d for d in mixed if d.point.status == "failed" and d.keep]
    assert len(kept_failed) == (1 if failed else 0)
    assert all(r.rule is Rule.NEWEST_FAILED for d in kept_failed for r in d.reasons)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, SPAN_MINUTES * 60), st.integers(0, 2 * 3600), st.sampled_from(ZONES))
def test_a_bucket_is_one_contiguous_stretch_of_real_time(start: int, gap: int, tz: ZoneInfo) -> None:
    """Two moments in one hourly bucket are less than an hour apart, even across a fall-back (where the
    local hour repeats); in one daily bucket, less than the longest day (25 h; Lord Howe: 24.5 h)."""
    a = START + timedelta(seconds=start)
    b = a + timedelta(seconds=gap)
    if bucket_key(Rule.HOURLY, a, tz) == bucket_key(Rule.HOURLY, b, tz):
        assert b - a < timedelta(hours=1)
    if bucket_key(Rule.DAILY, a, tz) == bucket_key(Rule.DAILY, b, tz):
        assert b - a < timedelta(hours=25)
    # and every moment between two of the same bucket is in that bucket too
    mid = a + (b - a) / 2
    for rule in (Rule.HOURLY, Rule.DAILY, Rule.WEEKLY, Rule.MONTHLY):
        if bucket_key(rule, a, tz) == bucket_key(rule, b, tz):
            assert bucket_key(rule, mid, tz) == bucket_key(rule, a, tz)


@settings(max_examples=100, deadline=None)
@given(histories(), rules_strategy, st.sampled_from(ZONES))
def test_every_decision_says_why(points: list[PointFacts], rules: RetentionRules, tz: ZoneInfo) -> None:
    decisions = decide(points, rules, tz, NOW)
    assert sorted(d.point.id for d in decisions) == sorted(p.id for p in points)
    for d in decisions:
        assert d.reasons
        assert d.expires_when_unlocked == (d.keep and d.reasons[0].rule is Rule.LOCKED)
        if not d.keep:
            assert d.reasons[0].rule in (Rule.NO_MATCH, Rule.FAILED, Rule.RECORD_GONE)
