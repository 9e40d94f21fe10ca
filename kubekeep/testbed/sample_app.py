"""A realistic sample application for demos and end-to-end tests.

One namespace holding a Deployment (-> ReplicaSet -> Pods), a StatefulSet with
a volumeClaimTemplate, a ClusterIP, a headless and a NodePort Service, a
ConfigMap, a Secret, a standalone PVC with real files, a CRD with custom
resources, a ServiceAccount with a Role/RoleBinding and a ClusterRoleBinding.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from kubekeep.cluster import ApiError, Cluster, has_condition

from .crds import crd_manifest

CRD_GROUP = "demo.kubekeep.io"
SECRET_VALUE = "s3cr3t-pa55w0rd-do-not-leak"  # tests scan the backup location for it


def manifests(namespace: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "shop"}
    pod_spec = {"serviceAccountName": "shop",
                "containers": [{"name": "web", "image": "registry.example.com/shop/web:1.4",
                                "envFrom": [{"configMapRef": {"name": "shop-config"}}]}]}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop", "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "shop-reader", "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "shop-reader", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shop-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "shop", "namespace": namespace}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{namespace}-shop-view"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
         "subjects": [{"kind": "ServiceAccount", "name": "shop", "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config", "namespace": namespace,
                                                              "labels": labels},
         "data": {"LOG_LEVEL": "info", "DB_HOST": "db"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": namespace},
         "type": "Opaque", "stringData": {"password": SECRET_VALUE}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "uploads", "namespace": namespace, "labels": labels},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": namespace},
         "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-public", "namespace": namespace},
         "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "db", "namespace": namespace, "labels": labels},
         "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                      "containers": [{"name": "postgres", "image": "docker.io/library/postgres:16"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": namespace, "labels": labels},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}},
        {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Coupon",
         "metadata": {"name": "welcome", "namespace": namespace, "labels": {"tier": "gold"}},
         "spec": {"percent": 10}},
        {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Coupon",
         "metadata": {"name": "spring", "namespace": namespace, "labels": {"tier": "silver"}},
         "spec": {"percent": 5}},
    ]


def crd() -> dict[str, Any]:
    return crd_manifest(CRD_GROUP, "Coupon", spec_properties={"percent": {"type": "integer"}})


def create(cluster: Cluster, namespace: str, *, timeout: float = 120) -> list[dict[str, Any]]:
    """Create the app in ``namespace`` (created if missing); wait until it is Ready."""
    try:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except ApiError as exc:
        if exc.status != 409:
            raise
    try:
        cluster.create(crd())
    except ApiError as exc:
        if exc.status != 409:
            raise
    cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"coupons.{CRD_GROUP}",
                     lambda o: has_condition(o, "Established"), timeout=30, what="CRD Established")
    cluster.resources(refresh=True)
    created = [cluster.create(m) for m in manifests(namespace)]
    cluster.wait_for("apps/v1", "Deployment", "web", lambda o: o is not None and (o.get("status") or {}).get(
        "availableReplicas") == 2, namespace=namespace, timeout=timeout, what="Deployment available")
    cluster.wait_for("apps/v1", "StatefulSet", "db", lambda o: o is not None and (o.get("status") or {}).get(
        "readyReplicas") == 1, namespace=namespace, timeout=timeout, what="StatefulSet ready")
    for pvc in ("uploads", "data-db-0"):
        cluster.wait_for("v1", "PersistentVolumeClaim", pvc,
                         lambda o: o is not None and (o.get("status") or {}).get("phase") == "Bound",
                         namespace=namespace, timeout=timeout, what="PVC Bound")
    return created


def fill_volume(path: Path, *, seed: str, files: int = 20, size: int = 64 * 1024) -> dict[str, str]:
    """Write deterministic files (and a subdirectory, a symlink, an empty dir) under ``path``.

    Returns relative path -> sha256 of every regular file written.
    """
    digests: dict[str, str] = {}
    (path / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    (path / "empty").mkdir(exist_ok=True)
    for i in range(files):
        rel = f"sub/file-{i:03d}.bin" if i % 3 else f"file-{i:03d}.txt"
        block = hashlib.sha256(f"{seed}/{i}".encode()).digest()
        data = (block * (size // len(block) + 1))[: size + i]
        (path / rel).write_bytes(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    (path / "sub" / "deeper" / "notes.md").write_text(f"# {seed}\n")
    digests["sub/deeper/notes.md"] = hashlib.sha256(f"# {seed}\n".encode()).hexdigest()
    link = path / "latest"
    if not link.is_symlink():
        os.symlink("sub/deeper/notes.md", link)
    return digests


def volume_path(cluster: Cluster, namespace: str, pvc: str) -> Path:
    """The hostPath directory behind a PVC (test bed volumes are hostPath PVs)."""
    claim = cluster.get("v1", "PersistentVolumeClaim", pvc, namespace)
    pv = cluster.get("v1", "PersistentVolume", claim["spec"]["volumeName"])
    host = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path")
    if not host:
        raise ValueError(f"PVC {namespace}/{pvc} is not backed by a hostPath or local volume")
    return Path(host)
