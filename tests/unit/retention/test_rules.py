"""The pure retention function, example by example (restic semantics and where it does better)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kubekeep.retention import (
    UNLIMITED,
    CalendarDuration,
    DurationError,
    PointFacts,
    RetentionError,
    RetentionRules,
    Rule,
    bucket_key,
    decide,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 6, 1, tzinfo=UTC)


def pt(point_id: str, when: datetime, **kw: object) -> PointFacts:
    return PointFacts(id=point_id, time=when, app="shop", snapshot_id=f"s-{point_id}", **kw)  # type: ignore[arg-type]


def kept(decisions: list, rule: Rule | None = None) -> list[str]:  # type: ignore[type-arg]
    return [d.point.id for d in decisions if d.keep and (rule is None or any(r.rule is rule for r in d.reasons))]


def daily_points(days: int, start: datetime = datetime(2026, 1, 1, 2, tzinfo=UTC)) -> list[PointFacts]:
    return [pt(f"d{n:02d}", start + timedelta(days=n)) for n in range(days)]


def test_keep_daily_keeps_the_newest_point_of_the_newest_days() -> None:
    points = daily_points(10)
    decisions = decide(points, RetentionRules(keep_daily=3), "UTC", NOW)
    assert kept(decisions) == ["d09", "d08", "d07"]
    assert [d.point.id for d in decisions] == [f"d{n:02d}" for n in range(9, -1, -1)]  # newest first
    dropped = [d for d in decisions if not d.keep]
    assert all(d.reasons[0].rule is Rule.NO_MATCH for d in dropped)


def test_several_points_a_day_keep_the_newest_of_each_day() -> None:
    day = datetime(2026, 3, 10, tzinfo=UTC)
    points = [pt(f"h{h:02d}", day + timedelta(hours=h)) for h in (1, 9, 17)]
    points += [pt("prev", day - timedelta(hours=2))]
    decisions = decide(points, RetentionRules(keep_daily=2), "UTC", NOW)
    assert kept(decisions) == ["h17", "prev"]


def test_rules_are_ored_and_reasons_name_rule_typed_buckets() -> None:
    # 2026-01-05 is in ISO week 2026-W02 and month 2026-01: the keys never collide
    points = daily_points(40, datetime(2025, 12, 1, 2, tzinfo=UTC))
    decisions = decide(points, RetentionRules(keep_last=2, keep_weekly=2, keep_monthly=2), "UTC", NOW)
    newest = decisions[0]
    details = {r.rule: r.detail for r in newest.reasons}
    assert details[Rule.LAST] == "last 1 of 2"
    assert details[Rule.WEEKLY] == "weekly:2026-W02"
    assert details[Rule.MONTHLY] == "monthly:2026-01"
    # last 2 + newest of the 2 newest weeks + newest of the 2 newest months
    assert kept(decisions) == ["d39", "d38", "d34", "d30"]  # d34: Sunday 2026-01-04, end of W01
    assert kept(decisions, Rule.MONTHLY) == ["d39", "d30"]  # 2026-01-09 and 2025-12-31


def test_empty_buckets_are_skipped_not_counted() -> None:
    base = datetime(2026, 5, 1, 12, tzinfo=UTC)
    points = [pt(f"p{n}", base + timedelta(days=n)) for n in (0, 1, 10, 11)]
    decisions = decide(points, RetentionRules(keep_daily=3), "UTC", NOW)
    assert kept(decisions) == ["p11", "p10", "p1"]


def test_unlimited_keeps_every_bucket() -> None:
    points = daily_points(5) + [pt("same-day", datetime(2026, 1, 5, 3, tzinfo=UTC))]
    decisions = decide(points, RetentionRules(keep_daily=UNLIMITED), "UTC", NOW)
    assert sorted(kept(decisions)) == ["d00", "d01", "d02", "d03", "same-day"]
    assert RetentionRules(keep_daily="unlimited").keep_daily == UNLIMITED  # type: ignore[arg-type]


def test_no_rules_keeps_everything() -> None:
    decisions = decide(daily_points(3), RetentionRules(), "UTC", NOW)
    assert kept(decisions) == ["d02", "d01", "d00"]
    assert decisions[-1].reasons[0].rule is Rule.NO_RULES


def test_declared_timezone_decides_the_day() -> None:
    # 22:30Z is 23:30 in Berlin (January 1); 23:30Z is 00:30 on January 2 in Berlin
    a = pt("a", datetime(2026, 1, 1, 22, 30, tzinfo=UTC))
    b = pt("b", datetime(2026, 1, 1, 23, 30, tzinfo=UTC))
    assert kept(decide([a, b], RetentionRules(keep_daily=5), "UTC", NOW)) == ["b"]
    assert kept(decide([a, b], RetentionRules(keep_daily=5), BERLIN, NOW)) == ["b", "a"]
    assert bucket_key(Rule.DAILY, b.time, BERLIN) == "daily:2026-01-02"


def test_dst_fall_back_repeated_hour_is_two_hourly_buckets() -> None:
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice
    first = pt("cest", datetime(2026, 10, 25, 0, 30, tzinfo=UTC))   # 02:30+02:00
    second = pt("cet", datetime(2026, 10, 25, 1, 30, tzinfo=UTC))   # 02:30+01:00
    assert first.time.astimezone(BERLIN).hour == second.time.astimezone(BERLIN).hour == 2
    assert bucket_key(Rule.HOURLY, first.time, BERLIN) == "hourly:2026-10-25T02+02:00"
    assert bucket_key(Rule.HOURLY, second.time, BERLIN) == "hourly:2026-10-25T02+01:00"
    assert kept(decide([first, second], RetentionRules(keep_hourly=10), BERLIN, NOW)) == ["cet", "cest"]
    # the 25-hour day is still one day
    day = [pt(f"h{h}", datetime(2026, 10, 24, 22, 30, tzinfo=UTC) + timedelta(hours=h)) for h in range(25)]
    assert {bucket_key(Rule.DAILY, p.time, BERLIN) for p in day} == {"daily:2026-10-25"}
    assert kept(decide(day, RetentionRules(keep_daily=1), BERLIN, NOW)) == ["h24"]


def test_dst_spring_forward_23_hour_day_is_one_bucket() -> None:
    day = [pt(f"h{h}", datetime(2026, 3, 28, 23, 30, tzinfo=UTC) + timedelta(hours=h)) for h in range(23)]
    assert {bucket_key(Rule.DAILY, p.time, BERLIN) for p in day} == {"daily:2026-03-29"}
    hours = {bucket_key(Rule.HOURLY, p.time, BERLIN) for p in day}
    assert len(hours) == 23 and "hourly:2026-03-29T02+01:00" not in hours  # 02:xx does not exist that day


def test_keep_within_counts_calendar_days_in_the_timezone() -> None:
    # latest: 2026-03-29 12:00 CEST (10:00Z), the day of the change; "1d" reaches back to
    # 2026-03-28 12:00 CET (11:00Z): 23 real hours, not 24
    latest = pt("latest", datetime(2026, 3, 29, 10, 0, tzinfo=UTC))
    inside = pt("inside", datetime(2026, 3, 28, 11, 30, tzinfo=UTC))
    outside = pt("outside", datetime(2026, 3, 28, 10, 30, tzinfo=UTC))  # 23.5 h before: outside 1 calendar day
    decisions = decide([latest, inside, outside], RetentionRules(keep_within="1d"), BERLIN, NOW)
    assert kept(decisions) == ["latest", "inside"]
    assert kept(decide([latest, inside, outside], RetentionRules(keep_within="24h"), BERLIN, NOW)) == [
        "latest", "inside", "outside"]


def test_keep_within_is_measured_from_the_latest_point_not_now() -> None:
    old = daily_points(10)  # January 2026, long before NOW
    decisions = decide(old, RetentionRules(keep_within="3d"), "UTC", NOW)
    assert kept(decisions) == ["d09", "d08", "d07"]


def test_iso_week_53_and_week_1() -> None:
    assert bucket_key(Rule.WEEKLY, datetime(2026, 12, 31, 12, tzinfo=UTC), BERLIN) == "weekly:2026-W53"
    assert bucket_key(Rule.WEEKLY, datetime(2027, 1, 2, 12, tzinfo=UTC), BERLIN) == "weekly:2026-W53"
    assert bucket_key(Rule.WEEKLY, datetime(2027, 1, 4, 12, tzinfo=UTC), BERLIN) == "weekly:2027-W01"
    assert bucket_key(Rule.WEEKLY, datetime(2024, 12, 30, 12, tzinfo=UTC), BERLIN) == "weekly:2025-W01"
    # the week key never says 2027-W53 for January 1 2027, nor 2024-W01 for December 30 2024
    assert bucket_key(Rule.MONTHLY, datetime(2024, 12, 30, 12, tzinfo=UTC), BERLIN) == "monthly:2024-12"
    points = [pt("dec31", datetime(2026, 12, 31, 12, tzinfo=UTC)), pt("jan2", datetime(2027, 1, 2, 12, tzinfo=UTC)),
              pt("jan5", datetime(2027, 1, 5, 12, tzinfo=UTC))]
    decisions = decide(points, RetentionRules(keep_weekly=2), BERLIN, NOW)
    assert kept(decisions) == ["jan5", "jan2"]
    # Sunday night 23:30 UTC is already Monday in Berlin: the next ISO week there
    sunday_late = datetime(2026, 12, 27, 23, 30, tzinfo=UTC)
    assert bucket_key(Rule.WEEKLY, sunday_late, ZoneInfo("UTC")) == "weekly:2026-W52"
    assert bucket_key(Rule.WEEKLY, sunday_late, BERLIN) == "weekly:2026-W53"


def test_failed_points_never_fill_a_bucket_and_the_newest_is_kept() -> None:
    base = datetime(2026, 2, 1, 2, tzinfo=UTC)
    points = [pt("good1", base), pt("good2", base + timedelta(days=1)),
              pt("bad-old", base + timedelta(days=2), status="failed"),
              pt("partial", base + timedelta(days=3), status="partially_failed")]
    decisions = decide(points, RetentionRules(keep_daily=2, keep_last=1), "UTC", NOW)
    by_id = {d.point.id: d for d in decisions}
    # the two newest days hold failed points: the daily rule reaches back to the good ones
    assert kept(decisions, Rule.DAILY) == ["good2", "good1"]
    assert kept(decisions, Rule.LAST) == ["good2"]
    assert by_id["partial"].keep and by_id["partial"].reasons[0].rule is Rule.NEWEST_FAILED
    assert not by_id["bad-old"].keep and by_id["bad-old"].reasons[0].rule is Rule.FAILED


def test_newest_verified_and_newest_clean_are_always_kept() -> None:
    base = datetime(2026, 2, 1, 2, tzinfo=UTC)
    points = [pt("verified", base, verified=True), pt("clean", base + timedelta(days=1)),
              pt("sus1", base + timedelta(days=2), suspect=True), pt("sus2", base + timedelta(days=3), suspect=True,
                                                                     verified=False)]
    decisions = decide(points, RetentionRules(keep_last=1), "UTC", NOW)
    assert kept(decisions) == ["sus2", "clean", "verified"]
    assert kept(decisions, Rule.NEWEST_CLEAN) == ["clean"]
    assert kept(decisions, Rule.NEWEST_VERIFIED) == ["verified"]
    # suspect and failed-verification points still fill buckets (a noisy detector drops nothing)
    assert kept(decisions, Rule.LAST) == ["sus2"]


def test_object_lock_holds_a_dropped_point_until_it_ends() -> None:
    base = datetime(2026, 2, 1, 2, tzinfo=UTC)
    until = datetime(2026, 2, 20, tzinfo=UTC)
    points = [pt("new", base + timedelta(days=1)), pt("locked", base, retain_until=until)]
    before = decide(points, RetentionRules(keep_last=1), "UTC", until - timedelta(seconds=1))
    held = before[1]
    assert held.keep and held.expires_when_unlocked and not held.kept_by_rules
    assert held.reasons[0].rule is Rule.LOCKED and "expires when its lock ends" in held.reasons[0].detail
    assert held.reasons[1].rule is Rule.NO_MATCH  # and why the rules drop it
    after = decide(points, RetentionRules(keep_last=1), "UTC", until)
    assert not after[1].keep and not after[1].expires_when_unlocked
    # a point the rules keep is never "expiring", whatever its lock
    assert before[0].kept_by_rules


def test_future_points_are_kept_and_never_counted() -> None:
    base = datetime(2026, 2, 1, 2, tzinfo=UTC)
    points = [pt("p0", base), pt("p1", base + timedelta(days=1)), pt("future", NOW + timedelta(days=400))]
    decisions = decide(points, RetentionRules(keep_last=1, keep_within="2d", keep_yearly=1), "UTC", NOW)
    by_id = {d.point.id: d for d in decisions}
    assert by_id["future"].keep and [r.rule for r in by_id["future"].reasons] == [Rule.FUTURE]
    # without the future point in the buckets, the real newest point keeps the year and the last slot
    assert kept(decisions, Rule.LAST) == ["p1"] and kept(decisions, Rule.YEARLY) == ["p1"]
    assert kept(decisions, Rule.WITHIN) == ["p1", "p0"]


def test_record_gone_is_dropped_even_when_the_catalog_says_locked() -> None:
    gone = pt("gone", datetime(2026, 2, 1, tzinfo=UTC), record_present=False,
              retain_until=NOW + timedelta(days=3))
    decisions = decide([gone, pt("ok", datetime(2026, 2, 2, tzinfo=UTC))], RetentionRules(keep_last=5), "UTC", NOW)
    assert kept(decisions) == ["ok"]
    assert decisions[1].reasons[0].rule is Rule.RECORD_GONE


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(RetentionError, match="unknown timezone 'Mars/Olympus'"):
        decide([], RetentionRules(keep_last=1), "Mars/Olympus", NOW)
    with pytest.raises(RetentionError, match="timezone-aware"):
        pt("naive", datetime(2026, 1, 1))
    with pytest.raises(RetentionError, match="unique"):
        decide([pt("x", NOW - timedelta(1)), pt("x", NOW - timedelta(2))], RetentionRules(keep_last=1), "UTC", NOW)
    with pytest.raises(ValidationError, match="greater than or equal to -1"):
        RetentionRules(keep_daily=-2)
    with pytest.raises(ValidationError, match="units y, m, w, d, h"):
        RetentionRules(keep_within="30 days")
    with pytest.raises(ValidationError, match="Extra inputs"):
        RetentionRules(keep_dayly=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", CalendarDuration(days=30)), ("1y6m", CalendarDuration(years=1, months=6)),
    ("2w", CalendarDuration(days=14)), ("36h", CalendarDuration(hours=36)),
    ("1y2m3w4d5h", CalendarDuration(1, 2, 25, 5)), (" 7D ", CalendarDuration(days=7)),
])
def test_durations_parse(text: str, expected: CalendarDuration) -> None:
    assert CalendarDuration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "1d1d", "1d1y", "0d", "-1d", "1.5d", "30 days", "1min"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        CalendarDuration.parse(text)


def test_month_arithmetic_clamps_to_the_month_end() -> None:
    utc = ZoneInfo("UTC")
    assert CalendarDuration(months=1).before(datetime(2026, 3, 31, 12, tzinfo=UTC), utc) == datetime(
        2026, 2, 28, 12, tzinfo=utc)
    assert CalendarDuration(years=1).before(datetime(2028, 2, 29, tzinfo=UTC), utc) == datetime(2027, 2, 28, tzinfo=utc)
    assert CalendarDuration(months=14).before(datetime(2026, 1, 15, tzinfo=UTC), utc) == datetime(
        2024, 11, 15, tzinfo=utc)
    # hours are real hours across a DST change
    back = CalendarDuration(hours=3).before(datetime(2026, 3, 29, 2, 0, tzinfo=UTC), BERLIN)  # 04:00 CEST
    assert back == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
