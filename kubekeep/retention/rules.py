"""GFS retention as a pure function: restore points + rules + timezone (+ now) -> keep or drop, with reasons.

Base semantics are restic's ``forget``:

- each counting rule (last, hourly, daily, weekly, monthly, yearly) keeps the newest point in each
  of the N most recent buckets that contain points (``last`` puts every point in its own bucket);
  -1 means every bucket;
- rules are OR'd: a point is kept when any rule keeps it;
- keep-within keeps every point newer than the latest point minus the duration (measured from the
  latest point, not from now).

Where restic and kopia go wrong, this does better:

- every bucket key names its rule (``weekly:2026-W01`` is never ``monthly:2026-01``) and is computed
  on the wall clock of one declared timezone, not the zone each snapshot happened to be taken in;
  an hourly key carries the UTC offset, so the repeated hour of a DST fall-back is two buckets;
- failed and partially failed points never fill a bucket (nor count for keep-last or keep-within):
  a broken backup never pushes a good one out; the newest failed point is kept for diagnosis;
- the newest verified point and the newest clean (succeeded, not suspect) point are always kept;
- a point whose timestamp lies in the future (a skewed clock) is kept, and neither fills a bucket
  nor moves "the latest point": it can never cause another point to be dropped;
- a point under Object Lock is never dropped before its retain-until: it is kept and reported as
  "expires when its lock ends", and the first run after that drops it.

A verification failure or a suspect mark does not stop a point from filling a bucket: a
misconfigured check or a noisy detector that flagged every point would otherwise make retention
drop the whole history. They only decide which points are always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .duration import CalendarDuration, DurationError

SUCCEEDED = "succeeded"
FAILED_STATUSES = frozenset({"failed", "partially_failed"})
UNLIMITED = -1


class RetentionError(ValueError):
    """Rules or inputs that retention cannot work with (bad timezone, naive timestamp, ...)."""


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name`` (``Europe/Berlin``, ``UTC``); RetentionError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RetentionError(f"unknown timezone {name!r}: use an IANA name such as UTC or Europe/Berlin") from None


def _count(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("unlimited", "all"):
        return UNLIMITED
    return value


_COUNT_HELP = "{}: keep the newest point of each of the N most recent {} that have points (-1 or 'unlimited': all)."


class RetentionRules(BaseModel):
    """Which restore points to keep (restic ``forget`` semantics with the improvements above)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_last: int = Field(default=0, ge=UNLIMITED, description="Keep the N newest points (-1: all).")
    keep_hourly: int = Field(default=0, ge=UNLIMITED, description=_COUNT_HELP.format("Hourly", "hours"))
    keep_daily: int = Field(default=0, ge=UNLIMITED, description=_COUNT_HELP.format("Daily", "days"))
    keep_weekly: int = Field(default=0, ge=UNLIMITED, description=_COUNT_HELP.format("Weekly", "ISO weeks"))
    keep_monthly: int = Field(default=0, ge=UNLIMITED, description=_COUNT_HELP.format("Monthly", "months"))
    keep_yearly: int = Field(default=0, ge=UNLIMITED, description=_COUNT_HELP.format("Yearly", "years"))
    keep_within: str | None = Field(
        default=None, description="Keep every point newer than the latest point minus this duration "
                                  "(e.g. 30d, 1y6m, 2w, 36h; m is months).")

    @field_validator("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly",
                     mode="before")
    @classmethod
    def _unlimited(cls, value: Any) -> Any:
        return _count(value)

    @field_validator("keep_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return str(CalendarDuration.parse(value))
        except DurationError as exc:
            raise ValueError(str(exc)) from None

    @property
    def within(self) -> CalendarDuration | None:
        return CalendarDuration.parse(self.keep_within) if self.keep_within else None

    def is_empty(self) -> bool:
        return not (self.keep_last or self.keep_hourly or self.keep_daily or self.keep_weekly
                    or self.keep_monthly or self.keep_yearly or self.keep_within)

    def describe(self) -> str:
        parts = [f"{'all' if n == UNLIMITED else n} {name}"
                 for name, n in (("last", self.keep_last), ("hourly", self.keep_hourly),
                                 ("daily", self.keep_daily), ("weekly", self.keep_weekly),
                                 ("monthly", self.keep_monthly), ("yearly", self.keep_yearly)) if n]
        if self.keep_within:
            parts.append(f"everything within {self.keep_within} of the latest point")
        return "keep " + ", ".join(parts) if parts else "no rules (keep everything)"


class Rule(StrEnum):
    """Why a point is kept or dropped (``Reason.rule``)."""

    LAST = "last"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"
    WITHIN = "within"
    NEWEST_VERIFIED = "newest-verified"
    NEWEST_CLEAN = "newest-clean"
    NEWEST_FAILED = "newest-failed"
    FUTURE = "future"
    LOCKED = "locked"
    NO_RULES = "no-rules"
    # reasons to drop
    NO_MATCH = "matched-no-rule"
    FAILED = "failed"
    RECORD_GONE = "record-gone"


@dataclass(frozen=True)
class Reason:
    rule: Rule
    #: the bucket (``daily:2026-01-05``) or a short explanation
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule.value, "detail": self.detail}


