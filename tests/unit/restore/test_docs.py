"""docs/restore-order.md is the spec: its table and examples must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kubekeep.restore import DEFAULT_PRIORITIES, TierPolicy, TransformChain, parse_priorities

DOC = Path(__file__).resolve().parents[3] / "docs" / "restore-order.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_priority_table_matches_default_list() -> None:
    rows = re.findall(r"^\| (\d+) \| `([^`]+)`", DOC.read_text(), flags=re.M)
    assert [match for _, match in rows] == [e.match for e in DEFAULT_PRIORITIES]


def test_examples_parse() -> None:
    blocks = [yaml.safe_load(b) for b in _yaml_blocks()]
    priorities = next(b["priorities"] for b in blocks if isinstance(b, dict) and "priorities" in b)
    assert parse_priorities(priorities)[-1].match == "ValidatingWebhookConfiguration.admissionregistration.k8s.io"
    policy = next(b for b in blocks if isinstance(b, dict) and "tiers" in b)
    assert TierPolicy.from_dict(policy).tiers["batch-worker"] == 3
    chain = next(b for b in blocks if isinstance(b, dict) and "transforms" in b)
    assert len(TransformChain.from_dict(chain).transforms) == 6
