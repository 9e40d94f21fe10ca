"""What a backup takes from a live cluster (its scope), and auto-discovery of the cluster's applications."""

from __future__ import annotations

import base64
import fnmatch
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from kubekeep.cluster import ApiError, ApiResource, Cluster

#: namespaces that belong to the platform, not to an application
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
PART_OF_LABEL = "app.kubernetes.io/part-of"
INSTANCE_LABEL = "app.kubernetes.io/instance"
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"


class ScopeError(ValueError):
    """A backup scope that cannot be resolved (no namespace matches, bad kind filter, ...)."""


@dataclass(frozen=True)
class BackupScope:
    """Which objects a backup takes from a live cluster, resolved against what the API serves
    (namespaces that exist, resource types). Stored with each restore point as ``selection``.
    Not to be confused with :class:`kubekeep.restore.Selector`, which matches manifests already backed up.

    ``namespaces`` are names or shell patterns (``shop-*``); new namespaces
    that match a pattern are protected automatically on the next run.
    Kinds are written ``Kind`` or ``Kind.group`` (``Deployment.apps``), or as
    the plural resource name (``deployments``).
    """

    namespaces: tuple[str, ...] = ()
    label_selector: str | None = None
    include_kinds: tuple[str, ...] = ()
    exclude_kinds: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    include_cluster_dependencies: bool = True
    #: CustomResourceDefinitions to back up even without custom resources: an API group or a CRD name
    #: (shell patterns allowed), on top of those found by Helm release and ``part-of`` label
    include_crds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.namespaces:
            raise ScopeError("a backup scope needs at least one namespace name or pattern")
        for crd in self.include_crds:
            if not crd or " " in crd or "/" in crd:
                raise ScopeError(f"invalid CRD filter {crd!r}: use an API group (argoproj.io) or a CRD name "
                                     "(applications.argoproj.io), shell patterns allowed")
        for kind in (*self.include_kinds, *self.exclude_kinds):
            if not kind or " " in kind or kind.count(".") > 8:
                raise ScopeError(f"invalid kind filter {kind!r}: use Kind, Kind.group or a plural resource name")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupScope:
        known = {"namespaces", "label_selector", "include_kinds", "exclude_kinds", "exclude_namespaces",
                 "include_cluster_dependencies", "include_crds"}
        unknown = set(data) - known
        if unknown:
            raise ScopeError(f"unknown backup scope field(s): {', '.join(sorted(unknown))}")
        args: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("namespaces", "include_kinds", "exclude_kinds", "exclude_namespaces", "include_crds"):
                if isinstance(value, str):
                    value = [value]
                args[key] = tuple(value)
            else:
                args[key] = value
        return cls(**args)

    def to_dict(self) -> dict[str, Any]:
        return {"namespaces": list(self.namespaces), "label_selector": self.label_selector,
                "include_kinds": list(self.include_kinds), "exclude_kinds": list(self.exclude_kinds),
                "exclude_namespaces": list(self.exclude_namespaces),
                "include_cluster_dependencies": self.include_cluster_dependencies,
                "include_crds": list(self.include_crds)}

    def wants(self, resource: ApiResource) -> bool:
        def matches(pattern: str) -> bool:
            p = pattern.lower()
            names = {resource.kind.lower(), resource.plural.lower(),
                     f"{resource.kind}.{resource.group}".lower().rstrip("."),
                     f"{resource.plural}.{resource.group}".lower().rstrip(".")}
            return p in names
        if self.include_kinds and not any(matches(k) for k in self.include_kinds):
            return False
        return not any(matches(k) for k in self.exclude_kinds)

    def wants_crd(self, name: str, group: str) -> str | None:
        """The ``include_crds`` entry that asks for this CRD (None: none does)."""
        for pattern in self.include_crds:
            if fnmatch.fnmatchcase(group, pattern) or fnmatch.fnmatchcase(name, pattern):
                return pattern
        return None

    def resolve_namespaces(self, existing: list[str]) -> list[str]:
        chosen = sorted({ns for ns in existing
                         if any(fnmatch.fnmatchcase(ns, p) for p in self.namespaces)
                         and not any(fnmatch.fnmatchcase(ns, p) for p in self.exclude_namespaces)})
        missing = [p for p in self.namespaces if not any(ch in p for ch in "*?[") and p not in existing]
        if missing:
            raise ScopeError(f"namespace(s) not found: {', '.join(missing)}")
        if not chosen:
            raise ScopeError(f"no namespace matches {list(self.namespaces)}")
        return chosen


@dataclass(frozen=True)
class Application:
    """An application found on the cluster, with the scope that backs it up."""

    name: str
    source: str  # "namespace" | "helm" | "label"
    namespaces: tuple[str, ...]
    label_selector: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def scope(self) -> BackupScope:
        return BackupScope(namespaces=self.namespaces, label_selector=self.label_selector)


def namespace_names(cluster: Cluster) -> list[str]:
    ns_res = cluster.resource_for("v1", "Namespace")
    return [n["metadata"]["name"] for n in cluster.list_pages(ns_res)
            if (n.get("status") or {}).get("phase") != "Terminating"]


def discover_applications(cluster: Cluster, *, include_system: bool = False) -> list[Application]:
    """Namespaces, Helm releases (from their release Secrets) and ``part-of`` label groups."""
    apps: list[Application] = []
    names = [n for n in namespace_names(cluster) if include_system or n not in SYSTEM_NAMESPACES]
    apps += [Application(name=n, source="namespace", namespaces=(n,)) for n in names]

    secrets = cluster.resource_for("v1", "Secret")
    try:
        for secret in cluster.list_pages(secrets, label_selector="owner=helm"):
            if secret.get("type") != "helm.sh/release.v1":
                continue
            labels = secret["metadata"].get("labels", {})
            ns = secret["metadata"]["namespace"]
            if labels.get("status") not in (None, "deployed") or ns not in names:
                continue
            release = labels.get("name", "")
            details = {"version": labels.get("version", "")}
            chart = _helm_chart(secret)
            if chart:
                details["chart"] = chart
            apps.append(Application(name=f"helm:{ns}/{release}", source="helm", namespaces=(ns,),
                                    label_selector=f"{INSTANCE_LABEL}={release}", details=details))
    except ApiError as exc:
        if not exc.forbidden:
            raise

    groups: dict[str, set[str]] = {}
    for resource_kind in (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet")):
        res = cluster.resource_for(*resource_kind)
        try:
            for obj in cluster.list_pages(res, label_selector=PART_OF_LABEL):
                ns = obj["metadata"]["namespace"]
                if ns in names:
                    groups.setdefault(obj["metadata"]["labels"][PART_OF_LABEL], set()).add(ns)
        except ApiError as exc:
            if not exc.forbidden:
                raise
    for part_of, nss in sorted(groups.items()):
        apps.append(Application(name=f"label:{part_of}", source="label", namespaces=tuple(sorted(nss)),
                                label_selector=f"{PART_OF_LABEL}={part_of}"))
    return apps


def _helm_chart(secret: dict[str, Any]) -> str | None:
    """The chart name of a Helm release Secret (base64 of base64 of gzipped JSON); None if unreadable."""
    try:
        raw = base64.b64decode(base64.b64decode(secret.get("data", {}).get("release", "")))
        doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        meta = doc.get("chart", {}).get("metadata", {})
        return f"{meta.get('name')}-{meta.get('version')}"
    except (ValueError, OSError, AttributeError):
        return None
