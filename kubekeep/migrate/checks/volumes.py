"""Volume sizes: the data must fit its claim, and new claims must fit the target's LimitRanges and quotas.

- the volume data of a claim (its size in the restore point) larger than the
  claim's request: blocking (the restore could not write it);
- a claim's request outside a LimitRange's ``PersistentVolumeClaim`` min/max of
  its target namespace: blocking (the API server rejects the claim);
- the requests of the claims the restore creates beyond what a ResourceQuota of
  the namespace still allows (``requests.storage``, ``persistentvolumeclaims``,
  and their per-class forms ``<class>.storageclass.storage.k8s.io/...``):
  blocking. Quotas and LimitRanges that come with the restore point count for
  namespaces they are created in (nothing is used there yet); claims that already
  exist on the target (a pre-seed) are in the quota's ``used``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from ..model import PlanItem, Severity, Topic
from ..quantity import QuantityError, format_bytes, parse_quantity
from ..target import LimitRangeInfo, QuotaInfo
from .claims import Claim, all_claims
from .context import CheckContext

_PER_CLASS = ".storageclass.storage.k8s.io/"


def _bytes(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _quotas(ctx: CheckContext, namespace: str) -> list[QuotaInfo]:
    quotas = [q for q in ctx.facts.quotas if q.namespace == namespace]
    for obj in ctx.of_kind("", "ResourceQuota"):
        if obj.ref.namespace == namespace and ctx.existing(obj.ref) is None:
            quotas.append(QuotaInfo.from_object(obj.target, from_restore_point=True))
    return quotas


def _limit_ranges(ctx: CheckContext, namespace: str) -> list[LimitRangeInfo]:
    ranges = [lr for lr in ctx.facts.limit_ranges if lr.namespace == namespace]
    for obj in ctx.of_kind("", "LimitRange"):
        if obj.ref.namespace == namespace and ctx.existing(obj.ref) is None:
            lr = LimitRangeInfo.from_object(obj.target, from_restore_point=True)
            if lr is not None:
                ranges.append(lr)
    return ranges


def _effective_class(ctx: CheckContext, claim: Claim) -> str | None:
    if claim.target_class is not None:
        return claim.target_class or None
    default = ctx.facts.default_storage_class()
    return default.name if default else None


def _origin(item: QuotaInfo | LimitRangeInfo) -> str:
    return "from the restore point" if item.from_restore_point else "on the target"


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    claims = [c for c in all_claims(ctx) if not c.ephemeral]
    for claim in claims:
        request = _bytes(claim.request)
        for name in claim.source_names:
            data = ctx.prepared.volumes.get((claim.source_namespace, name))
            if data is not None and request is not None and data.logical_bytes > request:
                size = format_bytes(data.logical_bytes)
                yield PlanItem(Severity.BLOCKING, Topic.VOLUME, claim.subject,
                               f"the volume data of {claim.source_namespace}/{name} ({size}) does not fit the "
                               f"claim's request of {claim.request}",
                               "raise the claim's request (a json-patch transform)")
    by_namespace: dict[str, list[tuple[Claim, str, Decimal]]] = {}
    for claim in claims:
        request = _bytes(claim.request)
        for name in claim.names:
            if ctx.facts.existing.get(("", "PersistentVolumeClaim", claim.namespace, name)) is not None:
                continue  # on the target already: counted in the quotas' used
            by_namespace.setdefault(claim.namespace, []).append((claim, name, request or Decimal(0)))
    for namespace, new in sorted(by_namespace.items()):
        for lr in _limit_ranges(ctx, namespace):
            low, high = _bytes(lr.pvc_min), _bytes(lr.pvc_max)
            for claim, name, request in new:
                if (low is not None and request < low) or (high is not None and request > high):
                    yield PlanItem(Severity.BLOCKING, Topic.VOLUME, claim.subject,
                                   f"claim {namespace}/{name} requests {claim.request}; LimitRange {lr.name} "
                                   f"({_origin(lr)}) allows {lr.pvc_min or '0'} to {lr.pvc_max or 'any'} per claim",
                                   "change the claim's request (a json-patch transform) or the LimitRange")
        for quota in _quotas(ctx, namespace):
            if quota.scoped:
                continue
            yield from _check_quota(ctx, quota, new)


def _check_quota(ctx: CheckContext, quota: QuotaInfo, new: list[tuple[Claim, str, Decimal]]) -> Iterator[PlanItem]:
    needed: dict[str, Decimal] = {}
    for claim, _name, request in new:
        keys = ["requests.storage", "persistentvolumeclaims", "count/persistentvolumeclaims"]
        cls = _effective_class(ctx, claim)
        if cls:
            keys += [f"{cls}{_PER_CLASS}requests.storage", f"{cls}{_PER_CLASS}persistentvolumeclaims"]
        for key in keys:
            needed[key] = needed.get(key, Decimal(0)) + (request if key.endswith("requests.storage") else 1)
    for key, amount in sorted(needed.items()):
        hard = _bytes(quota.hard.get(key))
        if hard is None:
            continue
        used = _bytes(quota.used.get(key)) or Decimal(0)
        if used + amount <= hard:
            continue
        storage = key.endswith("requests.storage")
        show = format_bytes if storage else (lambda v: str(int(v)))
        left = max(hard - used, Decimal(0))
        yield PlanItem(Severity.BLOCKING, Topic.VOLUME, f"ResourceQuota {quota.namespace}/{quota.name}",
                       f"{key}: the migration's new claims need {show(amount)}, the quota ({_origin(quota)}) "
                       f"allows {show(left)} more (hard {quota.hard[key]}, used {quota.used.get(key, '0')})",
                       "raise the quota on the target, or map the claims to another class or namespace",
                       objects=tuple(sorted({c.subject for c, _, _ in new})))
