"""Leave out objects that a restored owner recreates.

A Deployment's ReplicaSets and their Pods, a StatefulSet's Pods, a CronJob's
Jobs, a Service's Endpoints: restoring them next to their owner makes
duplicates, or objects the controller immediately deletes (their owner uid
is stale). Which controller recreates which kind is data
(:data:`DEFAULT_RECREATED_BY`), so a run can add rules for operators it knows.

Match owners before sanitizing: the link is ``ownerReferences[].uid`` to the
owner's ``metadata.uid``, both of which sanitize removes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kubekeep.manifest import Manifest, ObjectRef, annotations_of, dig, labels_of, ref_of, split_api_version


@dataclass(frozen=True)
class RecreatedBy:
    """``dependent`` objects controlled by an ``owner`` are recreated by the owner's controller."""

    owner: str  # "Kind.group" (core group: "Kind")
    dependent: str
    reason: str


DEFAULT_RECREATED_BY: tuple[RecreatedBy, ...] = (
    RecreatedBy("Deployment.apps", "ReplicaSet.apps", "the Deployment controller creates its ReplicaSets"),
    RecreatedBy("ReplicaSet.apps", "Pod", "the ReplicaSet controller creates its Pods"),
    RecreatedBy("StatefulSet.apps", "Pod", "the StatefulSet controller creates its Pods"),
    RecreatedBy("DaemonSet.apps", "Pod", "the DaemonSet controller creates its Pods"),
    RecreatedBy("ReplicationController", "Pod", "the ReplicationController creates its Pods"),
    RecreatedBy("Job.batch", "Pod", "the Job controller creates its Pods"),
    RecreatedBy("CronJob.batch", "Job.batch", "the CronJob controller creates Jobs on schedule"),
    RecreatedBy("StatefulSet.apps", "ControllerRevision.apps", "revision history is rebuilt by the controller"),
    RecreatedBy("DaemonSet.apps", "ControllerRevision.apps", "revision history is rebuilt by the controller"),
    RecreatedBy("Service", "EndpointSlice.discovery.k8s.io", "the EndpointSlice controller derives them"),
)

#: EndpointSlices carrying one of these managed-by labels are derived data
ENDPOINTSLICE_CONTROLLERS = ("endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io")
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class SkippedObject:
    ref: ObjectRef
    reason: str


@dataclass(frozen=True)
class OwnershipResult:
    restore: list[Manifest] = field(default_factory=list)
    skipped: list[SkippedObject] = field(default_factory=list)


def _group_kind(manifest: Manifest) -> str:
    group, _ = split_api_version(str(manifest.get("apiVersion", "")))
    group = {"extensions": "apps"}.get(group, group)
    kind = str(manifest.get("kind", ""))
    return f"{kind}.{group}" if group else kind


def _owner_group_kind(owner_ref: dict[str, object]) -> str:
    group, _ = split_api_version(str(owner_ref.get("apiVersion", "")))
    kind = str(owner_ref.get("kind", ""))
    return f"{kind}.{group}" if group else kind


def filter_owned(
    manifests: Iterable[Manifest],
    *,
    include_owned: bool = False,
    include_events: bool = False,
    rules: Sequence[RecreatedBy] = DEFAULT_RECREATED_BY,
) -> OwnershipResult:
    """Split ``manifests`` into those to restore and those skipped, with a reason each.

    Skipped unless ``include_owned``: dependents whose controlling owner is in
    ``manifests`` under a matching rule (transitively: a Pod of a ReplicaSet
    of a restored Deployment), Endpoints of a Service with a selector,
    controller-managed EndpointSlices, ControllerRevisions, mirror Pods.
    Events are skipped unless ``include_events``.
    """
    items = list(manifests)
    rule_by_pair = {(r.owner, r.dependent): r for r in rules}
    by_uid: dict[str, Manifest] = {}
    by_name: dict[tuple[str, str, str], Manifest] = {}
    services_with_selector: set[tuple[str, str]] = set()
    for m in items:
        ref = ref_of(m)
        uid = dig(m, "metadata", "uid")
        if isinstance(uid, str) and uid:
            by_uid[uid] = m
        by_name[(_group_kind(m), ref.namespace, ref.name)] = m
        if ref.group == "" and ref.kind == "Service" and dig(m, "spec", "selector"):
            services_with_selector.add((ref.namespace, ref.name))

    result = OwnershipResult()
    for m in items:
        ref = ref_of(m)
        reason = _skip_reason(m, ref, include_owned, include_events, rule_by_pair, by_uid, by_name,
                              services_with_selector)
        if reason is None:
            result.restore.append(m)
        else:
            result.skipped.append(SkippedObject(ref, reason))
    return result


def _skip_reason(
    m: Manifest,
    ref: ObjectRef,
    include_owned: bool,
    include_events: bool,
    rule_by_pair: dict[tuple[str, str], RecreatedBy],
    by_uid: dict[str, Manifest],
    by_name: dict[tuple[str, str, str], Manifest],
    services_with_selector: set[tuple[str, str]],
) -> str | None:
    gk = _group_kind(m)
    if gk in ("Event", "Event.events.k8s.io"):
        return None if include_events else "events describe the source cluster's history"
    if include_owned:
        return None
    if gk == "Pod" and MIRROR_POD_ANNOTATION in annotations_of(m):
        return "mirror Pod of a static Pod: the kubelet of a node creates it from a file"
    if gk == "Endpoints" and (ref.namespace, ref.name) in services_with_selector:
        return f"Service {ref.namespace}/{ref.name} is restored and has a selector: its Endpoints are derived"
    if gk == "EndpointSlice.discovery.k8s.io" and (
        labels_of(m).get("endpointslice.kubernetes.io/managed-by") in ENDPOINTSLICE_CONTROLLERS
    ):
        return "EndpointSlices managed by a Kubernetes controller are derived from Services/Endpoints"
    # the owner only has to be in the set, restored or itself skipped as recreated:
    # a Pod of a ReplicaSet of a restored Deployment is recreated transitively
    owned = _controlled_by_restored_owner(m, ref, rule_by_pair, by_uid, by_name)
    if owned is not None:
        return owned
    if gk == "ControllerRevision.apps":
        return "revision history of a StatefulSet/DaemonSet: rebuilt by its controller"
    return None


def _controlled_by_restored_owner(
    m: Manifest,
    ref: ObjectRef,
    rule_by_pair: dict[tuple[str, str], RecreatedBy],
    by_uid: dict[str, Manifest],
    by_name: dict[tuple[str, str, str], Manifest],
) -> str | None:
    for owner_ref in dig(m, "metadata", "ownerReferences") or ():
        if not isinstance(owner_ref, dict) or owner_ref.get("controller") is not True:
            continue
        owner_gk = _owner_group_kind(owner_ref)
        rule = rule_by_pair.get((owner_gk, _group_kind(m)))
        if rule is None:
            continue
        owner = by_uid.get(str(owner_ref.get("uid", ""))) or by_name.get(
            (owner_gk, ref.namespace, str(owner_ref.get("name", "")))
        )
        if owner is None:
            continue
        return f"owned by {ref_of(owner)}, which is restored: {rule.reason}"
    return None