@dataclass(frozen=True)
class PointFacts:
    """What retention needs to know about one restore point."""

    id: str
    #: when the backup started (the moment its data represents); timezone-aware
    time: datetime
    status: str = SUCCEEDED
    app: str = ""
    policy: str | None = None
    #: the Object Lock date of the point's record in force now (None: not locked)
    retain_until: datetime | None = None
    #: the newest verification verdict (None: never verified)
    verified: bool | None = None
    #: marked suspect by the signals and not acknowledged
    suspect: bool = False
    #: False when the catalog still lists the point but its record is gone from the repository
    record_present: bool = True
    #: the point's record snapshot (to delete it)
    snapshot_id: str = ""

    def __post_init__(self) -> None:
        for name in ("time", "retain_until"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise RetentionError(f"restore point {self.id}: {name} must be timezone-aware")

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "app": self.app, "policy": self.policy, "time": self.time.isoformat(),
                "status": self.status,
                "retain_until": self.retain_until.isoformat() if self.retain_until else None,
                "verified": self.verified, "suspect": self.suspect, "record_present": self.record_present,
                "snapshot_id": self.snapshot_id}


@dataclass(frozen=True)
class Decision:
    point: PointFacts
    keep: bool
    reasons: tuple[Reason, ...]
    #: the rules drop the point but Object Lock holds it until ``point.retain_until``: the first run
    #: after that date drops it
    expires_when_unlocked: bool = False

    @property
    def action(self) -> str:
        return "keep" if self.keep else "drop"

    @property
    def kept_by_rules(self) -> bool:
        """Kept for a reason other than its lock (renewing the lock of such a point is right)."""
        return self.keep and not self.expires_when_unlocked

    def to_dict(self) -> dict[str, Any]:
        return {**self.point.to_dict(), "action": self.action,
                "reasons": [r.to_dict() for r in self.reasons],
                "expires_when_unlocked": self.expires_when_unlocked}


# -- bucket keys: rule-typed, on the wall clock of the declared timezone ---------------------------


def _hourly(local: datetime) -> str:
    offset = local.strftime("%z")
    return f"hourly:{local:%Y-%m-%dT%H}{offset[:3]}:{offset[3:]}"


def _daily(local: datetime) -> str:
    return f"daily:{local:%Y-%m-%d}"


def _weekly(local: datetime) -> str:
    year, week, _ = local.isocalendar()
    return f"weekly:{year:04d}-W{week:02d}"


def _monthly(local: datetime) -> str:
    return f"monthly:{local:%Y-%m}"


def _yearly(local: datetime) -> str:
    return f"yearly:{local:%Y}"


BUCKETS: tuple[tuple[Rule, str, Callable[[datetime], str]], ...] = (
    (Rule.HOURLY, "keep_hourly", _hourly),
    (Rule.DAILY, "keep_daily", _daily),
    (Rule.WEEKLY, "keep_weekly", _weekly),
    (Rule.MONTHLY, "keep_monthly", _monthly),
    (Rule.YEARLY, "keep_yearly", _yearly),
)


def bucket_key(rule: Rule, moment: datetime, tz: ZoneInfo) -> str:
    """The bucket of ``moment`` for ``rule`` in ``tz`` (e.g. ``weekly:2026-W53``)."""
    for candidate, _, key in BUCKETS:
        if candidate is rule:
            return key(moment.astimezone(tz))
    raise ValueError(f"{rule} has no buckets")


def _newest_first(points: Iterable[PointFacts]) -> list[PointFacts]:
    return sorted(points, key=lambda p: (p.time, p.id), reverse=True)


@dataclass
class _Keep:
    reasons: dict[str, list[Reason]] = field(default_factory=dict)

    def add(self, point: PointFacts, rule: Rule, detail: str) -> None:
        self.reasons.setdefault(point.id, []).append(Reason(rule, detail))


