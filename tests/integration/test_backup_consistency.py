"""Hooks and quiesce inside the backup flow, observed on the real test bed (exec through kwok)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import BackupFailed, backup
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import find_restore_point
from kubekeep.testbed import sample_app


def _rule(namespace: str, pre: str) -> dict:  # type: ignore[type-arg]
    """A policy hook rule for the database pod: ``pre`` is a shell line, post writes 'thaw'."""
    return {"name": "db-freeze", "namespaces": [namespace], "label_selector": "app=db",
            "pre": [{"command": ["sh", "-c", pre], "container": "postgres", "timeout": "20s"}],
            "post": [{"command": ["sh", "-c", "echo thaw >> hooks.log"], "container": "postgres"}]}


def _watch_replicas(cluster: Cluster, namespace: str, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        dep = cluster.get_or_none("apps/v1", "Deployment", "web", namespace)
        if dep is not None:
            seen.append(dep["spec"]["replicas"])
        time.sleep(0.05)


def test_hooks_and_quiesce_around_volume_export(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                                namespace: str, tmp_path: Path) -> None:
    if test_cluster.control_plane is None:
        pytest.skip("kwok exec wiring exists only in the built-in test bed")
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "uploads"), seed="c")
    exec_dir = test_cluster.control_plane.pod_exec_dir(cluster, namespace, "db-0")
    rule = _rule(namespace, "echo freeze >> hooks.log")

    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_replicas, args=(cluster, namespace, stop, seen), daemon=True)
    watcher.start()
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="pw", cheap_kdf=True)
    try:
        rp_id = backup(app="shop", namespaces=[namespace], location=location, encryption_key=key,
                       cluster=ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig)),
                       hooks=[rule], quiesce=["Deployment/web"], init=True)
    finally:
        stop.set()
        watcher.join()

    # the hooks really ran in the pod, in order
    assert (exec_dir / "hooks.log").read_text().split() == ["freeze", "thaw"]
    # the Deployment went to zero during the backup and is back to 2 afterwards, annotation removed
    assert 0 in seen and seen[0] == 2
    dep = cluster.get("apps/v1", "Deployment", "web", namespace)
    assert dep["spec"]["replicas"] == 2
    assert "kubekeep.io/quiesce-original-replicas" not in (dep["metadata"].get("annotations") or {})

    with key.open_repository(location.storage()) as repo:
        _, record = find_restore_point(repo, rp_id)
        manifests_time = next(i.time for i in repo.snapshots() if i.id == record.manifest_snapshot)
    phases = [(h["phase"], h["pod"], h["status"]) for h in record.hooks]
    assert phases == [("pre", "db-0", "succeeded"), ("post", "db-0", "succeeded")]
    pre, post = record.hooks
    assert datetime.fromisoformat(pre["finished_at"]) <= manifests_time <= datetime.fromisoformat(post["started_at"])
    # when the source stopped serving (a migration's downtime starts there): after the manifests, before post hooks
    assert record.quiesced_at is not None
    assert manifests_time <= datetime.fromisoformat(record.quiesced_at) <= datetime.fromisoformat(post["started_at"])
    # the stored Deployment keeps its real replica count (manifests are taken before scale-down)
    assert record.status == "succeeded"


def test_failing_pre_hook_still_runs_post_hooks_and_fails_the_run(prefect_api: str, test_cluster,  # type: ignore[no-untyped-def]
                                                                  cluster: Cluster, namespace: str,
                                                                  tmp_path: Path) -> None:
    if test_cluster.control_plane is None:
        pytest.skip("kwok exec wiring exists only in the built-in test bed")
    sample_app.create(cluster, namespace)
    exec_dir = test_cluster.control_plane.pod_exec_dir(cluster, namespace, "db-0")
    rule = _rule(namespace, "echo freeze >> hooks.log; echo 'cannot freeze' >&2; exit 4")
    with pytest.raises(BackupFailed) as err:
        backup(app="shop", namespaces=[namespace],
               location=LocationProfile(kind="filesystem", path=str(tmp_path / "loc")),
               encryption_key=EncryptionKey(passphrase="pw", cheap_kdf=True),
               cluster=ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig)), hooks=[rule], init=True)
    assert "no restore point written" in str(err.value) and "cannot freeze" in str(err.value)
    assert (exec_dir / "hooks.log").read_text().split() == ["freeze", "thaw"]
