"""What the target cluster has, read once before planning: :class:`TargetFacts`.

The plan's checks are pure functions of these facts and the restore point's
manifests; this module is the only part of the planner that reads a cluster
(through :mod:`kubekeep.cluster`), and it only reads. Objects are listed per
kind and namespace (paged), and only what the checks need is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubekeep.cluster import ApiError, ApiResource, Cluster
from kubekeep.manifest import dig
from kubekeep.restore.apply import served_by_cluster

#: set on what a migration creates on the target (namespaces, claims of the pre-seed): its migration id
MIGRATION_ANNOTATION = "kubekeep.io/migration"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
DEFAULT_INGRESS_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"

#: (group, kind, namespace, name)
ObjectKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class StorageClassInfo:
    name: str
    provisioner: str
    default: bool = False
    parameters: Mapping[str, str] = field(default_factory=dict)
    binding_mode: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> StorageClassInfo:
        annotations = dig(obj, "metadata", "annotations") or {}
        return cls(name=str(dig(obj, "metadata", "name")), provisioner=str(obj.get("provisioner") or ""),
                   default=any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS),
                   parameters={str(k): str(v) for k, v in (obj.get("parameters") or {}).items()},
                   binding_mode=obj.get("volumeBindingMode"))


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.key}{'=' + self.value if self.value else ''}:{self.effect}"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NodeInfo:
        taints = tuple(Taint(str(t.get("key", "")), str(t.get("effect", "")), str(t.get("value") or ""))
                       for t in dig(obj, "spec", "taints") or () if isinstance(t, dict))
        return cls(name=str(dig(obj, "metadata", "name")), labels=dict(dig(obj, "metadata", "labels") or {}),
                   taints=taints, unschedulable=bool(dig(obj, "spec", "unschedulable")))


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    phase: str = "Active"
    migration: str | None = None


@dataclass(frozen=True)
class QuotaInfo:
    namespace: str
    name: str
    hard: Mapping[str, str] = field(default_factory=dict)
    used: Mapping[str, str] = field(default_factory=dict)
    #: a quota with scopes or a scope selector counts only some objects; claims are not among them
    scoped: bool = False
    #: from the restore point (created by the migration; nothing is used yet)
    from_restore_point: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], *, from_restore_point: bool = False) -> QuotaInfo:
        spec = obj.get("spec") or {}
        return cls(namespace=str(dig(obj, "metadata", "namespace") or ""), name=str(dig(obj, "metadata", "name")),
                   hard={str(k): str(v) for k, v in (spec.get("hard") or {}).items()},
                   used={} if from_restore_point else
                   {str(k): str(v) for k, v in (dig(obj, "status", "used") or {}).items()},
                   scoped=bool(spec.get("scopes") or spec.get("scopeSelector")),
                   from_restore_point=from_restore_point)


@dataclass(frozen=True)
class LimitRangeInfo:
    namespace: str
    name: str
    #: bounds of one claim's storage request (quantities), None when the limit range sets none
    pvc_min: str | None = None
    pvc_max: str | None = None
    from_restore_point: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], *, from_restore_point: bool = False) -> LimitRangeInfo | None:
        low = high = None
        for limit in dig(obj, "spec", "limits") or ():
            if isinstance(limit, dict) and limit.get("type") == "PersistentVolumeClaim":
                low = dig(limit, "min", "storage") or low
                high = dig(limit, "max", "storage") or high
        if low is None and high is None:
            return None
        return cls(str(dig(obj, "metadata", "namespace") or ""), str(dig(obj, "metadata", "name")),
                   low, high, from_restore_point)


@dataclass(frozen=True)
class IngressClassInfo:
    name: str
    controller: str = ""
    default: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> IngressClassInfo:
        annotations = dig(obj, "metadata", "annotations") or {}
        return cls(str(dig(obj, "metadata", "name")), str(dig(obj, "spec", "controller") or ""),
                   annotations.get(DEFAULT_INGRESS_CLASS_ANNOTATION) == "true")


@dataclass(frozen=True)
class ExistingObject:
    """An object of the plan that already exists on the target."""

    key: ObjectKey
    resource_version: str = ""
    #: the migration id of a migration that made it (the pre-seed), else None
    migration: str | None = None
    #: the versions a CustomResourceDefinition serves (empty for other kinds)
    crd_versions: tuple[str, ...] = ()


@dataclass
class TargetFacts:
    name: str
    version: str = ""
    #: group -> kind -> served versions, preferred first (kubekeep.restore's ServedVersions)
    served: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    storage_classes: dict[str, StorageClassInfo] = field(default_factory=dict)
    csi_drivers: frozenset[str] = frozenset()
    nodes: list[NodeInfo] = field(default_factory=list)
    namespaces: dict[str, NamespaceInfo] = field(default_factory=dict)
    quotas: list[QuotaInfo] = field(default_factory=list)
    limit_ranges: list[LimitRangeInfo] = field(default_factory=list)
    ingress_classes: dict[str, IngressClassInfo] = field(default_factory=dict)
    existing: dict[ObjectKey, ExistingObject] = field(default_factory=dict)

    def serves(self, group: str, kind: str) -> bool:
        return bool(self.served.get(group, {}).get(kind))

    def default_storage_class(self) -> StorageClassInfo | None:
        defaults = sorted((c for c in self.storage_classes.values() if c.default), key=lambda c: c.name)
        return defaults[0] if defaults else None

    def default_ingress_class(self) -> IngressClassInfo | None:
        defaults = sorted((c for c in self.ingress_classes.values() if c.default), key=lambda c: c.name)
        return defaults[0] if defaults else None

    def knows_provisioner(self, provisioner: str) -> bool:
        """Whether a class of the target or an installed CSI driver uses ``provisioner``."""
        return provisioner in self.csi_drivers or any(c.provisioner == provisioner
                                                      for c in self.storage_classes.values())


# ---------------------------------------------------------------- reading a cluster


def _resource(cluster: Cluster, group: str, kind: str) -> ApiResource | None:
    """The target's preferred resource for ``group``/``kind`` (None when it is not served)."""
    found = [r for r in cluster.resources() if r.group == group and r.kind == kind and "list" in r.verbs]
    found.sort(key=lambda r: not r.preferred)
    return found[0] if found else None


