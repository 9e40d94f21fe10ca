"""The session's Kubernetes control plane and a fresh namespace per test.

By default a real control plane is started from the test bed (built from Go
modules on first use). ``KUBEKEEP_TEST_USE_EXISTING_CLUSTER=1`` runs the
integration tests against the cluster of ``KUBECONFIG`` instead (the tests
create and delete their own namespaces there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubekeep.cluster import Cluster


@dataclass
class TestCluster:
    kubeconfig: Path
    volumes_dir: Path | None  # where the hostPath provisioner puts volumes (None on an existing cluster)
    control_plane: object | None

    def connect(self) -> Cluster:
        return Cluster.from_kubeconfig(str(self.kubeconfig))


@pytest.fixture(scope="session")
def test_cluster() -> Iterator[TestCluster]:
    if os.environ.get("KUBEKEEP_TEST_USE_EXISTING_CLUSTER") == "1":
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        yield TestCluster(Path(path), None, None)
        return
    from kubekeep.testbed.controlplane import ControlPlane

    with ControlPlane() as cp:
        yield TestCluster(cp.kubeconfig_path, cp.volumes_dir, cp)


@pytest.fixture(scope="session")
def cluster(test_cluster: TestCluster) -> Iterator[Cluster]:
    c = test_cluster.connect()
    yield c
    c.close()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for finalization)."""
    base = request.node.name.lower().replace("_", "-")
    name = f"t-{''.join(ch for ch in base if ch.isalnum() or ch == '-')[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    cluster.delete("v1", "Namespace", name)
