"""Matching policies against a real cluster: discovery, namespace labels, and an application created
after the policy was written (protected on the next match with no edit)."""

from __future__ import annotations

import uuid

from kubekeep.backup.scope import discover_applications
from kubekeep.cluster import Cluster
from kubekeep.policy import match_apps, namespace_labels, policies_from_yaml


def test_a_namespace_created_after_the_policy_is_matched_next_time(cluster: Cluster, namespace: str) -> None:
    prefix = f"pm-{uuid.uuid4().hex[:6]}"
    policies = policies_from_yaml(f"""
policies:
  - name: by-pattern
    apps: {{namespaces: ["{prefix}-*"], exclude: ["{prefix}-skip"]}}
    schedule: {{cron: "0 2 * * *"}}
    retention: {{keep_daily: 7}}
    location: primary
  - name: by-label
    apps: {{namespace_selector: "kubekeep-test/tier={prefix}"}}
    schedule: {{cron: "0 * * * *"}}
    retention: {{keep_hourly: 24}}
    location: primary
""")
    created: list[str] = []

    def make(name: str, labels: dict[str, str] | None = None) -> None:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
        created.append(name)

    try:
        make(f"{prefix}-one")
        before = match_apps(discover_applications(cluster), policies, namespace_labels(cluster))
        assert before.by_policy["by-pattern"] == [f"{prefix}-one"] and before.by_policy["by-label"] == []
        assert namespace in [a.name for a in before.unprotected]

        # written after the policy: a matching namespace, an excluded one, a labelled one
        make(f"{prefix}-two")
        make(f"{prefix}-skip")
        cluster.patch("v1", "Namespace", namespace, {"metadata": {"labels": {"kubekeep-test/tier": prefix}}})
        after = match_apps(discover_applications(cluster), policies, namespace_labels(cluster))
        assert sorted(after.by_policy["by-pattern"]) == [f"{prefix}-one", f"{prefix}-two"]
        assert after.by_policy["by-label"] == [namespace]
        unprotected = [a.name for a in after.unprotected]
        assert f"{prefix}-skip" in unprotected and namespace not in unprotected
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)
