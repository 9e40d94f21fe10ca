"""Site independence (issue 9): after a DR copy, site A is removed entirely (its SeaweedFS stopped, its data
deleted) and the application is restored from site B alone onto a fresh control plane."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.dr_copy import dr_copy
from flows.restore import restore
from kubekeep.drcopy import CopyMode
from kubekeep.testbed import sample_app
from kubekeep.testbed.seaweedfs import SeaweedFS
from tests.integration.test_dr_copy import s3_profile


def test_restore_from_site_b_alone_onto_a_fresh_control_plane(prefect_api: str, test_cluster, cluster,  # type: ignore[no-untyped-def]
                                                              namespace: str, two_sites, testbed_clusters,
                                                              tmp_path: Path) -> None:
    sample_app.create(cluster, namespace)
    data = {pvc: sample_app.fill_volume(sample_app.volume_path(cluster, namespace, pvc), seed=f"dr/{pvc}")
            for pvc in ("uploads", "data-db-0")}
    site_a = SeaweedFS(access_key=f"dr-site-a-{uuid.uuid4().hex[:6]}", data_dir=tmp_path / "site-a-data").start()
    try:
        bucket = site_a.create_plain_bucket("site-a")
        a = LocationProfile(kind="s3", bucket=bucket, prefix="shop/", endpoint_url=site_a.endpoint_url,
                            region=site_a.region, access_key_id=site_a.access_key,
                            secret_access_key=site_a.secret_key, addressing_style="path")
        key_a = EncryptionKey(passphrase="site-a", cheap_kdf=True)
        conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
        rp_id = backup(app="shop", namespaces=[namespace], location=a, encryption_key=key_a, cluster=conn,
                       init=True)
        b = s3_profile(two_sites.b, locked=True)
        key_b = EncryptionKey(passphrase="site-b", cheap_kdf=True)
        (result,) = dr_copy(source=a, destination=b, source_key=key_a, destination_key=key_b, app="shop",
                            mode=CopyMode.INDEPENDENT, init=True)
        assert (result.restore_point, result.status, result.verified) == (rp_id, "copied", True)
    finally:
        site_a.stop()
    shutil.rmtree(tmp_path / "site-a-data")  # site A is gone: server and data

    fresh = testbed_clusters.get("dr-copy-fresh")
    target = fresh.connect()
    try:
        report = restore(location=b, encryption_key=key_b,
                         cluster=ClusterConnection(name="fresh", kubeconfig_path=str(fresh.kubeconfig)), app="shop")
        assert report["failed"] is False, report
        for m in sample_app.manifests(namespace):
            md = m["metadata"]
            assert target.get(m["apiVersion"], m["kind"], md["name"], md.get("namespace")) is not None, \
                f"{m['kind']} {md['name']} missing on the fresh control plane"
        for pvc, digests in data.items():
            restored = sample_app.volume_path(target, namespace, pvc)
            assert _digests(restored) == digests, pvc
    finally:
        target.close()


def _digests(root: Path) -> dict[str, str]:
    import hashlib
    import os

    out = {}
    for dirpath, _d, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
