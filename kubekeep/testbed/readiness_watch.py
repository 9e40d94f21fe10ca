"""Watch one pod and its kwok node for as long as a test bed runs: do they stay Ready?

A control plane whose node silently goes NotReady makes every later readiness
wait time out, far from the cause. :class:`ReadinessWatch` creates a sentinel
pod in its own namespace, waits until it is Ready, then polls the pod, the node
and the node's Lease in a background thread, recording

- every observation in which the pod or the node was not Ready (a failure),
- when the node's Lease was renewed and when the node status heartbeat moved,
  so that the gaps between heartbeats can be compared with
  kube-controller-manager's node-monitor grace period (50 s).

    watch = ReadinessWatch(kubeconfig).start()
    ...                       # the rest of the session
    summary = watch.wait(300) # at least 5 minutes of Ready, or the first failure
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubekeep.cluster import ApiError, Cluster, has_condition

NAMESPACE = "kubekeep-testbed-watch"
POD = "sentinel"
LEASE_NAMESPACE = "kube-node-lease"


@dataclass
class WatchSummary:
    """What the watch saw (times in seconds; ``ready_for`` counts from the pod's first Ready)."""

    ready_for: float
    observations: int
    failures: list[str]
    errors: list[str]
    longest_observation_gap: float
    node: str
    lease_renewals: int
    longest_lease_gap: float | None
    node_heartbeats: int
    longest_heartbeat_gap: float | None
    pod_ready_transition: str | None

    def describe(self) -> str:
        def secs(v: float | None) -> str:
            return "never" if v is None else f"{v:.1f}s"

        return (f"pod {NAMESPACE}/{POD} on {self.node}: Ready for {self.ready_for:.0f}s, "
                f"{self.observations} observations (longest gap {self.longest_observation_gap:.1f}s), "
                f"{len(self.failures)} not-Ready observations, {len(self.errors)} API errors; "
                f"node Lease renewed {self.lease_renewals} times (longest gap {secs(self.longest_lease_gap)}); "
                f"node status heartbeat moved {self.node_heartbeats} times "
                f"(longest gap {secs(self.longest_heartbeat_gap)}); "
                f"pod Ready since {self.pod_ready_transition}")


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).timestamp()


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _longest_gap(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    return max(b - a for a, b in zip(times, times[1:], strict=False))


class ReadinessWatch:
    """A sentinel pod watched in the background; see the module docstring."""

    def __init__(self, kubeconfig: Path | str, *, interval: float = 2.0, ready_timeout: float = 120.0) -> None:
        self.kubeconfig = str(kubeconfig)
        self.interval = interval
        self.ready_timeout = ready_timeout
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.ready_since: float | None = None  # time.time() of the first Ready observation
        self.node = ""
        self.failures: list[str] = []
        self.errors: list[str] = []
        self.observations = 0
        self._last_observation: float | None = None
        self._longest_observation_gap = 0.0
        self._lease_renewals: list[float] = []
        self._heartbeats: list[float] = []
        self._pod_ready_transition: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ReadinessWatch:
        """Create the sentinel pod, wait until it is Ready, then watch it in the background."""
        with Cluster.from_kubeconfig(self.kubeconfig) as cluster:
            try:
                cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            except ApiError as exc:
                if exc.status != 409:
                    raise
            try:
                cluster.create({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": POD, "namespace": NAMESPACE,
                                             "labels": {"app.kubernetes.io/name": "testbed-sentinel"}},
                                "spec": {"containers": [{"name": "sentinel", "image": "busybox"}]}})
            except ApiError as exc:
                if exc.status != 409:
                    raise
            pod = cluster.wait_for("v1", "Pod", POD, lambda o: has_condition(o, "Ready"), namespace=NAMESPACE,
                                   timeout=self.ready_timeout, what="sentinel pod Ready")
        assert pod is not None
        self.ready_since = time.time()
        self.node = pod["spec"].get("nodeName", "")
        self._pod_ready_transition = (_condition(pod, "Ready") or {}).get("lastTransitionTime")
        self._thread = threading.Thread(target=self._run, name="testbed-readiness-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- results --------------------------------------------------------------------------

    def summary(self) -> WatchSummary:
        with self._changed:
            now = time.time()
            gap = self._longest_observation_gap
            if self._last_observation is not None:
                gap = max(gap, now - self._last_observation)
            return WatchSummary(
                ready_for=0.0 if self.ready_since is None else now - self.ready_since,
                observations=self.observations, failures=list(self.failures), errors=list(self.errors),
                longest_observation_gap=gap, node=self.node,
                lease_renewals=max(len(self._lease_renewals) - 1, 0),
                longest_lease_gap=_longest_gap(self._lease_renewals),
                node_heartbeats=max(len(self._heartbeats) - 1, 0),
                longest_heartbeat_gap=_longest_gap(self._heartbeats),
                pod_ready_transition=self._pod_ready_transition)

    def wait(self, seconds: float) -> WatchSummary:
        """Block until the pod has been watched for ``seconds`` since it became Ready, or
        until the first failure (no need to wait out a run that already failed)."""
        if self.ready_since is None:
            raise RuntimeError("ReadinessWatch.wait() before start()")
        with self._changed:
            while not self.failures and (remaining := self.ready_since + seconds - time.time()) > 0:
                if self._thread is None or not self._thread.is_alive():
                    break
                self._changed.wait(min(remaining, 5.0))
        return self.summary()

    # -- the watch ------------------------------------------------------------------------

    def _run(self) -> None:
        cluster = Cluster.from_kubeconfig(self.kubeconfig)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self._observe(cluster)
                except ApiError as exc:
                    with self._changed:
                        self.errors.append(f"{time.strftime('%H:%M:%S')} {exc}")
        finally:
            cluster.close()

    def _observe(self, cluster: Cluster) -> None:
        pod = cluster.get_or_none("v1", "Pod", POD, NAMESPACE)
        node = cluster.get_or_none("v1", "Node", self.node) if self.node else None
        lease = cluster.get_or_none("coordination.k8s.io/v1", "Lease", self.node, LEASE_NAMESPACE) \
            if self.node else None
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        with self._changed:
            self.observations += 1
            if self._last_observation is not None:
                self._longest_observation_gap = max(self._longest_observation_gap, now - self._last_observation)
            self._last_observation = now
            pod_ready = _condition(pod, "Ready")
            node_ready = _condition(node, "Ready")
            if pod is None:
                self.failures.append(f"{stamp} pod {NAMESPACE}/{POD} is gone")
            elif (pod_ready or {}).get("status") != "True":
                self.failures.append(f"{stamp} pod not Ready: {pod_ready}")
            elif pod_ready and pod_ready.get("lastTransitionTime") != self._pod_ready_transition:
                self.failures.append(f"{stamp} pod Ready changed since {self._pod_ready_transition}: {pod_ready}")
            if node is None:
                self.failures.append(f"{stamp} node {self.node} is gone")
            elif (node_ready or {}).get("status") != "True":
                self.failures.append(f"{stamp} node not Ready: {node_ready}")
            renew = _parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
            if renew is not None and (not self._lease_renewals or renew != self._lease_renewals[-1]):
                self._lease_renewals.append(renew)
            beat = _parse_time((node_ready or {}).get("lastHeartbeatTime"))
            if beat is not None and (not self._heartbeats or beat != self._heartbeats[-1]):
                self._heartbeats.append(beat)
            self._changed.notify_all()
