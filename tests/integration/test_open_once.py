"""One open repository per run: a backup (and a restore) of an app with five volumes derives the key once.

Opening a repository derives the key from the passphrase with Argon2id (64 MiB in production); every task
used to open its own repository, so a backup with N volumes paid it N+4 times. The derivations are counted
at the Argon2 call itself, through the real flows on the real test bed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import argon2.low_level
import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from blocks.repositories import POOL
from flows.backup import backup
from flows.restore import restore
from kubekeep.catalog import latest_restore_point
from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app

CLAIMS = [f"data-{i}" for i in range(5)]


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every Argon2 key derivation of this process (wherever kubekeep.repo imported it from)."""
    calls: list[int] = []
    real: Callable[..., bytes] = argon2.low_level.hash_secret_raw

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(argon2.low_level, "hash_secret_raw", counting)
    for name, module in list(sys.modules.items()):
        if name.startswith("kubekeep.repo") and getattr(module, "hash_secret_raw", None) is real:
            monkeypatch.setattr(module, "hash_secret_raw", counting)
    return calls


def _app_with_five_volumes(cluster: Cluster, namespace: str) -> None:
    for claim in CLAIMS:
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim, "namespace": namespace},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    for claim in CLAIMS:
        cluster.wait_for("v1", "PersistentVolumeClaim", claim, lambda o: (o or {}).get("status", {}).get(
            "phase") == "Bound", namespace=namespace, timeout=60, what="Bound")
        sample_app.fill_volume(sample_app.volume_path(cluster, namespace, claim), seed=claim, files=3)


def test_backup_and_restore_of_five_volumes_derive_the_key_once(
        prefect_api: str, test_cluster: Any, cluster: Cluster, namespace: str, tmp_path: Path,
        derivations: list[int]) -> None:
    _app_with_five_volumes(cluster, namespace)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="once", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    key.open_repository(location.storage(), create=True).close()  # init: one derivation for the new key slot
    derivations.clear()

    rp_id = backup(app="five", namespaces=[namespace], location=location, encryption_key=key, cluster=conn)
    assert len(derivations) == 1  # snapshot, 5 x export, commit, lock (no Object Lock here) and catalog share it
    assert POOL.open_count() == 0  # closed when the run ended
    with key.catalog(location, cache_dir=tmp_path / "cache") as catalog:
        point = latest_restore_point(catalog, "five")
    assert point is not None and point.id == rp_id and point.volume_count == 5
    assert POOL.open_count() == 0  # the catalog's repository is closed with the block

    derivations.clear()
    target = f"{namespace[:50]}-once"
    try:
        report = restore(location=location, encryption_key=key, cluster=conn, restore_point=rp_id,
                         namespace_map={namespace: target})
        assert report["failed"] is False
        assert sorted(v["pvc"] for v in report["volumes"]) == sorted(f"{target}/{c}" for c in CLAIMS)
        assert {v["status"] for v in report["volumes"]} == {"verified"}
        assert len(derivations) == 1  # plan, 5 volume fills and the report share it
        assert POOL.open_count() == 0
    finally:
        cluster.delete("v1", "Namespace", target)