def decide(points: Iterable[PointFacts], rules: RetentionRules, tz: ZoneInfo | str = "UTC",
           now: datetime | None = None) -> list[Decision]:
    """Keep or drop each point of ONE group (an app's points of one policy), newest first.

    Pure: the same points, rules, timezone and ``now`` give the same decisions. ``now`` (default: the
    current time) decides which points are in the future and which locks are still in force.
    """
    tz = zone(tz) if isinstance(tz, str) else tz
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise RetentionError("now must be timezone-aware")
    ordered = _newest_first(points)
    if len({p.id for p in ordered}) != len(ordered):
        raise RetentionError("restore point ids must be unique within a group")
    present = [p for p in ordered if p.record_present]
    future = [p for p in present if p.time > now]
    # the points that fill buckets: succeeded, placed in the past, still in the repository
    counted = [p for p in present if p.time <= now and p.status == SUCCEEDED]
    keep = _Keep()

    if rules.keep_last:
        limit = len(counted) if rules.keep_last == UNLIMITED else rules.keep_last
        for n, point in enumerate(counted[:limit], 1):
            keep.add(point, Rule.LAST, f"last {n} of {'all' if rules.keep_last == UNLIMITED else limit}")
    for rule, attribute, key_of in BUCKETS:
        wanted: int = getattr(rules, attribute)
        if not wanted:
            continue
        seen: set[str] = set()
        for point in counted:  # newest first: the first point met in a bucket is its newest
            key = key_of(point.time.astimezone(tz))
            if key in seen:
                continue
            if wanted != UNLIMITED and len(seen) >= wanted:
                break
            seen.add(key)
            keep.add(point, rule, key)
    within = rules.within
    if within is not None and counted:
        latest = counted[0].time
        threshold = within.before(latest, tz)
        detail = f"within {within} of the latest point ({latest.astimezone(tz):%Y-%m-%d %H:%M %Z})"
        for point in counted:
            if point.time > threshold:
                keep.add(point, Rule.WITHIN, detail)

    past = [p for p in present if p.time <= now]
    verified = next((p for p in past if p.verified is True), None)
    if verified is not None:
        keep.add(verified, Rule.NEWEST_VERIFIED, "the newest point whose verification passed")
    clean = next((p for p in counted if not p.suspect), None)
    if clean is not None:
        keep.add(clean, Rule.NEWEST_CLEAN, "the newest succeeded point not marked suspect")
    failed = next((p for p in past if p.failed), None)
    if failed is not None:
        keep.add(failed, Rule.NEWEST_FAILED, f"the newest {failed.status} point, kept for diagnosis")
    for point in future:
        keep.add(point, Rule.FUTURE, f"its time {point.time.isoformat()} is after now: not counted, kept")
    if rules.is_empty():
        for point in present:
            keep.add(point, Rule.NO_RULES, "no retention rule is set: everything is kept")

    decisions = []
    for point in ordered:
        kept = keep.reasons.get(point.id)
        if kept:
            decisions.append(Decision(point, True, tuple(kept)))
            continue
        if not point.record_present:
            why = Reason(Rule.RECORD_GONE, "its record is gone from the repository: the catalog rows and "
                                           "leftover snapshots are removed")
        elif point.failed:
            why = Reason(Rule.FAILED, f"{point.status}: failed points never fill a bucket (a newer failed point "
                                      "is kept for diagnosis)")
        else:
            why = Reason(Rule.NO_MATCH, "no rule keeps it")
        if point.record_present and point.retain_until is not None and point.retain_until > now:
            lock = Reason(Rule.LOCKED, f"under Object Lock until {point.retain_until.isoformat()}: expires when "
                                       "its lock ends")
            decisions.append(Decision(point, True, (lock, why), expires_when_unlocked=True))
        else:
            decisions.append(Decision(point, False, (why,)))
    return decisions


def group_key(point: PointFacts) -> tuple[str, str | None]:
    """Retention applies per app and policy: one policy's rules never drop another policy's points."""
    return point.app, point.policy


def decide_groups(points: Iterable[PointFacts], rules_for: Callable[[str, str | None], RetentionRules | None],
                  tz: ZoneInfo | str = "UTC", now: datetime | None = None
                  ) -> list[tuple[tuple[str, str | None], RetentionRules, list[Decision]]]:
    """:func:`decide` for each (app, policy) group; groups whose ``rules_for`` is None are left out."""
    groups: dict[tuple[str, str | None], list[PointFacts]] = {}
    for point in points:
        groups.setdefault(group_key(point), []).append(point)
    out = []
    for key in sorted(groups, key=lambda k: (k[0], k[1] or "")):
        rules = rules_for(*key)
        if rules is not None:
            out.append((key, rules, decide(groups[key], rules, tz, now)))
    return out


def kept_ids(decisions: Sequence[Decision]) -> set[str]:
    return {d.point.id for d in decisions if d.keep}
