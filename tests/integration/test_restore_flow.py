"""The restore flow end to end on the real test bed: back up the sample app, restore it elsewhere and in place."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.restore import RestoreFailed, restore
from kubekeep.catalog import list_restores
from kubekeep.cluster import ApiError, Cluster
from kubekeep.repo.errors import WrongKeyError
from kubekeep.restorepoint import RestorePointNotFoundError
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import PROVISIONER


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _d, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def backed_up(prefect_api: str, test_cluster, cluster: Cluster, namespace: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    sample_app.create(cluster, namespace)
    data = {pvc: sample_app.fill_volume(sample_app.volume_path(cluster, namespace, pvc), seed=f"r/{pvc}")
            for pvc in ("uploads", "data-db-0")}
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="restore-pw", cheap_kdf=True)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    rp_id = backup(app="shop", namespaces=[namespace], location=location, encryption_key=key, cluster=conn,
                   init=True)
    return {"location": location, "key": key, "conn": conn, "rp": rp_id, "data": data, "ns": namespace}


def test_restore_into_new_namespace_with_transforms(backed_up, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = backed_up["ns"]
    dst = f"{src[:50]}-copy"
    fast = f"fast-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": fast},
                    "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
    try:
        report = restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                         app="shop", namespace_map={src: dst}, storage_class_map={"kubekeep-hostpath": fast},
                         image_rewrite={"registry.example.com/shop": "mirror.example.com/shop"})
        assert report["failed"] is False and report["counts"]["created"] > 10
        web = cluster.get("apps/v1", "Deployment", "web", dst)
        assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.example.com/shop/web:1.4"
        cluster.wait_for("apps/v1", "Deployment", "web", lambda o: o is not None and (o.get("status") or {}).get(
            "availableReplicas") == 2, namespace=dst, timeout=60)
        for pvc, digests in backed_up["data"].items():
            claim = cluster.get("v1", "PersistentVolumeClaim", pvc, dst)
            assert claim["spec"]["storageClassName"] == fast
            assert _digests(sample_app.volume_path(cluster, dst, pvc)) == digests
        # Services get fresh cluster IPs; the headless one stays headless; NodePorts are not kept by default
        for svc in ("web", "web-public"):
            assert cluster.get("v1", "Service", svc, dst)["spec"]["clusterIP"] != \
                cluster.get("v1", "Service", svc, src)["spec"]["clusterIP"]
        assert cluster.get("v1", "Service", "db", dst)["spec"]["clusterIP"] == "None"
        assert cluster.get("v1", "Service", "web-public", dst)["spec"]["ports"][0]["nodePort"] != \
            cluster.get("v1", "Service", "web-public", src)["spec"]["ports"][0]["nodePort"]
        # ReplicaSet-owned Pods were not restored: every pod in the copy is owned by the copy's controllers
        restored_rs = {o["metadata"]["uid"] for o in cluster.list_pages(
            cluster.resource_for("apps/v1", "ReplicaSet"), namespace=dst)}
        for pod in cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=dst):
            owners = pod["metadata"].get("ownerReferences") or []
            if owners and owners[0]["kind"] == "ReplicaSet":
                assert owners[0]["uid"] in restored_rs
        with backed_up["key"].catalog(backed_up["location"], cache_dir=tmp_path / "cache") as catalog:
            rows = list_restores(catalog)
        assert [r.status for r in rows] == ["succeeded"] and rows[0].restore_point_id == backed_up["rp"]
    finally:
        cluster.delete("v1", "Namespace", dst)
        cluster.delete("storage.k8s.io/v1", "StorageClass", fast)


def test_restore_in_place_after_namespace_deleted(backed_up, cluster: Cluster) -> None:  # type: ignore[no-untyped-def]
    ns = backed_up["ns"]
    node_port = cluster.get("v1", "Service", "web-public", ns)["spec"]["ports"][0]["nodePort"]
    cluster.delete("v1", "Namespace", ns)
    with pytest.raises(RestoreFailed, match="[Tt]erminating"):
        restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                restore_point=backed_up["rp"], preserve_node_ports=True)
    cluster.wait_for("v1", "Namespace", ns, lambda o: o is None, timeout=180, what="namespace finalized")
    report = restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                     restore_point=backed_up["rp"], preserve_node_ports=True)
    assert report["failed"] is False
    assert cluster.get("v1", "Service", "web-public", ns)["spec"]["ports"][0]["nodePort"] == node_port
    assert cluster.get("v1", "Secret", "db-credentials", ns)["data"]["password"]
    for pvc, digests in backed_up["data"].items():
        assert _digests(sample_app.volume_path(cluster, ns, pvc)) == digests


def test_dry_run_changes_nothing(backed_up, cluster: Cluster) -> None:  # type: ignore[no-untyped-def]
    ns = backed_up["ns"]

    def versions() -> dict[str, str]:
        out = {}
        for r in cluster.preferred_resources():
            if r.namespaced and "list" in r.verbs and r.kind not in ("Event", "Lease"):
                try:
                    for o in cluster.list_pages(r, namespace=ns):
                        out[f"{r.kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
                except ApiError:
                    continue
        return out

    cluster.patch("v1", "ConfigMap", "shop-config", {"data": {"LOG_LEVEL": "debug"}}, namespace=ns)
    before = versions()
    with pytest.raises(RestoreFailed) as err:
        restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                restore_point=backed_up["rp"], existing="update", dry_run=True,
                transforms=[{"type": "json-patch", "selector": {"kind": "Deployment", "name": "web"},
                             "patch": [{"op": "replace", "path": "/spec/selector/matchLabels/app", "value": "x"},
                                       {"op": "replace", "path": "/spec/template/metadata/labels/app",
                                        "value": "x"}]}])
    assert "immutable" in str(err.value)
    assert versions() == before


def test_single_file_restore_and_bad_inputs(backed_up, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ns = backed_up["ns"]
    out = restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                  restore_point=backed_up["rp"],
                  files={"pvc": f"{ns}/uploads", "path": "sub/deeper/notes.md", "target": str(tmp_path / "one")})
    assert out["files"]["verified_files"] == 1
    assert (tmp_path / "one" / "sub" / "deeper" / "notes.md").read_text() == "# r/uploads\n"

    with pytest.raises(RestorePointNotFoundError, match="not found"):
        restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                restore_point="shop-19990101T000000Z-000000")
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        restore(location=backed_up["location"], encryption_key=EncryptionKey(passphrase="nope", cheap_kdf=True),
                cluster=backed_up["conn"], restore_point=backed_up["rp"])


def test_tiers_from_the_run_and_a_corrupted_restore_point(backed_up, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from kubekeep.repo.errors import IntegrityError

    src = backed_up["ns"]
    dst = f"{src[:50]}-tier"
    try:
        report = restore(location=backed_up["location"], encryption_key=backed_up["key"], cluster=backed_up["conn"],
                         restore_point=backed_up["rp"], namespace_map={src: dst},
                         tiers={"tiers": {"StatefulSet/db": 0, "Deployment/web": 1}})
        tiers = {p["tier"]: p for p in report["phases"] if p["tier"] is not None}
        assert set(tiers) == {0, 1}
        assert tiers[0]["ready_at"] is not None and tiers[1]["started_at"] >= tiers[0]["ready_at"]
        web = cluster.get("apps/v1", "Deployment", "web", dst)["metadata"]["creationTimestamp"]
        db = cluster.get("apps/v1", "StatefulSet", "db", dst)["metadata"]["creationTimestamp"]
        assert web >= db
    finally:
        cluster.delete("v1", "Namespace", dst)

    # a copy of the location with one byte flipped in every pack: a clear integrity error, nothing restored
    damaged = tmp_path / "damaged"
    shutil.copytree(backed_up["location"].path, damaged)
    for pack in (damaged / "data").rglob("*"):
        if pack.is_file():
            raw = bytearray(pack.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            pack.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        restore(location=LocationProfile(kind="filesystem", path=str(damaged)), encryption_key=backed_up["key"],
                cluster=backed_up["conn"], restore_point=backed_up["rp"], namespace_map={src: f"{src[:50]}-bad"})
    assert cluster.get_or_none("v1", "Namespace", f"{src[:50]}-bad") is None


def _damage_volume_data(location: LocationProfile, key: EncryptionKey, rp_id: str, namespace: str,
                        pvc: str) -> str:
    """Flip one byte inside one data chunk of a volume's snapshot (nothing else in the location changes);
    return the path of the damaged file inside the volume."""
    from kubekeep.repo.format import pack_key
    from kubekeep.restorepoint import find_restore_point

    with key.open_repository(location.storage()) as repo:
        _, record = find_restore_point(repo, rp_id)
        volume = next(v for v in record.volumes if (v.namespace, v.pvc) == (namespace, pvc))
        assert volume.snapshot_id
        tree = repo.load_snapshot(repo.resolve_snapshot(volume.snapshot_id))["tree"]
        entry = next(e for e in repo.load_tree(tree) if e.get("type") == "file" and e["content"].get("size"))
        found = repo.index.lookup(next(repo.content_chunks(entry["content"])))
        assert found is not None
        pack = Path(str(location.path)) / pack_key(found.pack_id)
    raw = bytearray(pack.read_bytes())
    raw[found.entry.offset + found.entry.length // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    return str(entry["name"])


def test_failed_volume_data_stops_the_workloads_that_mount_it(backed_up, cluster: Cluster,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    import shutil

    src = backed_up["ns"]
    dst = f"{src[:50]}-vol"
    damaged = tmp_path / "damaged-volume"
    shutil.copytree(backed_up["location"].path, damaged)
    location = LocationProfile(kind="filesystem", path=str(damaged))
    _damage_volume_data(location, backed_up["key"], backed_up["rp"], src, "data-db-0")
    try:
        with pytest.raises(RestoreFailed) as err:
            restore(location=location, encryption_key=backed_up["key"], cluster=backed_up["conn"],
                    restore_point=backed_up["rp"], namespace_map={src: dst},
                    tiers={"tiers": {"Deployment/web": 0, "StatefulSet/db": 1}})
        # nothing that mounts the claim was created, nor anything after its tier
        assert cluster.get_or_none("apps/v1", "StatefulSet", "db", dst) is None
        assert cluster.get_or_none("v1", "Pod", "db-0", dst) is None
        assert cluster.get_or_none(f"{sample_app.CRD_GROUP}/v1", "Coupon", "welcome", dst) is None
        assert f"{dst}/data-db-0" in str(err.value)
        report = err.value.report
        # what came before the stop was created, and the report says so object by object
        assert cluster.get("apps/v1", "Deployment", "web", dst)
        outcomes = {(o["kind"], o["name"]): o for o in report["outcomes"] if o["namespace"] == dst}
        for created in [("Deployment", "web"), ("PersistentVolumeClaim", "data-db-0"),
                        ("PersistentVolumeClaim", "uploads"), ("ConfigMap", "shop-config"), ("Service", "db")]:
            assert outcomes[created]["action"] == "created", created
        db = outcomes[("StatefulSet", "db")]
        assert db["action"] == "not-attempted" and f"{dst}/data-db-0" in db["reason"]
        assert outcomes[("Coupon", "welcome")]["action"] == "not-attempted"
        volumes = {v["pvc"]: v for v in report["volumes"]}
        assert volumes[f"{dst}/data-db-0"]["status"] == "failed"
        assert "authentication" in volumes[f"{dst}/data-db-0"]["error"].lower()
        assert volumes[f"{dst}/uploads"]["status"] == "verified"
        assert f"{dst}/data-db-0" in report["aborted"]
    finally:
        cluster.delete("v1", "Namespace", dst)
