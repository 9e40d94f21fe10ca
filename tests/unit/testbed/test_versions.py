"""The test bed's versions have one home (versions.sh), read alike by the build script and Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubekeep.testbed import controlplane
from kubekeep.testbed.controlplane import VersionError, resolve_version

ROOT = Path(__file__).resolve().parents[3]


def test_the_build_script_and_python_read_the_same_versions() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEKEEP_")}
    out = subprocess.run(
        ["bash", "-c", 'source "$1"; echo "$K8S_VERSION $K8S_OLDER_VERSION $ETCD_VERSION $KWOK_VERSION"', "-",
         str(controlplane.VERSIONS_FILE)], capture_output=True, text=True, check=True, env=env).stdout.split()
    parsed = subprocess.run(
        [sys.executable, "-c", "from kubekeep.testbed import controlplane as c;"
         "print(c.K8S_VERSION, c.K8S_OLDER_VERSION, c.ETCD_VERSION, c.KWOK_VERSION)"],
        capture_output=True, text=True, check=True, env=env, cwd=ROOT).stdout.split()
    assert out == parsed
    assert len(out) == 4 and all(v.startswith("v") for v in out)


def test_an_environment_variable_overrides_versions_sh() -> None:
    env = {**os.environ, "KUBEKEEP_K8S_OLDER_VERSION": "v1.32.13"}
    parsed = subprocess.run(
        [sys.executable, "-c", "from kubekeep.testbed import controlplane as c; print(c.K8S_OLDER_VERSION)"],
        capture_output=True, text=True, check=True, env=env, cwd=ROOT).stdout.strip()
    assert parsed == "v1.32.13"


def test_the_older_version_is_an_older_minor() -> None:
    def minor(v: str) -> int:
        return int(v.split(".")[1])

    assert minor(controlplane.K8S_OLDER_VERSION) < minor(controlplane.K8S_VERSION)


def test_version_names() -> None:
    assert resolve_version(None) == controlplane.K8S_VERSION
    assert resolve_version("older") == controlplane.K8S_OLDER_VERSION
    assert resolve_version("v1.34.4") == "v1.34.4"
    for bad in ("1.33.13", "v1.33", "latest", "v2.0.0"):
        with pytest.raises(VersionError, match="v1.33.13"):
            resolve_version(bad)
