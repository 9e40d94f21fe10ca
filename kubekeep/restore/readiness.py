"""When is a restored object Ready: one pure rule per kind, and a gate that waits for a set of them.

The rules read only what the controllers publish (``status``, conditions,
``observedGeneration``), so a stale status from before the object's latest
change never counts:

- Deployment: ``observedGeneration`` current, ``updatedReplicas`` and
  ``availableReplicas`` >= ``replicas``; ``ProgressDeadlineExceeded`` fails.
- StatefulSet: ``observedGeneration`` current, ``readyReplicas == replicas``.
- DaemonSet: ``observedGeneration`` current, ``numberReady == desiredNumberScheduled``.
- ReplicaSet / ReplicationController: ``readyReplicas == replicas``.
- Job: condition ``Complete`` (``Failed`` fails; a suspended Job counts as ready).
- Pod: condition ``Ready``, or phase ``Succeeded`` (``Failed`` fails).
- PersistentVolumeClaim: phase ``Bound``. CRD: ``Established``. Namespace: ``Active``.
- CronJob and kinds without a readiness signal: ready once they exist; other
  kinds with a ``Ready`` condition: that condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubekeep.cluster import ApiError, Cluster
from kubekeep.cluster.poll import pauses
from kubekeep.manifest import ObjectRef, dig, split_api_version

JSON = dict[str, Any]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str
    #: it will not become ready by waiting (a failed Job, a stalled rollout)
    failed: bool = False


class ReadinessError(Exception):
    """Objects did not become Ready (in time); ``not_ready`` says why for each."""

    def __init__(self, message: str, not_ready: dict[ObjectRef, Readiness]) -> None:
        super().__init__(message)
        self.not_ready = not_ready


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _conditions(obj: JSON) -> list[JSON]:
    conditions = dig(obj, "status", "conditions")
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


def _condition(obj: JSON, type_: str) -> JSON | None:
    return next((c for c in _conditions(obj) if c.get("type") == type_), None)


def _is_true(obj: JSON, type_: str) -> bool:
    c = _condition(obj, type_)
    return c is not None and c.get("status") == "True"


def _stale(obj: JSON) -> str | None:
    generation = _int(dig(obj, "metadata", "generation"), 0)
    observed = _int(dig(obj, "status", "observedGeneration"), -1)
    if generation and observed < generation:
        return f"controller has not observed generation {generation} yet"
    return None


def _deployment(obj: JSON) -> Readiness:
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Readiness(False, f"rollout stalled: {progressing.get('message', 'ProgressDeadlineExceeded')}", True)
    if stale := _stale(obj):
        return Readiness(False, stale)
    want = _int(dig(obj, "spec", "replicas"), 1)
    available = _int(dig(obj, "status", "availableReplicas"))
    updated = _int(dig(obj, "status", "updatedReplicas"))
    detail = f"{available}/{want} available, {updated}/{want} updated"
    return Readiness(available >= want and updated >= want, detail)


def _ready_replicas(obj: JSON) -> Readiness:
    """StatefulSet, ReplicaSet, ReplicationController: every wanted replica ready."""
    if stale := _stale(obj):
        return Readiness(False, stale)
    want = _int(dig(obj, "spec", "replicas"), 1)
    ready = _int(dig(obj, "status", "readyReplicas"))
    return Readiness(ready == want, f"{ready}/{want} ready")


def _daemonset(obj: JSON) -> Readiness:
    if stale := _stale(obj):
        return Readiness(False, stale)
    desired = _int(dig(obj, "status", "desiredNumberScheduled"))
    ready = _int(dig(obj, "status", "numberReady"))
    return Readiness(ready == desired, f"{ready}/{desired} scheduled pods ready")


def _job(obj: JSON) -> Readiness:
    if _is_true(obj, "Complete"):
        return Readiness(True, "complete")
    failed = _condition(obj, "Failed")
    if failed and failed.get("status") == "True":
        return Readiness(False, f"failed: {failed.get('reason', '')} {failed.get('message', '')}".strip(), True)
    if dig(obj, "spec", "suspend") is True:
        return Readiness(True, "suspended")
    succeeded = _int(dig(obj, "status", "succeeded"))
    return Readiness(False, f"not complete ({succeeded} succeeded)")


def _pod(obj: JSON) -> Readiness:
    phase = dig(obj, "status", "phase")
    if phase == "Succeeded":
        return Readiness(True, "succeeded")
    if phase == "Failed":
        return Readiness(False, f"failed: {dig(obj, 'status', 'reason') or ''}".strip(), True)
    return Readiness(_is_true(obj, "Ready"), f"phase {phase or 'unknown'}")


def _pvc(obj: JSON) -> Readiness:
    phase = dig(obj, "status", "phase") or "Pending"
    if phase == "Lost":
        return Readiness(False, "Lost (its volume is gone)", True)
    return Readiness(phase == "Bound", str(phase))


def _crd(obj: JSON) -> Readiness:
    if _is_true(obj, "Established"):
        return Readiness(True, "Established")
    names = _condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return Readiness(False, f"names not accepted: {names.get('message', '')}", True)
    return Readiness(False, "not Established")


def _namespace(obj: JSON) -> Readiness:
    phase = dig(obj, "status", "phase") or "Active"
    return Readiness(phase == "Active", str(phase), phase == "Terminating")


def _generic(obj: JSON) -> Readiness:
    if _condition(obj, "Ready") is not None:
        return Readiness(_is_true(obj, "Ready"), "Ready" if _is_true(obj, "Ready") else "Ready condition not True")
    # many custom resources never publish observedGeneration: only those that do are held to it
    if dig(obj, "status", "observedGeneration") is not None and (stale := _stale(obj)):
        return Readiness(False, stale)
    return Readiness(True, "exists (no readiness signal)")


_RULES: dict[tuple[str, str], Callable[[JSON], Readiness]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _ready_replicas,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _ready_replicas,
    ("", "ReplicationController"): _ready_replicas,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): lambda obj: Readiness(True, "a CronJob has nothing to wait for"),
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("", "Namespace"): _namespace,
}


def readiness_of(obj: JSON | None) -> Readiness:
    """Whether ``obj`` (as the API serves it now) is Ready; None means it does not exist."""
    if obj is None:
        return Readiness(False, "not found")
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    group = "apps" if group == "extensions" else group
    rule = _RULES.get((group, str(obj.get("kind", ""))), _generic)
    return rule(obj)


def wait_until_ready(
    cluster: Cluster,
    refs: Sequence[ObjectRef],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str = "Ready",
) -> None:
    """Poll ``refs`` until every one is Ready (fast at first, then every ``interval``: kubekeep.cluster.poll);
    raise :class:`ReadinessError` naming those that are not.

    Fails early when an object reports that waiting cannot help (a failed Job).
    """
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(refs))
    last: dict[ObjectRef, Readiness] = {}
    pause = pauses(interval)
    while True:
        still: list[ObjectRef] = []
        for ref in pending:
            api_version = f"{ref.group}/{ref.version}" if ref.group else ref.version
            try:
                state = readiness_of(cluster.get_or_none(api_version, ref.kind, ref.name, ref.namespace or None))
            except ApiError as exc:
                if not exc.transient:
                    raise
                state = Readiness(False, f"API unavailable: {exc}")
            last[ref] = state
            if state.failed:
                raise ReadinessError(f"{ref} will not become {what}: {state.detail}", {ref: state})
            if not state.ready:
                still.append(ref)
        pending = still
        if not pending:
            return
        if time.monotonic() > deadline:
            not_ready = {ref: last[ref] for ref in pending}
            shown = "; ".join(f"{ref}: {state.detail}" for ref, state in list(not_ready.items())[:10])
            more = f"; and {len(not_ready) - 10} more" if len(not_ready) > 10 else ""
            raise ReadinessError(f"not {what} within {timeout:.0f}s: {shown}{more}", not_ready)
        time.sleep(next(pause))
