"""Plain-dict Kubernetes manifests and how to name them: shared by backup, restore and every later step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


class ManifestError(ValueError):
    """A manifest lacks what every Kubernetes object has (apiVersion, kind, metadata.name)."""

#: kinds whose objects (or templates) hold a pod spec, and where
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: the old groups the same workload kinds were served from
LEGACY_WORKLOAD_GROUPS = {"extensions": "apps"}

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` -> ``("apps", "v1")``; ``"v1"`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True, order=True)
class ObjectRef:
    group: str
    kind: str
    namespace: str
    name: str
    version: str = ""

    @property
    def group_kind(self) -> str:
        """``Deployment.apps``, or ``ConfigMap`` for the core group."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.group_kind} {where}"


def ref_of(manifest: Manifest) -> ObjectRef:
    api_version = manifest.get("apiVersion")
    kind = manifest.get("kind")
    metadata = manifest.get("metadata")
    if not isinstance(api_version, str) or not api_version:
        raise ManifestError(f"manifest without apiVersion: {_describe(manifest)}")
    if not isinstance(kind, str) or not kind:
        raise ManifestError(f"manifest without kind: {_describe(manifest)}")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ManifestError(f"{kind} without metadata.name: {_describe(manifest)}")
    group, version = split_api_version(api_version)
    return ObjectRef(group, kind, str(metadata.get("namespace") or ""), metadata["name"], version)


def _describe(manifest: Any) -> str:
    text = repr(manifest)
    return text if len(text) <= 120 else text[:117] + "..."


def metadata_of(manifest: Manifest) -> dict[str, Any]:
    metadata = manifest.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise ManifestError(f"metadata is not a mapping: {_describe(manifest)}")
    return metadata


def annotations_of(manifest: Manifest) -> dict[str, str]:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return annotations if isinstance(annotations, dict) else {}


def labels_of(manifest: Manifest) -> dict[str, str]:
    labels = manifest.get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def dig(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...`` or None when any step is missing or not a mapping."""
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def pod_spec_of(manifest: Manifest) -> dict[str, Any] | None:
    """The pod spec of a Pod or of a workload's pod template (None for other kinds)."""
    group, _ = split_api_version(str(manifest.get("apiVersion", "")))
    group = LEGACY_WORKLOAD_GROUPS.get(group, group)
    path = POD_SPEC_PATHS.get((group, str(manifest.get("kind", ""))))
    if path is None:
        return None
    spec = dig(manifest, *path)
    return spec if isinstance(spec, dict) else None


def containers_of(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Init, regular and ephemeral containers of a pod spec."""
    for list_name in CONTAINER_LISTS:
        for container in pod_spec.get(list_name) or ():
            if isinstance(container, dict):
                yield container


def claims_mounted(manifest: Manifest) -> tuple[set[str], list[re.Pattern[str]]]:
    """Names of the PersistentVolumeClaims (in the object's namespace) that its pods mount: the
    ``persistentVolumeClaim`` volumes of a Pod or pod template, and for a StatefulSet the patterns of the
    claims its ``volumeClaimTemplates`` stand for (``<template>-<statefulset>-<ordinal>``)."""
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    spec = pod_spec_of(manifest)
    if spec is None:
        return names, patterns
    for volume in spec.get("volumes") or ():
        claim = dig(volume, "persistentVolumeClaim", "claimName")
        if isinstance(claim, str) and claim:
            names.add(claim)
    if manifest.get("kind") == "StatefulSet":
        sts = str(dig(manifest, "metadata", "name") or "")
        for template in dig(manifest, "spec", "volumeClaimTemplates") or ():
            name = dig(template, "metadata", "name")
            if isinstance(name, str) and name and sts:
                patterns.append(re.compile(rf"{re.escape(name)}-{re.escape(sts)}-[0-9]+"))
    return names, patterns


def mounts_claim(manifest: Manifest, namespace: str, claim: str) -> bool:
    """Whether pods of ``manifest`` (a Pod or a workload) mount the claim ``namespace/claim``."""
    if str(dig(manifest, "metadata", "namespace") or "") != namespace:
        return False
    names, patterns = claims_mounted(manifest)
    return claim in names or any(p.fullmatch(claim) for p in patterns)
