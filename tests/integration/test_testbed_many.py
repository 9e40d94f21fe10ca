"""Many test beds at once: two clusters (two Kubernetes versions), two S3 sites, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from kubekeep.cluster import ApiError, Cluster, has_condition
from kubekeep.repo.storage.base import StorageError
from kubekeep.repo.storage.s3 import S3Storage
from kubekeep.testbed.controlplane import K8S_OLDER_VERSION, K8S_VERSION
from kubekeep.testbed.crds import KWOK_GROUP
from tests.plugins.paths import REPO_ROOT


def _pod_ready_with_volume(cluster: Cluster, namespace: str) -> dict:  # type: ignore[type-arg]
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "namespace": namespace},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": namespace},
                    "spec": {"containers": [{"name": "app", "image": "busybox"}],
                             "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    pod = cluster.wait_for("v1", "Pod", "app", lambda o: has_condition(o, "Ready"), namespace=namespace,
                           timeout=120, what="Ready")
    assert pod is not None
    return pod


def test_two_clusters_are_independent_and_both_serve(two_clusters) -> None:  # type: ignore[no-untyped-def]
    first, second = two_clusters
    assert (first.version, second.version) == (K8S_VERSION, K8S_OLDER_VERSION)
    a_cp, b_cp = first.control_plane, second.control_plane
    assert a_cp.workdir != b_cp.workdir and a_cp.volumes_dir != b_cp.volumes_dir
    assert not set(a_cp._ports.ports) & set(b_cp._ports.ports)
    ns = f"t-two-{uuid.uuid4().hex[:6]}"
    with first.connect() as a, second.connect() as b:
        assert a.server_version()["gitVersion"] == K8S_VERSION
        assert b.server_version()["gitVersion"] == K8S_OLDER_VERSION
        for c in (a, b):
            c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        try:
            a.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-in-first", "namespace": ns},
                      "data": {"k": "v"}})
            assert b.get_or_none("v1", "ConfigMap", "only-in-first", ns) is None
            # each cluster schedules, runs (its own kwok) and provisions (its own hostPath provisioner)
            pods = {name: _pod_ready_with_volume(c, ns) for name, c in (("first", a), ("second", b))}
            for (name, c), cp in zip((("first", a), ("second", b)), (a_cp, b_cp), strict=True):
                assert pods[name]["status"]["phase"] == "Running"
                pvc = c.get("v1", "PersistentVolumeClaim", "data", ns)
                assert (cp.volumes_dir / pvc["spec"]["volumeName"]).is_dir()
            # each kwok keeps its own node's Lease (the heartbeat that keeps pods Ready, docs/testbed.md)
            leases = [c.get("coordination.k8s.io/v1", "Lease", "kwok-node-0", "kube-node-lease") for c in (a, b)]
            assert [lease["spec"]["leaseDurationSeconds"] for lease in leases] == [40, 40]
            assert leases[0]["spec"]["holderIdentity"] != leases[1]["spec"]["holderIdentity"]
            # two clusters, two different UIDs for "the same" namespace: nothing shared underneath
            assert a.get("v1", "Namespace", ns)["metadata"]["uid"] != b.get("v1", "Namespace", ns)["metadata"]["uid"]
        finally:
            for c in (a, b):
                c.delete("v1", "Namespace", ns)


def test_two_sites_have_their_own_credentials_and_objects(two_sites) -> None:  # type: ignore[no-untyped-def]
    site_a, site_b = two_sites
    assert site_a.endpoint_url != site_b.endpoint_url
    assert site_a.access_key != site_b.access_key and site_a.secret_key != site_b.secret_key
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    a = S3Storage(site_a.config(site_a.plain_bucket, prefix))
    b = S3Storage(site_b.config(site_b.plain_bucket, prefix))
    try:
        a.put("data/one", b"written to site A")
        assert a.get("data/one") == b"written to site A"
        assert [o.key for o in b.list("data/")] == []
        b.put("data/two", b"written to site B")
        assert [o.key for o in a.list("data/")] == ["data/one"]
        assert [o.key for o in b.list("data/")] == ["data/two"]
    finally:
        a.close()
        b.close()
    # A's key is refused by B (and the other way round): the sites trust different identities
    for key_of, endpoint_of in ((site_a, site_b), (site_b, site_a)):
        wrong = S3Storage(key_of.config(endpoint_of.plain_bucket, prefix, endpoint_url=endpoint_of.endpoint_url,
                                        max_attempts=1))
        try:
            with pytest.raises(StorageError) as err:
                wrong.get("data/one" if endpoint_of is site_a else "data/two")
            assert "access denied" in str(err.value), str(err.value)
        finally:
            wrong.close()
    # each site has an Object Lock bucket of its own
    for site in (site_a, site_b):
        client = site.client()
        try:
            conf = client.get_object_lock_configuration(Bucket=site.locked_bucket)
            assert conf["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
        finally:
            client.close()


_CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from kubekeep.testbed.controlplane import ControlPlane
    from kubekeep.testbed.seaweedfs import SeaweedFS

    out, go = Path(sys.argv[1]), Path(sys.argv[2])
    with ControlPlane() as cp, SeaweedFS() as s3, cp.cluster() as c:
        c.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "mine-" + sys.argv[3], "namespace": "default"}})
        s3.create_bucket("bucket-" + sys.argv[3])
        out.write_text(json.dumps({
            "kubeconfig": str(cp.kubeconfig_path), "workdir": str(cp.workdir), "s3": s3.endpoint_url,
            "s3_key": [s3.access_key, s3.secret_key],
            "ports": cp._ports.ports + s3._ports.ports,
            "pgids": [p.pgid for p in cp.processes] + [s3._process.pgid],
        }))
        deadline = time.monotonic() + 600
        while not go.exists():   # both test beds stay up until the parent has looked at both
            cp.check_alive()
            if time.monotonic() > deadline:
                sys.exit("parent never said go")
            time.sleep(0.2)
""")