def _list(cluster: Cluster, group: str, kind: str, namespace: str | None = None) -> Iterable[dict[str, Any]]:
    resource = _resource(cluster, group, kind)
    if resource is None:
        return ()
    return cluster.list_pages(resource, namespace=namespace if resource.namespaced else None)


def read_storage_classes(cluster: Cluster) -> dict[str, StorageClassInfo]:
    """The cluster's StorageClasses by name (also used for the source cluster)."""
    return {c.name: c for c in map(StorageClassInfo.from_object, _list(cluster, "storage.k8s.io", "StorageClass"))}


def collect_target_facts(
    cluster: Cluster,
    *,
    namespaces: Collection[str],
    objects: Mapping[tuple[str, str], Collection[tuple[str, str]]] | None = None,
    served: Mapping[str, Mapping[str, list[str]]] | None = None,
) -> TargetFacts:
    """Read what the plan's checks need from the target.

    ``namespaces``: the namespaces the restore writes into; ``objects``: for each
    (group, kind) of the plan, the (namespace, name) pairs it would create (namespace
    "" for cluster-scoped objects), looked up to find those that already exist.
    ``served``: what the target serves, when the caller has just discovered it.
    """
    version = str(cluster.server_version().get("gitVersion", ""))
    if served is None:
        served = served_by_cluster(cluster, refresh=True)
    facts = TargetFacts(name=cluster.name, version=version,
                        served={g: {k: list(v) for k, v in kinds.items()} for g, kinds in served.items()})
    facts.storage_classes = read_storage_classes(cluster)
    facts.csi_drivers = frozenset(str(dig(d, "metadata", "name"))
                                  for d in _list(cluster, "storage.k8s.io", "CSIDriver"))
    facts.nodes = [NodeInfo.from_object(n) for n in _list(cluster, "", "Node")]
    facts.ingress_classes = {c.name: c for c in map(IngressClassInfo.from_object,
                                                    _list(cluster, "networking.k8s.io", "IngressClass"))}
    for ns in sorted(set(namespaces)):
        obj = cluster.get_or_none("v1", "Namespace", ns)
        if obj is None:
            continue
        facts.namespaces[ns] = NamespaceInfo(ns, str(dig(obj, "status", "phase") or "Active"),
                                             (dig(obj, "metadata", "annotations") or {}).get(MIGRATION_ANNOTATION))
        facts.quotas += [QuotaInfo.from_object(q) for q in _list(cluster, "", "ResourceQuota", ns)]
        facts.limit_ranges += [lr for lr in map(LimitRangeInfo.from_object, _list(cluster, "", "LimitRange", ns))
                               if lr is not None]
    for (group, kind), wanted in (objects or {}).items():
        _existing(cluster, facts, group, kind, wanted)
    return facts


def _existing(cluster: Cluster, facts: TargetFacts, group: str, kind: str,
              wanted: Collection[tuple[str, str]]) -> None:
    resource = _resource(cluster, group, kind)
    if resource is None or not wanted:
        return
    wanted_set = set(wanted)
    scopes = sorted({ns for ns, _ in wanted_set if ns in facts.namespaces}) if resource.namespaced else [None]
    for ns in scopes:
        try:
            for obj in cluster.list_pages(resource, namespace=ns):
                name = str(dig(obj, "metadata", "name"))
                namespace = str(dig(obj, "metadata", "namespace") or "")
                if (namespace, name) not in wanted_set:
                    continue
                versions: tuple[str, ...] = ()
                if (group, kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
                    versions = tuple(str(v.get("name")) for v in dig(obj, "spec", "versions") or ()
                                     if isinstance(v, dict) and v.get("served", True))
                key = (group, kind, namespace, name)
                facts.existing[key] = ExistingObject(
                    key, str(dig(obj, "metadata", "resourceVersion") or ""),
                    (dig(obj, "metadata", "annotations") or {}).get(MIGRATION_ANNOTATION), versions)
        except ApiError as exc:
            if exc.status not in (403, 404, 405):
                raise
