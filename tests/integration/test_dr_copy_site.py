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


def test_a_successful_backup_copies_its_restore_point_as_a_subflow(prefect_api: str, test_cluster, cluster,  # type: ignore[no-untyped-def]
                                                                   namespace: str, two_sites, tmp_path: Path) -> None:
    import asyncio

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from kubekeep.drcopy import present_points
    from kubekeep.repo.repository import Repository
    from tasks.parameters import CopyAfterBackup

    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"a": "b"}})
    suffix = uuid.uuid4().hex[:6]
    s3_profile(two_sites.b).save(f"dr-{suffix}")
    EncryptionKey(passphrase="site-b", cheap_kdf=True).save(f"dr-key-{suffix}")
    a = LocationProfile(kind="filesystem", path=str(tmp_path / "a"))
    key_a = EncryptionKey(passphrase="site-a", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    state = backup(app=f"auto-{suffix}", namespaces=[namespace], location=a, encryption_key=key_a, cluster=conn,
                   init=True, copy_to=CopyAfterBackup(destination=f"dr-{suffix}", destination_key=f"dr-key-{suffix}",
                                                      mode="independent", init=True), return_state=True)
    rp_id = state.result()
    dest = Repository.open(LocationProfile.load(f"dr-{suffix}").storage(), passphrase="site-b")
    assert list(present_points(dest)) == [rp_id]
    dest.close()

    async def children() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])))
            return [r.name for r in runs]

    assert asyncio.run(children()) == [f"dr-copy-independent-{rp_id}"]
