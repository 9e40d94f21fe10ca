"""The session's Kubernetes control planes and a fresh namespace per test.

By default a real control plane is started from the test bed (built from Go
modules on first use). ``KUBEKEEP_TEST_USE_EXISTING_CLUSTER=1`` runs the
integration tests against the cluster of ``KUBECONFIG`` instead (the tests
create and delete their own namespaces there).

Fixtures:
- ``test_cluster`` / ``cluster`` (session) and ``namespace`` (function): the main
  control plane. It also runs a :class:`~kubekeep.testbed.readiness_watch.ReadinessWatch`
  from its start, whose verdict ``test_testbed_soak.py`` checks at the end of the session.
- ``testbed_clusters`` (session): a factory of more control planes,
  ``testbed_clusters.get(name, version=None, **ControlPlane options)``, each started
  on first use (any Kubernetes version the test bed builds: ``"older"`` is
  K8S_OLDER_VERSION) and stopped at session end.
- ``two_clusters`` (session): two independent control planes, started at once:
  ``first`` of K8S_VERSION and ``second`` of K8S_OLDER_VERSION with
  OLDER_BETA_APIS switched on (it serves in beta what the first serves as GA, so
  migrations must convert; docs/testbed.md lists the drift). Choose other
  versions with ``@pytest.mark.parametrize("two_clusters", [("v1.36.3", "v1.36.3")],
  indirect=True)`` or ``KUBEKEEP_TEST_SECOND_K8S_VERSION``.

``testbed_clusters`` (so ``two_clusters`` too) stops after the last test that uses it
(tests/plugins/lifetime.py), at the latest at session end. Tests marked ``session_end`` run after all others.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubekeep.cluster import Cluster
from tests.plugins.lifetime import release_after_last_use

#: kinds the control plane derives from other objects and rewrites on its own: Events, and the Endpoints and
#: EndpointSlices kube-controller-manager keeps in step with the Services' pods (they move some time after an app
#: is Ready, whenever a pod's readiness moves). A test that proves Kubekeep left a namespace untouched leaves them
#: out; a CI run under load saw EndpointSlices move mid-test in two such tests.
DERIVED_BY_THE_CONTROL_PLANE = frozenset({"Event", "Endpoints", "EndpointSlice"})

SECOND_VERSION_ENV = "KUBEKEEP_TEST_SECOND_K8S_VERSION"


@dataclass
class TestCluster:
    kubeconfig: Path
    volumes_dir: Path | None  # where the hostPath provisioner puts volumes (None on an existing cluster)
    control_plane: Any | None
    #: the Kubernetes version the control plane runs (None on an existing cluster)
    version: str | None = None
    #: the sentinel-pod watch started with the control plane (main test bed only)
    readiness_watch: Any | None = None

    def connect(self) -> Cluster:
        return Cluster.from_kubeconfig(str(self.kubeconfig))


@dataclass
class ClusterPair:
    first: TestCluster
    second: TestCluster

    def __iter__(self) -> Iterator[TestCluster]:
        return iter((self.first, self.second))


class ControlPlanes:
    """Control planes started on demand by name and stopped together (see ``testbed_clusters``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, TestCluster] = {}
        self._starting: dict[str, threading.Lock] = {}
        self._options: dict[str, dict[str, Any]] = {}

    def get(self, name: str, version: str | None = None, **options: Any) -> TestCluster:
        """The control plane ``name``, started now if it is not running yet (thread-safe);
        ``options`` go to :class:`~kubekeep.testbed.controlplane.ControlPlane`."""
        from kubekeep.testbed.controlplane import ControlPlane, resolve_version

        wanted = resolve_version(version)
        with self._lock:
            gate = self._starting.setdefault(name, threading.Lock())
        with gate:
            existing = self._started.get(name)
            if existing is not None:
                if (existing.version, self._options[name]) != (wanted, options):
                    raise ValueError(f"control plane {name!r} runs {existing.version} with {self._options[name]}, "
                                     f"not {wanted} with {options}")
                return existing
            cp = ControlPlane(version=wanted, **options)
            cp.__enter__()
            tc = TestCluster(cp.kubeconfig_path, cp.volumes_dir, cp, version=cp.version)
            with self._lock:
                self._started[name] = tc
                self._options[name] = options
            return tc

    def stop(self) -> None:
        with self._lock:
            started, self._started = list(self._started.values()), {}
        for tc in started:
            tc.control_plane.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "session_end: run after every other test (checks session-long watches)")
    # `kill <pytest>` (CI stopping a run) tears the session down like Ctrl-C: fixtures stop
    # their servers instead of leaving them to the interpreter's exit
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("session_end")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("session_end")] + last


@pytest.fixture(scope="session")
def test_cluster() -> Iterator[TestCluster]:
    if os.environ.get("KUBEKEEP_TEST_USE_EXISTING_CLUSTER") == "1":
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        yield TestCluster(Path(path), None, None)
        return
    from kubekeep.testbed.controlplane import ControlPlane
    from kubekeep.testbed.readiness_watch import ReadinessWatch

    with ControlPlane() as cp:
        watch = ReadinessWatch(cp.kubeconfig_path).start()
        try:
            yield TestCluster(cp.kubeconfig_path, cp.volumes_dir, cp, version=cp.version, readiness_watch=watch)
        finally:
            watch.stop()


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


@pytest.fixture(scope="session")
def testbed_clusters() -> Iterator[ControlPlanes]:
    if os.environ.get("KUBEKEEP_TEST_USE_EXISTING_CLUSTER") == "1":
        pytest.skip("more control planes exist only in the built-in test bed")
    planes = ControlPlanes()
    release_after_last_use("testbed_clusters", planes.stop)
    try:
        yield planes
    finally:
        planes.stop()


@pytest.fixture(scope="session")
def two_clusters(testbed_clusters: ControlPlanes, request: pytest.FixtureRequest) -> ClusterPair:
    from kubekeep.testbed.controlplane import K8S_OLDER_VERSION, K8S_VERSION, OLDER_BETA_APIS, resolve_version

    first, second = (resolve_version(v) for v in getattr(request, "param", None) or (
        K8S_VERSION, os.environ.get(SECOND_VERSION_ENV) or K8S_OLDER_VERSION))

    def options(version: str) -> dict[str, Any]:
        return dict(OLDER_BETA_APIS) if version == K8S_OLDER_VERSION else {}

    # started at once: two control planes in one process, each with its own ports, data, certs and kwok
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(testbed_clusters.get, f"first-{first}", first, **options(first))
        b = pool.submit(testbed_clusters.get, f"second-{second}", second, **options(second))
        return ClusterPair(a.result(), b.result())