def test_test_beds_start_in_two_processes_at_once(tmp_path: Path) -> None:
    go = tmp_path / "go"
    children = []
    info: dict[str, dict] = {}  # type: ignore[type-arg]
    for name in ("p1", "p2"):
        out = tmp_path / f"{name}.json"
        log = (tmp_path / f"{name}.log").open("w")
        children.append((name, out, subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(out), str(go), name], cwd=REPO_ROOT, stdout=log,
            stderr=subprocess.STDOUT, env=dict(os.environ))))
    try:
        deadline = time.monotonic() + 300
        while not all(out.exists() for _, out, _ in children):
            for name, _, proc in children:
                assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "test beds not up within 300 s"
            time.sleep(0.5)
        info.update({name: json.loads(out.read_text()) for name, out, _ in children})
        # both up at the same time, on different ports, in different directories
        assert not set(info["p1"]["ports"]) & set(info["p2"]["ports"])
        assert info["p1"]["workdir"] != info["p2"]["workdir"]
        for me, other in (("p1", "p2"), ("p2", "p1")):
            with Cluster.from_kubeconfig(info[me]["kubeconfig"]) as c:
                assert c.get_or_none("v1", "ConfigMap", f"mine-{me}", "default") is not None
                assert c.get_or_none("v1", "ConfigMap", f"mine-{other}", "default") is None
                node = c.get("v1", "Node", "kwok-node-0")
                assert has_condition(node, "Ready")
        go.touch()
        for name, _, proc in children:
            assert proc.wait(120) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        for _, _, proc in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    # each child stopped its whole process groups and removed its work directory
    for name in ("p1", "p2"):
        for pgid in info[name]["pgids"]:
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
        assert not Path(info[name]["workdir"]).exists()


def _documented_drift() -> dict[tuple[str, str], tuple[str, str, str]]:
    """docs/testbed.md's drift table: (group, kind) -> served versions (newer, older, older with betas)."""
    section = (REPO_ROOT / "docs" / "testbed.md").read_text().split("## API drift", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and "." in cells[0] and cells[0] != "group":
            rows[(cells[0], cells[1])] = (cells[2], cells[3], cells[4])
    return rows


def _served(cluster: Cluster) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], set[str]] = {}
    for r in cluster.resources(refresh=True):
        found.setdefault((r.group, r.kind), set()).add(r.version)
    return {gk: ",".join(sorted(v)) for gk, v in found.items()}


def test_the_documented_drift_matches_the_two_versions(two_clusters) -> None:  # type: ignore[no-untyped-def]
    """docs/testbed.md lists every kind whose served versions differ; migration tests rely on it."""
    from kubekeep.testbed.controlplane import ControlPlane

    documented = _documented_drift()
    assert documented, "no drift table in docs/testbed.md"
    first, second = two_clusters
    with ControlPlane(version=K8S_OLDER_VERSION, scheduler=False, kwok=False, provisioner=False) as plain, \
            first.connect() as new, second.connect() as betas, plain.cluster() as old:
        served = [_served(c) for c in (new, old, betas)]
    differing = {gk for gk in set().union(*served)
                 if len({s.get(gk, "-") for s in served}) > 1 and gk[0] != KWOK_GROUP  # kwok's CRDs: test bed's own
                 and not gk[0].endswith(".kubekeep.io")}  # CRDs other tests left on the session's clusters
    assert differing == set(documented), "docs/testbed.md's drift table is out of date"
    for gk, columns in documented.items():
        assert tuple(s.get(gk, "-") for s in served) == columns, gk


def test_an_object_of_the_newer_version_is_refused_or_converted_by_the_older(two_clusters) -> None:  # type: ignore[no-untyped-def]
    first, second = two_clusters
    name = f"gold-{uuid.uuid4().hex[:6]}"
    vac = {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttributesClass", "metadata": {"name": name},
           "driverName": "hostpath.csi.kubekeep.io", "parameters": {"iops": "100"}}
    with first.connect() as new, second.connect() as old:
        new.create(vac)
        try:
            with pytest.raises(ApiError) as err:
                old.create(vac)
            assert err.value.status == 404 and "not served" in str(err.value)
            # the same object in the version the older cluster serves (what a migration converts to)
            made = old.create({**vac, "apiVersion": "storage.k8s.io/v1beta1"})
            assert (made["driverName"], made["parameters"]) == (vac["driverName"], vac["parameters"])
            old.delete("storage.k8s.io/v1beta1", "VolumeAttributesClass", name)
        finally:
            new.delete("storage.k8s.io/v1", "VolumeAttributesClass", name)


def test_testbed_up_runs_the_chosen_version_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from flows.cli import main; main()", "testbed", "up",
                             "--version", "older"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("export KUBECONFIG="):
                break
        assert lines and lines[-1].startswith("export KUBECONFIG="), "".join(lines)
        assert lines[0].startswith(f"Kubernetes {K8S_OLDER_VERSION}, kube-apiserver: https://127.0.0.1:")
        kubeconfig = Path(lines[-1].split("=", 1)[1].strip())
        with Cluster.from_kubeconfig(str(kubeconfig)) as c:
            assert c.server_version()["gitVersion"] == K8S_OLDER_VERSION
        proc.terminate()
        assert proc.wait(60) == 0
        assert not kubeconfig.parent.exists()  # stopped and cleaned up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_testbed_up_refuses_a_bad_version_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "testbed", "up",
                             "--version", "1.33"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Kubernetes version must look like v1.33.13 or be one of default, newer, older, not '1.33'"]
    assert "Traceback" not in result.stdout + result.stderr
