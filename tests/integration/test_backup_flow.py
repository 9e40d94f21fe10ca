"""The backup flow end to end on the real test bed: control plane, filesystem and SeaweedFS, Prefect API."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import BackupFailed, backup
from kubekeep.catalog import latest_restore_point, restore_points_containing
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import find_restore_point, read_manifests, rebuild_repository_catalog
from kubekeep.testbed import sample_app

PASSPHRASE = "correct horse battery staple"


def _tree_digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def shop(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    sample_app.create(cluster, namespace)
    return {pvc: sample_app.fill_volume(sample_app.volume_path(cluster, namespace, pvc), seed=f"{namespace}/{pvc}")
            for pvc in ("uploads", "data-db-0")}


def _conn(test_cluster) -> ClusterConnection:  # type: ignore[no-untyped-def]
    return ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))


def _key() -> EncryptionKey:
    return EncryptionKey(passphrase=PASSPHRASE, cheap_kdf=True)


def _check_restore_point(location: LocationProfile, rp_id: str, namespace: str, shop: dict[str, dict[str, str]],
                         tmp_path: Path) -> None:
    storage = location.storage()
    with _key().catalog(location, cache_dir=tmp_path / "catalog-cache") as catalog:
        point = latest_restore_point(catalog, "shop")
    assert point is not None and point.id == rp_id and point.status == "succeeded"
    assert point.namespaces == (namespace,) and point.volume_count == 2 and point.object_count > 20

    with _key().open_repository(location.storage()) as repo:
        rp_snapshot, record = find_restore_point(repo, rp_id)
        assert rp_snapshot == point.snapshot_id
        stored = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                  for o, _line in read_manifests(repo, record.manifest_snapshot)}
        for want in [("Deployment", namespace, "web"), ("StatefulSet", namespace, "db"),
                     ("Service", namespace, "web-public"), ("Secret", namespace, "db-credentials"),
                     ("ConfigMap", namespace, "shop-config"), ("PersistentVolumeClaim", namespace, "uploads"),
                     ("Coupon", namespace, "welcome"), ("ServiceAccount", namespace, "shop"),
                     ("Role", namespace, "shop-reader"), ("RoleBinding", namespace, "shop-reader"),
                     ("ReplicaSet", namespace, None), ("Namespace", None, namespace),
                     ("CustomResourceDefinition", None, f"coupons.{sample_app.CRD_GROUP}"),
                     ("ClusterRoleBinding", None, f"{namespace}-shop-view"), ("ClusterRole", None, "view"),
                     ("StorageClass", None, "kubekeep-hostpath")]:
            if want[2] is None:
                assert any(k == want[0] and ns == want[1] for k, ns, _ in stored), want
            else:
                assert want in stored, want
        assert sum(1 for k, _ns, _n in stored if k == "PersistentVolume") == 2
        assert sum(1 for k, ns, _n in stored if k == "Pod" and ns == namespace) == 3

        for vol in record.volumes:
            assert vol.error is None and vol.method == "direct" and vol.snapshot_id
            target = tmp_path / "restored" / vol.pvc
            repo.restore(vol.snapshot_id, target)
            assert _tree_digests(target) == shop[vol.pvc]
            assert (target / "latest").is_symlink() and (target / "empty").is_dir()

    rows = restore_points_containing(catalog, kind="Secret", namespace=namespace, name="db-credentials")
    assert [r.restore_point_id for r in rows] == [rp_id]

    # no Secret value (plain or base64), and not even the names of the app's objects (the catalog is
    # encrypted too), anywhere in the location's contents
    needles = [sample_app.SECRET_VALUE.encode(), base64.b64encode(sample_app.SECRET_VALUE.encode()),
               b"db-credentials", b"shop-config", namespace.encode()]
    for info in storage.list(""):
        data = storage.get(info.key)
        assert not any(n in data for n in needles), f"plaintext found in {info.key}"


def test_backup_to_filesystem(prefect_api: str, test_cluster, cluster: Cluster, namespace: str,  # type: ignore[no-untyped-def]
                              shop: dict[str, dict[str, str]], tmp_path: Path) -> None:
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "location"))
    rp_id = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(),
                   cluster=_conn(test_cluster), init=True)
    _check_restore_point(location, rp_id, namespace, shop, tmp_path)

    # incremental: a second run stores little new data for unchanged volumes
    rp2 = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(),
                 cluster=_conn(test_cluster))
    with _key().catalog(location, cache_dir=tmp_path / "catalog-cache") as catalog:
        point2 = latest_restore_point(catalog, "shop")
    assert point2 is not None and point2.id == rp2 != rp_id
    assert point2.stored_bytes < 4096  # unchanged files were skipped, nothing new stored

    # the catalog is an index: lose it entirely, rebuild it from the repository, same answers
    storage = location.storage()
    for info in list(storage.list("catalog/")):
        storage.delete(info.key)
    with _key().open_repository(storage) as repo:
        result = rebuild_repository_catalog(repo)
    assert result.points_written == 2
    with _key().catalog(location, cache_dir=tmp_path / "rebuilt-cache") as rebuilt:
        latest = latest_restore_point(rebuilt, "shop")
        assert latest is not None and latest.id == rp2 and latest.object_count == point2.object_count
        assert sorted(r.restore_point_id for r in restore_points_containing(
            rebuilt, kind="Secret", namespace=namespace, name="db-credentials")) == sorted([rp_id, rp2])


def test_backup_to_s3_with_object_lock(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                       namespace: str, shop: dict[str, dict[str, str]], tmp_path: Path,
                                       seaweedfs) -> None:
    location = LocationProfile(kind="s3", bucket=seaweedfs.locked_bucket, prefix=f"{namespace}/",
                               endpoint_url=seaweedfs.endpoint_url,
                               region=seaweedfs.region, access_key_id=seaweedfs.access_key,
                               secret_access_key=seaweedfs.secret_key, object_lock_mode="COMPLIANCE",
                               object_lock_days=1)
    rp_id = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(),
                   cluster=_conn(test_cluster), init=True)
    _check_restore_point(location, rp_id, namespace, shop, tmp_path)
    storage = location.storage()
    locked = [i.key for i in storage.list("") if not i.key.startswith("catalog/")
              and not i.key.startswith("locks/") and not i.key.startswith("index/")]
    assert any(k.startswith("data/") for k in locked) and any(k.startswith("snapshots/") for k in locked)
    for key in locked:
        info = storage.stat(key)
        assert info.retain_until is not None, f"{key} has no retention"


def test_forbidden_type_is_reported_and_fails_the_run(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                                      namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": namespace}})
    kubeconfig = _restricted_kubeconfig(cluster, test_cluster, namespace, tmp_path)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "location"))
    with pytest.raises(BackupFailed) as err:
        backup(app="restricted", namespaces=[namespace], location=location, encryption_key=_key(),
               cluster=ClusterConnection(name="testbed", kubeconfig_path=str(kubeconfig)), init=True)
    assert "secrets" in str(err.value) and "403" in str(err.value)
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        point = latest_restore_point(catalog, "restricted", statuses=("partially_failed",))
        assert point is not None and "secrets" in (point.status_reason or "")
        assert restore_points_containing(catalog, kind="ConfigMap", namespace=namespace, name="cfg")


def _restricted_kubeconfig(cluster: Cluster, test_cluster, namespace: str, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A ServiceAccount that may read everything in the namespace except Secrets, and list namespaces."""
    import json

    sa = "backup-reader"
    cluster.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}})
    cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "no-secrets", "namespace": namespace},
                    "rules": [{"apiGroups": ["", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io",
                                             "discovery.k8s.io", "policy", "autoscaling", "storage.k8s.io",
                                             "coordination.k8s.io", "events.k8s.io", "resource.k8s.io"],
                               "resources": ["configmaps", "pods", "services", "serviceaccounts", "endpoints",
                                             "persistentvolumeclaims", "deployments", "replicasets", "statefulsets",
                                             "daemonsets", "controllerrevisions", "jobs", "cronjobs", "roles",
                                             "rolebindings", "ingresses", "networkpolicies", "endpointslices",
                                             "poddisruptionbudgets", "horizontalpodautoscalers", "podtemplates",
                                             "replicationcontrollers", "limitranges", "resourcequotas",
                                             "csistoragecapacities", "resourceclaims", "resourceclaimtemplates"],
                               "verbs": ["get", "list"]}]})
    cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "no-secrets", "namespace": namespace},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-secrets"},
                    "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]})
    cr_name = f"{namespace}-ns-reader"
    cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": cr_name},
                    "rules": [{"apiGroups": ["", "apiextensions.k8s.io", "rbac.authorization.k8s.io"],
                               "resources": ["namespaces", "customresourcedefinitions", "clusterrolebindings"],
                               "verbs": ["get", "list"]}]})
    cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": cr_name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr_name},
                    "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]})
    token = cluster.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
                            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                  "spec": {"expirationSeconds": 3600}})["status"]["token"]
    admin = json.loads(Path(test_cluster.kubeconfig).read_text())
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "restricted",
           "clusters": admin["clusters"], "users": [{"name": sa, "user": {"token": token}}],
           "contexts": [{"name": "restricted", "context": {"cluster": admin["clusters"][0]["name"], "user": sa}}]}
    path = tmp_path / "restricted.kubeconfig"
    path.write_text(json.dumps(cfg))
    return path


