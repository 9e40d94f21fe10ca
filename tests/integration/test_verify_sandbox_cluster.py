"""A verification on a separate sandbox cluster: the point is taken on the test bed's cluster and verified on a
second control plane; nothing of the sandbox ever appears on the source cluster."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.verify import verify
from kubekeep.catalog import list_verifications
from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import PROVISIONER
from kubekeep.verify import ExecCheck

from .test_verify_flow import _no_sandbox_left, _sandbox_namespaces


def test_verify_on_a_separate_sandbox_cluster(prefect_api: str, test_cluster: Any, cluster: Cluster,
                                              testbed_clusters: Any, namespace: str, tmp_path: Path) -> None:
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "uploads"), seed="sandbox-cluster", files=5)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="sandbox-cluster", cheap_kdf=True)
    app = f"far-{uuid.uuid4().hex[:6]}"
    rp = backup(app=app, namespaces=[namespace], location=location, encryption_key=key, init=True,
                cluster=ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)))
    sandbox_bed = testbed_clusters.get("verify-sandbox")
    far = sandbox_bed.connect()
    fast = f"fast-{uuid.uuid4().hex[:6]}"  # the sandbox cluster names its storage differently
    far.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": fast},
                "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
    seen_on_source: list[str] = []
    classes: set[str] = set()
    stop = threading.Event()

    def watch_source() -> None:
        while not stop.wait(0.3):
            seen_on_source.extend(n["metadata"]["name"] for n in _sandbox_namespaces(cluster))
            for ns in _sandbox_namespaces(far):
                classes.update(str(c["spec"].get("storageClassName")) for c in far.list_pages(
                    far.resource_for("v1", "PersistentVolumeClaim"), namespace=ns["metadata"]["name"]))

    watcher = threading.Thread(target=watch_source, daemon=True)
    watcher.start()
    try:
        verdict = verify(location=location, encryption_key=key, restore_point=rp,
                         cluster=ClusterConnection(name="sandbox", kubeconfig_path=str(sandbox_bed.kubeconfig)),
                         storage_class_map={"kubekeep-hostpath": fast},
                         checks=[ExecCheck(name="db-ping", pod_selector="app=db", command=["sh", "-c", "echo ok"])])
    finally:
        stop.set()
        watcher.join(timeout=10)
        far.delete("storage.k8s.io/v1", "StorageClass", fast)
    assert verdict["result"] == "passed", verdict["reason"]
    assert verdict["sandbox_cluster"] == "sandbox" and not seen_on_source, seen_on_source
    assert classes == {fast}, classes
    _no_sandbox_left(far)
    with key.catalog(location, cache_dir=tmp_path / "cache") as catalog:
        rows = list_verifications(catalog, app=app)
    assert [(r.result, r.sandbox_cluster) for r in rows] == [("passed", "sandbox")]
