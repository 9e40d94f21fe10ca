"""Shared pytest configuration.

Session-scoped servers live in tests/plugins/: one control plane, one
SeaweedFS and one Prefect harness per test session, started lazily by the
tests that ask for them and stopped at session end (also on failure or
Ctrl-C). Tests under tests/unit/ are marked `unit`, tests under
tests/integration/ `integration`, tests under tests/ui/ `ui` (a real browser
against the harness Prefect server; they need the test bed too, so they are
`integration` as well).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.plugins.lifetime",  # first: the other plugins import it
    "tests.plugins.s3",
    "tests.plugins.controlplane",
    "tests.plugins.prefect",
    "tests.plugins.browser",
    "tests.plugins.deployments",
]

os.environ.setdefault("DO_NOT_TRACK", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "unit" in parts:
            item.add_marker(pytest.mark.unit)
        elif "integration" in parts or "contract" in parts:
            item.add_marker(pytest.mark.integration)
        elif "ui" in parts:
            item.add_marker(pytest.mark.ui)
            item.add_marker(pytest.mark.integration)
