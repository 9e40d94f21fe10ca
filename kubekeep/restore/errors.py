"""Errors of restore planning. All are permanent: retrying the same input fails the same way."""

from __future__ import annotations


class RestorePlanError(Exception):
    """The restore cannot be planned from these manifests and options."""


class PrioritySpecError(RestorePlanError, ValueError):
    """A custom restore priority list is malformed."""


class TierError(RestorePlanError, ValueError):
    """Readiness tiers cannot be computed (bad annotation or policy entry)."""


class TierCycleError(TierError):
    """Workloads wait for each other in a cycle."""


class UnknownTierReferenceError(TierError):
    """A workload waits for a workload that is not part of the restore."""


class TransformSpecError(RestorePlanError, ValueError):
    """A transform chain specification is malformed."""


class TransformError(RestorePlanError):
    """Applying a valid transform to a manifest failed (e.g. a JSON patch path that does not exist)."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        shown = "\n  ".join(failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        super().__init__(f"{len(failures)} transform failure(s):\n  {shown}{more}")
