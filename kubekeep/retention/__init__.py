"""Retention: which restore points to keep (a pure GFS function), and expiring the rest.

- :mod:`.rules`: the pure function (restore points, rules, timezone, now) -> keep/drop with reasons;
- :mod:`.plan`: the decisions of every (app, policy) group, the approval rule, the JSON of a dry run;
- :mod:`.points`: what the function needs, read from the catalog and the repository;
- :mod:`.expire`: deleting what a plan drops (records, snapshots, catalog rows) in a crash-safe order;
- :mod:`.renew`: extending the Object Lock of the points the rules keep before it lapses.

Prune (reclaiming packs no remaining point needs) is the repository's: ``Repository.prune``.
"""

from .duration import CalendarDuration, DurationError
from .expire import ExpiryReport, HeldPoint, expire
from .plan import DEFAULT_APPROVAL_SHARE, ApprovalRequired, AppShare, GroupPlan, RetentionPlan, build_plan
from .points import PointSnapshots, collect_points, lock_dates, snapshots_by_point
from .renew import RenewReport, due_for_renewal, renew_locks
from .rules import (
    UNLIMITED,
    Decision,
    PointFacts,
    Reason,
    RetentionError,
    RetentionRules,
    Rule,
    bucket_key,
    decide,
    decide_groups,
    zone,
)

__all__ = [
    "DEFAULT_APPROVAL_SHARE",
    "UNLIMITED",
    "AppShare",
    "ApprovalRequired",
    "CalendarDuration",
    "Decision",
    "DurationError",
    "ExpiryReport",
    "GroupPlan",
    "HeldPoint",
    "PointFacts",
    "PointSnapshots",
    "Reason",
    "RenewReport",
    "RetentionError",
    "RetentionPlan",
    "RetentionRules",
    "Rule",
    "bucket_key",
    "build_plan",
    "collect_points",
    "decide",
    "decide_groups",
    "due_for_renewal",
    "expire",
    "lock_dates",
    "renew_locks",
    "snapshots_by_point",
    "zone",
]
