"""`kubekeep backup`, `kubekeep restore-points` and `kubekeep apps` as a user runs them; app discovery."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubekeep.backup.scope import BackupScope, ScopeError, discover_applications, namespace_names
from kubekeep.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def _kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_cli_backup_then_list_restore_points(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                             namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}})
    env = {"PREFECT_API_URL": prefect_api, "KUBECONFIG": str(test_cluster.kubeconfig),
           "KUBEKEEP_PASSWORD": "cli-pass", "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "200"}
    location = str(tmp_path / "loc")
    result = _kubekeep(["backup", "--app", "cli-app", "-n", namespace, "--location", location, "--init"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    rp_id = result.stdout.strip().splitlines()[-1]
    assert rp_id.startswith("cli-app-")

    listed = _kubekeep(["restore-points", "--location", location, "--app", "cli-app"], env)
    assert listed.returncode == 0, listed.stderr
    assert rp_id[:20] in listed.stdout and "succeeded" in listed.stdout

    # restore it into another namespace: dry run first (nothing created), then for real
    copy = f"{namespace[:50]}-cli"
    args = ["restore", "--location", location, "--app", "cli-app", "--namespace-map", f"{namespace}={copy}"]
    dry = _kubekeep([*args, "--dry-run"], env)
    assert dry.returncode == 0 and "no problems found" in dry.stdout, dry.stderr[-3000:]
    assert cluster.get_or_none("v1", "Namespace", copy) is None
    real = _kubekeep(args, env)
    assert real.returncode == 0 and real.stdout.startswith("completed"), real.stderr[-3000:]
    assert cluster.get("v1", "ConfigMap", "c", copy)["metadata"]["namespace"] == copy
    cluster.delete("v1", "Namespace", copy)
    bad_map = _kubekeep([*args[:-2], "--namespace-map", "nonsense"], env)
    assert bad_map.returncode == 2 and "expected old=new" in bad_map.stderr

    # bad input: a namespace that does not exist -> a clear message, non-zero exit, no restore point
    bad = _kubekeep(["backup", "--app", "cli-app", "-n", "no-such-namespace", "--location", location], env)
    assert bad.returncode == 1 and "namespace(s) not found: no-such-namespace" in bad.stderr
    wrong = _kubekeep(["backup", "--app", "cli-app", "-n", namespace, "--location", location],
                      {**env, "KUBEKEEP_PASSWORD": "wrong"})
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr


def test_discovery_finds_namespaces_helm_releases_and_label_groups(cluster: Cluster, namespace: str) -> None:
    release = {"name": "shop", "chart": {"metadata": {"name": "shop-chart", "version": "1.2.3"}}}
    payload = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                    "metadata": {"name": "sh.helm.release.v1.shop.v1", "namespace": namespace,
                                 "labels": {"owner": "helm", "name": "shop", "status": "deployed", "version": "1"}},
                    "data": {"release": base64.b64encode(payload.encode()).decode()}})
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "api", "namespace": namespace,
                                 "labels": {"app.kubernetes.io/part-of": f"store-{namespace}"}},
                    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    apps = {a.name: a for a in discover_applications(cluster)}
    assert apps[namespace].source == "namespace"
    helm = apps[f"helm:{namespace}/shop"]
    assert helm.details["chart"] == "shop-chart-1.2.3" and helm.label_selector == "app.kubernetes.io/instance=shop"
    group = apps[f"label:store-{namespace}"]
    assert group.namespaces == (namespace,) and "kube-system" not in apps


def test_selection_patterns_pick_up_new_namespaces(cluster: Cluster, namespace: str) -> None:
    prefix = namespace[:-7]
    selection = BackupScope(namespaces=(f"{prefix}-*",))
    assert selection.resolve_namespaces(namespace_names(cluster)) == [namespace]
    with pytest.raises(ScopeError, match="not found"):
        BackupScope(namespaces=("definitely-missing",)).resolve_namespaces(namespace_names(cluster))
    with pytest.raises(ScopeError, match="at least one namespace"):
        BackupScope(namespaces=())
