"""docs/migration.md names every check topic, every check module, and the drift conversions the code has."""

from __future__ import annotations

import re
from pathlib import Path

from kubekeep.migrate import Topic
from kubekeep.migrate.checks import CHECKS
from kubekeep.restore import KNOWN_CONVERSIONS

DOC = (Path(__file__).resolve().parents[3] / "docs" / "migration.md").read_text()


def test_every_topic_has_a_row() -> None:
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", DOC, flags=re.M))
    assert rows == {t.value for t in Topic} - {"left-out"}
    assert len(CHECKS) == len(rows) - 1  # network.py checks load balancers and ingress classes


def test_the_drift_table_matches_the_conversions() -> None:
    pairs = {(c.source_group, v, c.kind, c.target_version) for c in KNOWN_CONVERSIONS for v in c.source_versions}
    for kind in ("VolumeAttributesClass",):
        assert ("storage.k8s.io", "v1", kind, "v1beta1") in pairs and ("storage.k8s.io", "v1beta1", kind, "v1") in pairs
    for kind in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice"):
        assert {("resource.k8s.io", "v1", kind, "v1beta2"), ("resource.k8s.io", "v1beta2", kind, "v1"),
                ("resource.k8s.io", "v1beta1", kind, "v1")} <= pairs
        assert f"`{kind}`" in DOC
