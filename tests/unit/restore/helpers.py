"""Manifests for restore planning tests: the real-world examples and a served-versions map."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

FIXTURES = Path("/work/shared/fixtures/real-world/kubernetes-examples")

#: what a current (1.30-ish) API server serves, as the cluster layer reports it
MODERN_SERVED: dict[str, dict[str, list[str]]] = {
    "": {k: ["v1"] for k in ("Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace",
                             "PersistentVolume", "PersistentVolumeClaim", "ReplicationController", "Endpoints",
                             "LimitRange", "ResourceQuota", "Event", "PodTemplate")},
    "apps": {k: ["v1"] for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision")},
    "batch": {"Job": ["v1"], "CronJob": ["v1"]},
    "policy": {"PodDisruptionBudget": ["v1"]},
    "networking.k8s.io": {"Ingress": ["v1"], "NetworkPolicy": ["v1"], "IngressClass": ["v1"]},
    "rbac.authorization.k8s.io": {k: ["v1"] for k in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")},
    "storage.k8s.io": {"StorageClass": ["v1"], "CSIDriver": ["v1"]},
    "scheduling.k8s.io": {"PriorityClass": ["v1"]},
    "autoscaling": {"HorizontalPodAutoscaler": ["v2", "v1"]},
    "apiextensions.k8s.io": {"CustomResourceDefinition": ["v1"]},
    "admissionregistration.k8s.io": {"MutatingWebhookConfiguration": ["v1"],
                                     "ValidatingWebhookConfiguration": ["v1"]},
    "discovery.k8s.io": {"EndpointSlice": ["v1"]},
}


def fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*.yaml"))
    if not files:
        pytest.skip(f"real-world fixtures not found in {FIXTURES}")
    return files


def load_fixture_manifests(with_namespaces: bool = True) -> list[dict[str, Any]]:
    """Every document of every example file. Namespaced kinds are put in a namespace per file, as if each
    example were an application read from a cluster (two examples share object names)."""
    cluster_scoped = {"PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding", "PodSecurityPolicy",
                      "Namespace", "CustomResourceDefinition"}
    manifests: list[dict[str, Any]] = []
    for path in fixture_files():
        namespace = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:63].rstrip("-")
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if with_namespaces and doc["kind"] not in cluster_scoped:
                doc["metadata"].setdefault("namespace", namespace)
            manifests.append(doc)
    return manifests


def obj(api_version: str, kind: str, name: str, namespace: str | None = "shop", **fields: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(fields.pop("metadata", {}))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def deployment(name: str, namespace: str = "shop", image: str = "nginx:1.25", **metadata: Any) -> dict[str, Any]:
    return obj("apps/v1", "Deployment", name, namespace, metadata=metadata, spec={
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": name, "image": image}]}},
    })
