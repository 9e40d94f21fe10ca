"""Restore order as data: a priority list with a reason per entry, and readiness tiers.

:data:`DEFAULT_PRIORITIES` says what is created before what, and why;
:func:`order_manifests` sorts the objects of a restore into phases. A phase
ends where the restore must wait before going on: after CustomResourceDefinitions
(until Established, then re-discover the API so their kinds are known) and
after each readiness tier of workloads (until Ready). A run can pass its own
priority list (:func:`parse_priorities` reads one from YAML-shaped data).

Readiness tiers order workloads among themselves: a database in tier 0 is
Ready before the application in tier 1 starts. A workload's tier comes from a
:class:`TierPolicy` (per run) or its annotations::

    kubekeep.io/restore-tier: "1"                 # at least tier 1
    kubekeep.io/restore-after: "postgres, StatefulSet/redis, cache/Deployment/memcached"

A workload restored after others is in a tier above all of them. References
name workloads of the same restore: ``name`` or ``Kind/name`` in the same
namespace, or ``namespace/Kind/name``. Cycles and unknown references are errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubekeep.manifest import Manifest, ObjectRef, annotations_of, ref_of

from .errors import PrioritySpecError, TierCycleError, TierError, UnknownTierReferenceError

TIER_ANNOTATION = "kubekeep.io/restore-tier"
AFTER_ANNOTATION = "kubekeep.io/restore-after"
REST = "*"


class Wait(StrEnum):
    """What the restore waits for after a phase, before the next one."""

    NONE = "none"
    #: CRDs report condition Established; then re-discover served resources
    CRDS_ESTABLISHED = "crds-established"
    #: every workload of the phase is Ready (Deployments available, StatefulSets ready, Jobs complete)
    READY = "ready"


@dataclass(frozen=True)
class PriorityEntry:
    """One line of the priority list.

    ``match`` is ``Kind.group`` (``Kind`` for the core group), ``*.group`` for
    every kind of a group, or ``*`` for everything no other entry matches.
    """

    match: str
    reason: str
    wait: Wait = Wait.NONE
    #: objects of consecutive tiered entries are split into readiness tiers
    tiered: bool = False


def _e(match: str, reason: str, wait: Wait = Wait.NONE, tiered: bool = False) -> PriorityEntry:
    return PriorityEntry(match, reason, wait, tiered)


_WORKLOAD = "workload: started in readiness tiers"
DEFAULT_PRIORITIES: tuple[PriorityEntry, ...] = (
    _e("CustomResourceDefinition.apiextensions.k8s.io",
       "custom kinds must exist (Established, re-discovered) before their objects", Wait.CRDS_ESTABLISHED),
    _e("Namespace", "every namespaced object needs its namespace"),
    _e("StorageClass.storage.k8s.io", "claims are provisioned from their class"),
    _e("VolumeSnapshotClass.snapshot.storage.k8s.io", "snapshot-backed volumes are restored through their class"),
    _e("PriorityClass.scheduling.k8s.io", "pods naming an unknown priority class are rejected"),
    _e("RuntimeClass.node.k8s.io", "pods naming an unknown runtime class are rejected"),
    _e("ClusterRole.rbac.authorization.k8s.io", "bindings and controllers need their permissions first"),
    _e("ClusterRoleBinding.rbac.authorization.k8s.io", "controllers need their permissions before they start"),
    _e("ResourceQuota", "quotas must be in force before the objects they count"),
    _e("LimitRange", "admission applies limit defaults only to pods created after it"),
    _e("ServiceAccount", "pods naming a missing service account are rejected"),
    _e("Secret", "pods mount and read secrets at start"),
    _e("ConfigMap", "pods mount and read config maps at start"),
    _e("Role.rbac.authorization.k8s.io", "namespaced permissions before the workloads using them"),
    _e("RoleBinding.rbac.authorization.k8s.io", "namespaced permissions before the workloads using them"),
    _e("PersistentVolume", "pre-provisioned volumes must exist for their claims to bind"),
    _e("PersistentVolumeClaim", "pods wait for their claims; restored data lands in them first"),
    _e("NetworkPolicy.networking.k8s.io", "pods must not start before the policies that isolate them"),
    _e("Service", "stable names and environment variables exist before pods start"),
    _e("Endpoints", "selector-less services carry hand-written endpoints"),
    _e("PodDisruptionBudget.policy", "disruption limits apply from the first pod"),
    _e("StatefulSet.apps", _WORKLOAD, tiered=True),
    _e("Deployment.apps", _WORKLOAD, tiered=True),
    _e("DaemonSet.apps", _WORKLOAD, tiered=True),
    _e("ReplicaSet.apps", _WORKLOAD, tiered=True),
    _e("ReplicationController", _WORKLOAD, tiered=True),
    _e("Job.batch", _WORKLOAD, tiered=True),
    _e("CronJob.batch", _WORKLOAD, tiered=True),
    _e("Pod", _WORKLOAD, tiered=True),
    _e(REST, "everything else (ingresses, autoscalers, ...), custom resources last"),
    _e("APIService.apiregistration.k8s.io",
       "an aggregated API whose backend is not ready fails discovery for every client"),
    _e("MutatingWebhookConfiguration.admissionregistration.k8s.io",
       "a webhook whose backend is not ready would reject every later create"),
    _e("ValidatingWebhookConfiguration.admissionregistration.k8s.io",
       "a webhook whose backend is not ready would reject every later create"),
    _e("ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
       "a policy in force could reject the restored objects it was written for"),
)

#: groups served by Kubernetes itself; objects of other groups are custom resources
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "extensions", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "node.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    "events.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "certificates.k8s.io", "flowcontrol.apiserver.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
    "resource.k8s.io", "internal.apiserver.k8s.io", "storagemigration.k8s.io",
})

_MATCH_RE = re.compile(r"^(\*|[A-Za-z][A-Za-z0-9]*)(\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?)?$")
_GROUP_ALIASES = {"extensions": "apps"}


@dataclass(frozen=True)
class OrderedObject:
    manifest: Manifest
    ref: ObjectRef
    #: the priority entry that placed it, and why that entry is where it is
    match: str
    reason: str
    tier: int | None = None
    #: what the plan wants the report to say about this object (e.g. status not restored)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestorePhase:
    name: str
    objects: tuple[OrderedObject, ...]
    wait: Wait
    tier: int | None = None

    @property
    def manifests(self) -> list[Manifest]:
        return [o.manifest for o in self.objects]


@dataclass(frozen=True)
class TierPolicy:
    """Per-run tiers, overriding annotations. Keys and references: ``name``, ``Kind/name``
    or ``namespace/Kind/name``; a key without a namespace applies in every namespace."""

    tiers: Mapping[str, int] = field(default_factory=dict)
    after: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierPolicy:
        unknown = set(data) - {"tiers", "after"}
        if unknown:
            raise TierError(f"tier policy: unknown keys {sorted(unknown)} (expected 'tiers', 'after')")
        tiers = data.get("tiers") or {}
        after = data.get("after") or {}
        if not isinstance(tiers, Mapping) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in tiers.values()
        ):
            raise TierError("tier policy: 'tiers' must map workload references to non-negative integers")
        if not isinstance(after, Mapping):
            raise TierError("tier policy: 'after' must map workload references to lists of references")
        parsed_after: dict[str, list[str]] = {}
        for key, value in after.items():
            if isinstance(value, str):
                parsed_after[str(key)] = _split_refs(value)
            elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
                parsed_after[str(key)] = list(value)
            else:
                raise TierError(f"tier policy: after[{key!r}] must be a string or a list of strings")
        return cls({str(k): v for k, v in tiers.items()}, parsed_after)


# ------------------------------------------------------------------ priorities


def _entry_matches(match: str, group: str, kind: str) -> bool:
    m_kind, _, m_group = match.partition(".")
    if m_kind == "*":
        return m_group == group if m_group else False
    return m_kind == kind and m_group == group


def parse_priorities(spec: Iterable[str | Mapping[str, Any]]) -> tuple[PriorityEntry, ...]:
    """A priority list from data: each item ``"Kind.group"`` or a mapping with
    ``match`` and optional ``reason``, ``wait`` (none|crds-established|ready), ``tiered``.
    A ``*`` entry is appended at the end when missing."""
    entries: list[PriorityEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(spec):
        where = f"priorities[{index}]"
        if isinstance(item, str):
            item = {"match": item}
        if not isinstance(item, Mapping):
            raise PrioritySpecError(f"{where}: expected a string or a mapping, got {type(item).__name__}")
        unknown = set(item) - {"match", "reason", "wait", "tiered"}
        if unknown:
            raise PrioritySpecError(f"{where}: unknown keys {sorted(unknown)}")
        match = item.get("match")
        if not isinstance(match, str) or not _MATCH_RE.match(match):
            raise PrioritySpecError(
                f"{where}: match {match!r} is not 'Kind.group', 'Kind' (core group), '*.group' or '*'"
            )
        if match in seen:
            raise PrioritySpecError(f"{where}: {match!r} is listed twice")
        seen.add(match)
        wait_raw = item.get("wait", "none")
        try:
            wait = Wait(wait_raw)
        except ValueError:
            raise PrioritySpecError(
                f"{where}: wait {wait_raw!r} is not one of {[w.value for w in Wait]}"
            ) from None
        tiered = item.get("tiered", False)
        if not isinstance(tiered, bool):
            raise PrioritySpecError(f"{where}: tiered must be true or false")
        if tiered and wait is not Wait.NONE:
            raise PrioritySpecError(f"{where}: a tiered entry waits per tier; do not also set wait")
        if match == REST and tiered:
            raise PrioritySpecError(f"{where}: the '*' entry cannot be tiered")
        reason = item.get("reason", "custom priority")
        if not isinstance(reason, str):
            raise PrioritySpecError(f"{where}: reason must be a string")
        entries.append(PriorityEntry(match, reason, wait, tiered))
    if REST not in seen:
        entries.append(PriorityEntry(REST, "everything else"))
    return tuple(entries)


def priorities_to_data(priorities: Sequence[PriorityEntry]) -> list[dict[str, Any]]:
    """The inverse of :func:`parse_priorities` (for reports and docs)."""
    out: list[dict[str, Any]] = []
    for entry in priorities:
        item: dict[str, Any] = {"match": entry.match, "reason": entry.reason}
        if entry.wait is not Wait.NONE:
            item["wait"] = entry.wait.value
        if entry.tiered:
            item["tiered"] = True
        out.append(item)
    return out


def _check_priorities(priorities: Sequence[PriorityEntry]) -> int:
    rest = [i for i, e in enumerate(priorities) if e.match == REST]
    if len(rest) != 1:
        raise PrioritySpecError(f"a priority list needs exactly one '*' entry, found {len(rest)}")
    return rest[0]


def _is_custom(group: str, crd_groups: set[str]) -> bool:
    return group in crd_groups or group not in BUILTIN_GROUPS


def order_manifests(
    manifests: Iterable[Manifest],
    *,
    priorities: Sequence[PriorityEntry] = DEFAULT_PRIORITIES,
    tier_policy: TierPolicy | None = None,
) -> list[RestorePhase]:
    """Sort ``manifests`` into restore phases by ``priorities`` and readiness tiers.

    Within an entry objects are sorted by namespace and name; objects matched by
    ``*`` are sorted built-in kinds first, custom resources last. Empty phases
    are left out. The input manifests are not copied or changed.
    """
    rest_index = _check_priorities(priorities)
    items = [(m, ref_of(m)) for m in manifests]
    crd_groups = {
        str(m.get("spec", {}).get("group", ""))
        for m, ref in items
        if ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io"
    }
    kind_entries = [(i, e.match) for i, e in enumerate(priorities) if not e.match.startswith("*")]
    group_entries = [(i, e.match) for i, e in enumerate(priorities) if e.match.startswith("*.")]
    buckets: list[list[tuple[Manifest, ObjectRef]]] = [[] for _ in priorities]
    for m, ref in items:
        group, kind = _GROUP_ALIASES.get(ref.group, ref.group), ref.kind
        index = next((i for i, match in kind_entries if _entry_matches(match, group, kind)), None)
        if index is None:
            index = next((i for i, match in group_entries if _entry_matches(match, group, kind)), rest_index)
        buckets[index].append((m, ref))

    def sort_key(index: int) -> Any:
        if index == rest_index:
            return lambda item: (_is_custom(item[1].group, crd_groups), item[1].group, item[1].kind,
                                 item[1].namespace, item[1].name)
        return lambda item: (item[1].namespace, item[1].name, item[1].kind)

    phases: list[RestorePhase] = []
    pending: list[OrderedObject] = []

    def flush(wait: Wait, label: str) -> None:
        if pending:
            phases.append(RestorePhase(f"{len(phases):02d}-{label}", tuple(pending), wait))
            pending.clear()

    index = 0
    while index < len(priorities):
        entry = priorities[index]
        if entry.tiered:
            run_end = index
            while run_end < len(priorities) and priorities[run_end].tiered:
                run_end += 1
            workloads = [
                (entry_index, m, ref)
                for entry_index in range(index, run_end)
                for m, ref in sorted(buckets[entry_index], key=sort_key(entry_index))
            ]
            if workloads:
                flush(Wait.NONE, "resources")
                tiers = compute_tiers([m for _, m, _ in workloads], tier_policy)
                for tier in sorted(set(tiers.values())):
                    objects = tuple(
                        OrderedObject(m, ref, priorities[ei].match, priorities[ei].reason, tier)
                        for ei, m, ref in workloads
                        if tiers[ref] == tier
                    )
                    phases.append(RestorePhase(f"{len(phases):02d}-tier-{tier}", objects, Wait.READY, tier))
            index = run_end
            continue
        bucket = sorted(buckets[index], key=sort_key(index))
        pending.extend(OrderedObject(m, ref, entry.match, entry.reason) for m, ref in bucket)
        if bucket and entry.wait is not Wait.NONE:
            label = "crds" if entry.wait is Wait.CRDS_ESTABLISHED else entry.match.split(".")[0].lower()
            flush(entry.wait, label)
        index += 1
    flush(Wait.NONE, "resources")
    return phases


# ----------------------------------------------------------------------- tiers


def _split_refs(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse_tier(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        tier = value
    elif isinstance(value, str) and value.strip().isdigit():
        tier = int(value.strip())
    else:
        raise TierError(f"{where}: tier {value!r} is not a non-negative integer")
    if tier < 0:
        raise TierError(f"{where}: tier {value!r} is not a non-negative integer")
    return tier


def _resolve(reference: str, namespace: str | None, refs: Sequence[ObjectRef], where: str) -> list[ObjectRef]:
    """Workloads a reference names. ``namespace=None`` (policy keys): any namespace."""
    parts = reference.split("/")
    if len(parts) == 1:
        ns, kind, name = namespace, None, parts[0]
    elif len(parts) == 2:
        ns, kind, name = namespace, parts[0], parts[1]
    elif len(parts) == 3:
        ns, kind, name = parts[0], parts[1], parts[2]
    else:
        raise TierError(f"{where}: reference {reference!r} is not 'name', 'Kind/name' or 'namespace/Kind/name'")
    if not name or (kind is not None and not kind):
        raise TierError(f"{where}: reference {reference!r} is incomplete")
    return [r for r in refs if r.name == name and (kind is None or r.kind == kind)
            and (ns is None or r.namespace == ns)]


def compute_tiers(workloads: Sequence[Manifest], policy: TierPolicy | None = None) -> dict[ObjectRef, int]:
    """The readiness tier of each workload: at least its own tier, above everything it comes after."""
    policy = policy or TierPolicy()
    refs = [ref_of(m) for m in workloads]
    if len(set(refs)) != len(refs):
        dupes = sorted({str(r) for r in refs if refs.count(r) > 1})
        raise TierError(f"the same workload appears twice: {', '.join(dupes)}")
    base: dict[ObjectRef, int] = {}
    deps: dict[ObjectRef, list[ObjectRef]] = {r: [] for r in refs}
    for m, ref in zip(workloads, refs, strict=True):
        annotations = annotations_of(m)
        where = f"{ref} annotation {TIER_ANNOTATION}"
        base[ref] = _parse_tier(annotations[TIER_ANNOTATION], where) if TIER_ANNOTATION in annotations else 0
        after = annotations.get(AFTER_ANNOTATION)
        if after is not None:
            _add_deps(ref, _split_refs(str(after)), refs, deps, f"{ref} annotation {AFTER_ANNOTATION}")
    for key, tier in policy.tiers.items():
        matched = _resolve(key, None, refs, f"tier policy tiers[{key!r}]")
        if not matched:
            raise UnknownTierReferenceError(f"tier policy tiers[{key!r}]: no restored workload matches {key!r}")
        for ref in matched:
            base[ref] = _parse_tier(tier, f"tier policy tiers[{key!r}]")
    for key, references in policy.after.items():
        matched = _resolve(key, None, refs, f"tier policy after[{key!r}]")
        if not matched:
            raise UnknownTierReferenceError(f"tier policy after[{key!r}]: no restored workload matches {key!r}")
        for ref in matched:
            _add_deps(ref, list(references), refs, deps, f"tier policy after[{key!r}] (for {ref})")

    tiers: dict[ObjectRef, int] = {}
    visiting: list[ObjectRef] = []

    def visit(ref: ObjectRef) -> int:
        if ref in tiers:
            return tiers[ref]
        if ref in visiting:
            cycle = [*visiting[visiting.index(ref):], ref]
            raise TierCycleError("restore-after cycle: " + " -> ".join(str(r) for r in cycle))
        visiting.append(ref)
        tier = base[ref]
        for dep in deps[ref]:
            tier = max(tier, visit(dep) + 1)
        visiting.pop()
        tiers[ref] = tier
        return tier

    for ref in refs:
        visit(ref)
    return tiers


def _add_deps(ref: ObjectRef, references: list[str], refs: Sequence[ObjectRef],
              deps: dict[ObjectRef, list[ObjectRef]], where: str) -> None:
    for reference in references:
        matched = _resolve(reference, ref.namespace, refs, where)
        if not matched:
            raise UnknownTierReferenceError(
                f"{where}: {reference!r} names no workload of this restore in namespace "
                f"{ref.namespace or '(cluster)'}; restore it too, or remove the reference"
            )
        if len(matched) > 1:
            raise TierError(
                f"{where}: {reference!r} is ambiguous ({', '.join(str(m) for m in matched)}); use Kind/name"
            )
        if matched[0] == ref:
            raise TierCycleError(f"{where}: {ref} is restored after itself")
        deps[ref].append(matched[0])
