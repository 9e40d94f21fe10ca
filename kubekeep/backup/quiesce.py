"""Quiesce by scale-down: stop an application's pods for a cold, consistent volume copy.

For each selected Deployment, StatefulSet or (unowned) ReplicaSet the current
replica count is first written into the annotation ``kubekeep.io/quiesce-original-replicas``
on the object itself, then the workload is scaled to zero through its ``scale``
subresource, and we wait until its pods are gone. Restoring scales back to the
annotated count and then removes the annotation.

The annotation makes the operation crash-safe and idempotent: a second
quiesce of an already quiesced workload keeps the original count (never the
current 0), ``unquiesce`` after a restore finds nothing to do, and
``find_quiesced`` lets a later run (or an operator) undo what a crashed run left
behind. ``quiesce`` and ``unquiesce`` are the two steps; the bracket that always
unquiesces is ``tasks.consistency.quiesced`` (each step a task of the flow).

A HorizontalPodAutoscaler would scale a quiesced Deployment back up; workloads
under an HPA are refused unless ``allow_hpa`` is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubekeep.cluster import ApiError, Cluster
from kubekeep.cluster.poll import pauses

ORIGINAL_REPLICAS_ANNOTATION = "kubekeep.io/quiesce-original-replicas"
KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
APPS_V1 = "apps/v1"


class QuiesceError(Exception):
    """Scaling down, waiting for pods to stop, or restoring the replica count failed."""


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise QuiesceError(f"cannot quiesce a {self.kind}: only {', '.join(KINDS)} scale to zero here")

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class QuiescedWorkload:
    ref: WorkloadRef
    original_replicas: int


@dataclass(frozen=True)
class QuiesceRecord:
    """What a quiesce did: pass it to ``unquiesce`` (it is small and picklable)."""

    workloads: tuple[QuiescedWorkload, ...]
    #: when the first workload was scaled to zero (ISO 8601, UTC): from here on the application does not serve
    started_at: str = ""

    @property
    def refs(self) -> list[WorkloadRef]:
        return [w.ref for w in self.workloads]


def select_workloads(cluster: Cluster, namespace: str, *, label_selector: str | None = None,
                     kinds: Sequence[str] = KINDS) -> list[WorkloadRef]:
    """The scalable workloads of a namespace, skipping ReplicaSets a Deployment owns
    (scaling those would fight the Deployment controller)."""
    out: list[WorkloadRef] = []
    for kind in kinds:
        res = cluster.resource_for(APPS_V1, kind)
        for obj in cluster.list_pages(res, namespace=namespace, label_selector=label_selector):
            owners = obj["metadata"].get("ownerReferences") or []
            if kind == "ReplicaSet" and any(o.get("controller") for o in owners):
                continue
            out.append(WorkloadRef(kind, namespace, obj["metadata"]["name"]))
    return out


def quiesce(cluster: Cluster, workloads: Sequence[WorkloadRef], *, timeout: float = 120.0,
            allow_hpa: bool = False) -> QuiesceRecord:
    """Scale every workload to zero and wait until their pods are gone.

    On any failure the workloads touched so far are restored before the error
    is raised, so a failed quiesce leaves the application as it was.
    """
    done: list[QuiescedWorkload] = []
    touched: list[WorkloadRef] = []  # includes one that may be annotated but not yet scaled
    try:
        if not allow_hpa:
            _refuse_hpa_targets(cluster, workloads)
        started = datetime.now(UTC)
        for ref in workloads:
            touched.append(ref)
            done.append(_scale_down(cluster, ref))
        for item in done:
            wait_pods_gone(cluster, item.ref, timeout=timeout)
    except BaseException as exc:
        if touched:
            try:
                unquiesce(cluster, touched)
            except QuiesceError as undo_exc:
                exc.add_note(f"restoring after the failed quiesce also failed: {undo_exc}")
        if isinstance(exc, ApiError):
            raise QuiesceError(f"quiesce failed: {exc}") from exc
        raise
    return QuiesceRecord(tuple(done), started.isoformat())


def unquiesce(cluster: Cluster, record: QuiesceRecord | Sequence[WorkloadRef], *,
              wait: bool = False, timeout: float = 120.0) -> list[QuiescedWorkload]:
    """Restore every workload's replica count from its annotation; idempotent.

    Workloads without the annotation were already restored (or never scaled) and
    are left alone. Every workload is attempted; failures are raised together
    at the end. With ``wait`` also waits until the pods are back (created, not Ready).
    Returns the workloads restored by this call.
    """
    refs = record.refs if isinstance(record, QuiesceRecord) else list(record)
    restored: list[QuiescedWorkload] = []
    errors: list[str] = []
    for ref in refs:
        try:
            item = _restore(cluster, ref)
        except (ApiError, QuiesceError) as exc:
            errors.append(f"{ref}: {exc}")
            continue
        if item:
            restored.append(item)
    if wait:
        for item in restored:
            try:
                cluster.wait_for(APPS_V1, item.ref.kind, item.ref.name, _replicas_at_least(item.original_replicas),
                                 namespace=item.ref.namespace, timeout=timeout, what="pods back")
            except TimeoutError as exc:
                errors.append(f"{item.ref}: {exc}")
    if errors:
        raise QuiesceError("could not restore replica counts: " + "; ".join(errors)
                           + f" (the original counts stay in the {ORIGINAL_REPLICAS_ANNOTATION} annotation; "
                           "run unquiesce again or scale by hand)")
    return restored


def find_quiesced(cluster: Cluster, namespace: str | None = None) -> list[QuiescedWorkload]:
    """Workloads still carrying the annotation, e.g. left behind by a crashed run."""
    out: list[QuiescedWorkload] = []
    for kind in KINDS:
        res = cluster.resource_for(APPS_V1, kind)
        for obj in cluster.list_pages(res, namespace=namespace):
            md = obj["metadata"]
            if kind == "ReplicaSet" and any(o.get("controller") for o in md.get("ownerReferences") or []):
                continue  # the Deployment controller copies the Deployment's annotations onto its ReplicaSets
            original = (md.get("annotations") or {}).get(ORIGINAL_REPLICAS_ANNOTATION)
            if original is not None:
                out.append(QuiescedWorkload(WorkloadRef(kind, md["namespace"], md["name"]),
                                            _parse_replicas(original, f"{kind} {md['namespace']}/{md['name']}")))
    return out


# ---- steps -------------------------------------------------------------------
def _scale_down(cluster: Cluster, ref: WorkloadRef, *, attempts: int = 8) -> QuiescedWorkload:
    for attempt in range(attempts):
        obj = _get(cluster, ref)
        annotations = obj["metadata"].get("annotations") or {}
        if ORIGINAL_REPLICAS_ANNOTATION in annotations:
            # an earlier, unfinished run scaled it down: keep its record of the original count
            original = _parse_replicas(annotations[ORIGINAL_REPLICAS_ANNOTATION], str(ref))
            break
        original = int((obj.get("spec") or {}).get("replicas", 1))
        try:
            # resourceVersion makes this a compare-and-swap: the count we record is the one we scale from
            cluster.patch(APPS_V1, ref.kind, ref.name, {"metadata": {
                "annotations": {ORIGINAL_REPLICAS_ANNOTATION: str(original)},
                "resourceVersion": obj["metadata"]["resourceVersion"]}}, namespace=ref.namespace)
            break
        except ApiError as exc:
            # controllers write status all the time; only give up when the conflicts do not stop
            if not exc.conflict or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    cluster.scale(APPS_V1, ref.kind, ref.name, 0, namespace=ref.namespace)
    return QuiescedWorkload(ref, original)


def _restore(cluster: Cluster, ref: WorkloadRef) -> QuiescedWorkload | None:
    obj = cluster.get_or_none(APPS_V1, ref.kind, ref.name, ref.namespace)
    if obj is None:
        raise QuiesceError("the workload no longer exists")
    raw = (obj["metadata"].get("annotations") or {}).get(ORIGINAL_REPLICAS_ANNOTATION)
    if raw is None:
        return None
    original = _parse_replicas(raw, str(ref))
    cluster.scale(APPS_V1, ref.kind, ref.name, original, namespace=ref.namespace)
    # the annotation goes last: until it is gone a retry knows what to restore
    cluster.patch(APPS_V1, ref.kind, ref.name, {"metadata": {"annotations": {ORIGINAL_REPLICAS_ANNOTATION: None}}},
                  namespace=ref.namespace)
    return QuiescedWorkload(ref, original)


def wait_pods_gone(cluster: Cluster, ref: WorkloadRef, *, timeout: float = 120.0, interval: float = 0.3) -> None:
    """Wait until no pod of the workload exists (terminating pods count as existing)."""
    deadline = time.monotonic() + timeout
    pause = pauses(interval)
    while True:
        remaining = pods_of(cluster, ref)
        if not remaining:
            return
        if time.monotonic() > deadline:
            raise QuiesceError(f"{ref}: {len(remaining)} pod(s) still present {timeout:.0f}s after scaling to zero: "
                               + ", ".join(sorted(remaining)[:10]))
        time.sleep(next(pause))


def pods_of(cluster: Cluster, ref: WorkloadRef) -> list[str]:
    """Names of the pods the workload owns (through its ReplicaSets for a Deployment)."""
    obj = _get(cluster, ref)
    selector = label_selector_string((obj.get("spec") or {}).get("selector") or {})
    owner_uids = {obj["metadata"]["uid"]}
    if ref.kind == "Deployment":
        rs_res = cluster.resource_for(APPS_V1, "ReplicaSet")
        owner_uids = {rs["metadata"]["uid"] for rs in cluster.list_pages(rs_res, namespace=ref.namespace,
                                                                          label_selector=selector or None)
                      if any(o.get("uid") == obj["metadata"]["uid"]
                             for o in rs["metadata"].get("ownerReferences") or [])}
    pod_res = cluster.resource_for("v1", "Pod")
    return [p["metadata"]["name"] for p in cluster.list_pages(pod_res, namespace=ref.namespace,
                                                               label_selector=selector or None)
            if any(o.get("uid") in owner_uids for o in p["metadata"].get("ownerReferences") or [])]


def label_selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector object as the query-string syntax (``a=b,c in (d,e),!f``)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise QuiesceError(f"unsupported label selector operator {op!r}")
    return ",".join(parts)


def _refuse_hpa_targets(cluster: Cluster, workloads: Sequence[WorkloadRef]) -> None:
    try:
        hpa_res = cluster.resource_for("autoscaling/v2", "HorizontalPodAutoscaler")
    except ApiError:
        return
    for ns in sorted({w.namespace for w in workloads}):
        targets = {(h["spec"]["scaleTargetRef"].get("kind"), h["spec"]["scaleTargetRef"].get("name")): h
                   for h in cluster.list_pages(hpa_res, namespace=ns)}
        for w in workloads:
            hpa = targets.get((w.kind, w.name)) if w.namespace == ns else None
            if hpa is not None:
                raise QuiesceError(f"{w} is scaled by HorizontalPodAutoscaler {hpa['metadata']['name']}, which "
                                   "would scale it back up; remove it from the quiesce selection or pass allow_hpa")


def _get(cluster: Cluster, ref: WorkloadRef) -> dict[str, Any]:
    obj = cluster.get_or_none(APPS_V1, ref.kind, ref.name, ref.namespace)
    if obj is None:
        raise QuiesceError(f"{ref} not found")
    return obj


def _parse_replicas(raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise QuiesceError(f"{what}: annotation {ORIGINAL_REPLICAS_ANNOTATION}={raw!r} is not a number") from None
    if value < 0:
        raise QuiesceError(f"{what}: annotation {ORIGINAL_REPLICAS_ANNOTATION}={raw!r} is negative")
    return value


def _replicas_at_least(n: int) -> Callable[[dict[str, Any] | None], bool]:
    def check(obj: dict[str, Any] | None) -> bool:
        return int(((obj or {}).get("status") or {}).get("replicas") or 0) >= n
    return check
