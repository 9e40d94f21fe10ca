"""The retention plan: every point's decision, grouped by app and policy, with the approval rule.

A plan is data: it is produced first (the dry run), shown, approved when it deletes a large share of
an app's points, and only then executed (:mod:`.expire`). Its JSON form lists, for each point, keep
or drop and the rule or reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .rules import Decision, PointFacts, RetentionError, RetentionRules, Rule, decide_groups, zone

#: a run that would delete more than this share of an app's points needs approval
DEFAULT_APPROVAL_SHARE = 0.5


class ApprovalRequired(RetentionError):
    """The plan deletes more than the allowed share of an app's points and was not approved."""


@dataclass(frozen=True)
class GroupPlan:
    """The decisions for one app's points of one policy (``policy`` None: points of no policy)."""

    app: str
    policy: str | None
    rules: RetentionRules
    decisions: tuple[Decision, ...]

    @property
    def drops(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]


@dataclass(frozen=True)
class AppShare:
    app: str
    #: restore points that exist (records present) and that the plan deletes
    dropped: int
    total: int

    @property
    def share(self) -> float:
        return self.dropped / self.total if self.total else 0.0


@dataclass(frozen=True)
class RetentionPlan:
    created_at: datetime
    timezone: str
    approval_share: float
    groups: tuple[GroupPlan, ...]

    def decisions(self) -> Iterator[Decision]:
        for group in self.groups:
            yield from group.decisions

    @property
    def drops(self) -> list[Decision]:
        return [d for d in self.decisions() if not d.keep]

    @property
    def held(self) -> list[Decision]:
        """Points the rules drop but Object Lock holds: they expire when their lock ends."""
        return [d for d in self.decisions() if d.expires_when_unlocked]

    def shares(self) -> list[AppShare]:
        """Per app: how many of its existing points the plan deletes."""
        counts: dict[str, list[int]] = {}
        for decision in self.decisions():
            if not decision.point.record_present:
                continue  # already gone: deleting its leftovers takes nothing away
            entry = counts.setdefault(decision.point.app, [0, 0])
            entry[1] += 1
            entry[0] += 0 if decision.keep else 1
        return [AppShare(app, dropped, total) for app, (dropped, total) in sorted(counts.items())]

    def over_threshold(self) -> list[AppShare]:
        return [s for s in self.shares() if s.share > self.approval_share]

    @property
    def needs_approval(self) -> bool:
        return bool(self.over_threshold())

    def check_approved(self, approved: bool) -> None:
        """ApprovalRequired (naming the apps) when the plan needs approval and has none."""
        over = self.over_threshold()
        if over and not approved:
            apps = ", ".join(f"{s.app} ({s.dropped} of {s.total})" for s in over)
            raise ApprovalRequired(f"the plan deletes more than {self.approval_share:.0%} of the restore points of "
                                   f"{apps}: approve it (--yes in the CLI, the approval form in the UI)")

    def summary(self) -> dict[str, int]:
        decisions = list(self.decisions())
        return {"points": len(decisions), "keep": sum(d.keep for d in decisions),
                "drop": sum(not d.keep for d in decisions), "held_by_lock": len(self.held)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(), "timezone": self.timezone,
            "approval_share": self.approval_share, "needs_approval": self.needs_approval,
            "summary": self.summary(),
            "apps": [{"app": s.app, "dropped": s.dropped, "total": s.total, "share": round(s.share, 4)}
                     for s in self.shares()],
            "groups": [{"app": g.app, "policy": g.policy, "rules": g.rules.model_dump(exclude_defaults=True),
                        "points": [d.to_dict() for d in g.decisions]} for g in self.groups],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def rows(self) -> list[dict[str, str]]:
        """One flat row per point (tables in the CLI and in Prefect artifacts)."""
        out = []
        for decision in self.decisions():
            p = decision.point
            out.append({
                "restore point": p.id, "app": p.app, "policy": p.policy or "", "time": p.time.isoformat(),
                "status": p.status, "action": decision.action,
                "why": "; ".join(f"{r.rule.value}: {r.detail}" if r.rule not in _BUCKET_RULES else r.detail
                                 for r in decision.reasons),
                "locked until": p.retain_until.isoformat() if p.retain_until else "",
            })
        return out


_BUCKET_RULES = {Rule.HOURLY, Rule.DAILY, Rule.WEEKLY, Rule.MONTHLY, Rule.YEARLY}


def build_plan(points: Iterable[PointFacts], rules_for: RetentionRules | Callable[[str, str | None],
               RetentionRules | None], tz: ZoneInfo | str = "UTC", *, now: datetime | None = None,
               approval_share: float = DEFAULT_APPROVAL_SHARE) -> RetentionPlan:
    """Decide every point, per (app, policy) group. ``rules_for`` is one set of rules for every group,
    or a function of (app, policy) returning the group's rules (None: leave the group alone)."""
    if not 0 <= approval_share <= 1:
        raise RetentionError(f"approval share {approval_share} is not between 0 and 1")
    tzinfo = zone(tz) if isinstance(tz, str) else tz
    now = now or datetime.now(UTC)
    lookup: Callable[[str, str | None], RetentionRules | None]
    if isinstance(rules_for, RetentionRules):
        fixed = rules_for
        lookup = lambda app, policy: fixed  # noqa: E731 - one set of rules for every group
    else:
        lookup = rules_for
    groups = tuple(GroupPlan(app, policy, rules, tuple(decisions))
                   for (app, policy), rules, decisions in decide_groups(points, lookup, tzinfo, now))
    return RetentionPlan(created_at=now, timezone=tzinfo.key, approval_share=approval_share, groups=groups)