def test_a_deferred_publish_leaves_catalog_signals_and_index_to_the_caller(  # type: ignore[no-untyped-def]
        prefect_api: str, test_cluster, namespace: str, shop: dict[str, dict[str, str]], tmp_path: Path) -> None:
    """A migration's final backup returns as soon as its restore point is written and locked; the catalog
    rows, the signals score, the index and the artifacts come later, from publish_backup (off the downtime
    path)."""
    from prefect import flow

    from flows.backup import publish_backup
    from tasks.parameters import CopyAfterBackup

    location = LocationProfile(kind="filesystem", path=str(tmp_path / "location"))
    with pytest.raises(ValueError, match="defer_publish"):
        backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(),
               cluster=_conn(test_cluster), init=True, defer_publish=True,
               copy_to=CopyAfterBackup(destination="dr", init=True))
    rp_id = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(),
                   cluster=_conn(test_cluster), init=True, defer_publish=True)
    with _key().open_repository(location.storage()) as repo:
        _, record = find_restore_point(repo, rp_id)  # written: restorable from here on
    assert record.status == "succeeded"
    with _key().catalog(location, cache_dir=tmp_path / "cache-1") as catalog:
        assert latest_restore_point(catalog, "shop") is None

    @flow(name="finish-deferred-backup")
    def finish() -> str | None:
        return publish_backup(location, _key(), rp_id)

    assert finish() is None  # published and scored
    with _key().catalog(location, cache_dir=tmp_path / "cache-2") as catalog:
        point = latest_restore_point(catalog, "shop")
        assert point is not None and point.id == rp_id
        from kubekeep.catalog import list_signals
        assert [s.restore_point_id for s in list_signals(catalog, restore_point_ids=[rp_id], volumes=False)] == [rp_id]
