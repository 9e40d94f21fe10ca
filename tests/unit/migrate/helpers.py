"""Restore-point manifests and target facts for plan tests (no cluster)."""

from __future__ import annotations

from typing import Any

from kubekeep.migrate import MigrationOptions, MigrationPlan, StorageClassInfo, TargetFacts, evaluate, prepare
from kubekeep.migrate.planner import VolumeData
from kubekeep.migrate.target import ExistingObject, NamespaceInfo, NodeInfo

PROVISIONER = "csi.example.com"

#: what a v1.36 API server serves (the kinds these tests use)
NEW_SERVED: dict[str, dict[str, list[str]]] = {
    "": {k: ["v1"] for k in ("Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace",
                             "PersistentVolume", "PersistentVolumeClaim", "ReplicationController", "Endpoints",
                             "LimitRange", "ResourceQuota", "Node")},
    "apps": {k: ["v1"] for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision")},
    "batch": {"Job": ["v1"], "CronJob": ["v1"]},
    "policy": {"PodDisruptionBudget": ["v1"]},
    "networking.k8s.io": {"Ingress": ["v1"], "IngressClass": ["v1"], "NetworkPolicy": ["v1"]},
    "rbac.authorization.k8s.io": {k: ["v1"] for k in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")},
    "storage.k8s.io": {"StorageClass": ["v1"], "CSIDriver": ["v1"], "VolumeAttributesClass": ["v1"]},
    "apiextensions.k8s.io": {"CustomResourceDefinition": ["v1"]},
    "admissionregistration.k8s.io": {"MutatingAdmissionPolicy": ["v1"], "ValidatingWebhookConfiguration": ["v1"]},
    "resource.k8s.io": {k: ["v1"] for k in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate",
                                            "ResourceSlice")},
}


def old_served(*, betas: bool = True) -> dict[str, dict[str, list[str]]]:
    """What v1.33.13 serves (with OLDER_BETA_APIS: the betas of what v1.36 serves as GA)."""
    served = {g: {k: list(v) for k, v in kinds.items()} for g, kinds in NEW_SERVED.items()}
    del served["admissionregistration.k8s.io"]["MutatingAdmissionPolicy"]
    if betas:
        served["storage.k8s.io"]["VolumeAttributesClass"] = ["v1beta1"]
        served["resource.k8s.io"] = {k: ["v1beta2", "v1beta1"] for k in served["resource.k8s.io"]}
    else:
        del served["storage.k8s.io"]["VolumeAttributesClass"]
        del served["resource.k8s.io"]
    return served


def obj(api_version: str, kind: str, name: str, namespace: str | None = "shop", **fields: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(fields.pop("metadata", {}))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def pvc(name: str, size: str = "1Gi", storage_class: str | None = "fast", namespace: str = "shop",
        **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    return obj("v1", "PersistentVolumeClaim", name, namespace, spec=body)


def storage_class(name: str, provisioner: str = PROVISIONER, *, default: bool = False,
                  parameters: dict[str, str] | None = None) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return obj("storage.k8s.io/v1", "StorageClass", name, None, provisioner=provisioner,
               parameters=parameters or {}, metadata={"annotations": annotations})


def deployment(name: str = "web", namespace: str = "shop", replicas: int = 1, **pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "c", "image": "registry.example.com/web:1"}], **pod_spec}
    return obj("apps/v1", "Deployment", name, namespace, spec={
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": spec}})


def facts(*, served: dict[str, dict[str, list[str]]] | None = None, classes: list[dict[str, Any]] | None = None,
          nodes: list[NodeInfo] | None = None, **more: Any) -> TargetFacts:
    found = TargetFacts(name="target", version="v1.33.13", served=served if served is not None else old_served())
    found.storage_classes = {c.name: c for c in map(StorageClassInfo.from_object, classes or [])}
    found.nodes = nodes if nodes is not None else [NodeInfo("node-0", {"kubernetes.io/hostname": "node-0"})]
    for key, value in more.items():
        setattr(found, key, value)
    return found


def existing(*refs: tuple[str, str, str, str], migration: str | None = None,
             crd_versions: tuple[str, ...] = ()) -> dict[tuple[str, str, str, str], ExistingObject]:
    return {ref: ExistingObject(ref, "1", migration, crd_versions) for ref in refs}


def plan(manifests: list[dict[str, Any]], target: TargetFacts, options: MigrationOptions | None = None,
         volumes: list[VolumeData] | None = None) -> MigrationPlan:
    prepared = prepare(manifests, target.served, options, restore_point_id="rp-1", source_cluster="source",
                       volumes=volumes or ())
    return evaluate(prepared, target)


def items(result: MigrationPlan, topic: str, severity: str | None = None) -> list[Any]:
    return [i for i in result.items if i.topic.value == topic and (severity is None or i.severity.value == severity)]


__all__ = ["NamespaceInfo"]
