"""A kwok pod and its node stay Ready for as long as the test bed runs (5 minutes at least).

The watch starts with the session's control plane (tests/plugins/controlplane.py)
and runs beside every other test; this test is moved to the end of the session,
so in a full run it waits for nothing. Run alone, it waits the 5 minutes.

Regression: kwok v0.7.0 without a node Lease let the node's heartbeat go stale;
kube-controller-manager marked the node NotReady after its 50 s grace period and
every pod on it NotReady, for good, so readiness waits that started late timed out.
"""

from __future__ import annotations

import pytest

SOAK_SECONDS = 300
#: kube-controller-manager's --node-monitor-grace-period (its default since Kubernetes 1.32)
NODE_MONITOR_GRACE_SECONDS = 50


@pytest.mark.session_end
def test_a_pod_and_its_node_stay_ready_for_five_minutes(test_cluster) -> None:  # type: ignore[no-untyped-def]
    watch = test_cluster.readiness_watch
    if watch is None:
        pytest.skip("the readiness watch runs on the built-in test bed only")
    summary = watch.wait(SOAK_SECONDS)
    print(summary.describe())
    assert not summary.failures, "\n".join([summary.describe(), *summary.failures[:10]])
    assert summary.ready_for >= SOAK_SECONDS, summary.describe()
    # watched all along, not just at both ends
    assert summary.longest_observation_gap < NODE_MONITOR_GRACE_SECONDS, summary.describe()
    # the heartbeat that keeps the node Ready: its Lease, renewed every 10 s (kwok --node-lease-duration-seconds=40)
    assert summary.lease_renewals >= SOAK_SECONDS / NODE_MONITOR_GRACE_SECONDS, summary.describe()
    assert summary.longest_lease_gap is not None
    assert summary.longest_lease_gap < NODE_MONITOR_GRACE_SECONDS, summary.describe()
