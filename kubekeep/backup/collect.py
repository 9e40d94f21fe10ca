"""Collect the objects of a backup scope, page by page, with the cluster-scoped objects they need.

Objects stream out as they are listed (memory stays bounded by one page plus
the small set of references needed to find dependencies). Failing resource
types are reported per type and do not stop the collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubekeep.cluster import ApiError, ApiResource, Cluster
from kubekeep.cluster.collect import listable
from kubekeep.manifest import POD_SPEC_PATHS, dig

from .scope import HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE, PART_OF_LABEL, BackupScope, namespace_names

JSON = dict[str, Any]

#: list cluster-wide (one call per type) instead of once per namespace above this many namespaces
CLUSTER_WIDE_LIST_THRESHOLD = 3



@dataclass(frozen=True)
class TypeFailure:
    """A resource type that could not be listed (reported, not fatal)."""

    resource: str
    namespace: str | None
    status: int
    reason: str
    message: str

    def describe(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.resource}{where}: {self.status} {self.reason}: {self.message}"


@dataclass(frozen=True)
class PvcRef:
    namespace: str
    name: str
    uid: str
    volume_name: str | None
    storage_class: str | None
    size: str | None


@dataclass
class CollectReport:
    namespaces: list[str] = field(default_factory=list)
    kind_counts: dict[str, int] = field(default_factory=dict)
    type_errors: list[TypeFailure] = field(default_factory=list)
    pvcs: list[PvcRef] = field(default_factory=list)
    objects: int = 0
    #: CustomResourceDefinitions in the backup -> why each was included
    crds: dict[str, list[str]] = field(default_factory=dict)

    def count(self, obj: JSON) -> None:
        api_version = obj.get("apiVersion", "")
        group = api_version.split("/")[0] if "/" in api_version else ""
        key = f"{obj.get('kind')}.{group}" if group else str(obj.get("kind"))
        self.kind_counts[key] = self.kind_counts.get(key, 0) + 1
        self.objects += 1


@dataclass(frozen=True)
class _Crd:
    name: str
    group: str
    kind: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass
class _Dependencies:
    #: CRD name -> reasons it belongs to the backup
    crds: dict[str, list[str]] = field(default_factory=dict)
    #: (namespace, name) of the Helm releases the selected objects belong to
    helm_releases: set[tuple[str, str]] = field(default_factory=set)
    #: app.kubernetes.io/part-of values of the selected objects
    part_of: set[str] = field(default_factory=set)
    pvs: set[str] = field(default_factory=set)
    storage_classes: set[str] = field(default_factory=set)
    service_accounts: set[tuple[str, str]] = field(default_factory=set)
    cluster_roles: set[str] = field(default_factory=set)
    priority_classes: set[str] = field(default_factory=set)
    ingress_classes: set[str] = field(default_factory=set)


def collect(cluster: Cluster, scope: BackupScope, report: CollectReport, *,
            page_size: int = 500) -> Iterator[JSON]:
    """Yield every selected object (as served), then the cluster-scoped objects they depend on."""
    namespaces = scope.resolve_namespaces(namespace_names(cluster))
    report.namespaces = namespaces
    wanted_ns = set(namespaces)
    resources = cluster.preferred_resources(refresh=True)
    installed_crds = _crds(cluster, report)
    crd_plurals = {(c.group, c.kind): c.name for c in installed_crds}
    deps = _Dependencies()

    # The Namespace objects themselves (labels, annotations) are part of the application.
    for ns in namespaces:
        obj = cluster.get_or_none("v1", "Namespace", ns)
        if obj is not None:
            report.count(obj)
            yield obj

    for resource in listable(resources, namespaced=True):
        if not scope.wants(resource):
            continue
        for obj in _list_type(cluster, resource, namespaces, wanted_ns, scope.label_selector, page_size,
                              report):
            _note_dependencies(obj, resource, deps, crd_plurals)
            if resource.group == "" and resource.kind == "PersistentVolumeClaim":
                report.pvcs.append(_pvc_ref(obj))
            report.count(obj)
            yield obj

    if scope.include_cluster_dependencies:
        _crds_of_the_app(installed_crds, scope, deps)
        report.crds = {name: reasons for name, reasons in sorted(deps.crds.items())}
        yield from _cluster_dependencies(cluster, deps, report)


def _list_type(cluster: Cluster, resource: ApiResource, namespaces: list[str], wanted: set[str],
               label_selector: str | None, page_size: int, report: CollectReport) -> Iterator[JSON]:
    if len(namespaces) > CLUSTER_WIDE_LIST_THRESHOLD:
        try:
            for obj in cluster.list_pages(resource, label_selector=label_selector, limit=page_size):
                if obj["metadata"].get("namespace") in wanted:
                    yield obj
            return
        except ApiError as exc:
            if not exc.forbidden:
                report.type_errors.append(_type_error(resource, None, exc))
                return
            # no cluster-wide list permission: fall back to one list per namespace
    for ns in namespaces:
        try:
            yield from cluster.list_pages(resource, namespace=ns, label_selector=label_selector, limit=page_size)
        except ApiError as exc:
            report.type_errors.append(_type_error(resource, ns, exc))


def _type_error(resource: ApiResource, namespace: str | None, exc: ApiError) -> TypeFailure:
    return TypeFailure(f"{resource.plural}.{resource.group}" if resource.group else resource.plural,
                      namespace, exc.status, exc.reason, exc.message)


def _crds(cluster: Cluster, report: CollectReport) -> list[_Crd]:
    """Every installed CRD: its name, group, kind, labels and annotations."""
    out: list[_Crd] = []
    try:
        res = cluster.resource_for("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        for crd in cluster.list_pages(res):
            spec, md = crd.get("spec", {}), crd.get("metadata") or {}
            out.append(_Crd(md["name"], spec.get("group", ""), spec.get("names", {}).get("kind", ""),
                            dict(md.get("labels") or {}), dict(md.get("annotations") or {})))
    except ApiError as exc:
        report.type_errors.append(TypeFailure("customresourcedefinitions.apiextensions.k8s.io", None,
                                             exc.status, exc.reason, exc.message))
    return out


def _crds_of_the_app(installed: list[_Crd], scope: BackupScope, deps: _Dependencies) -> None:
    """CRDs that belong to the application although no custom resource of them is in it (yet): installed by
    the same Helm release, labelled ``part-of`` the same application, or asked for by group or name."""
    for crd in installed:
        reasons = []
        release = (crd.annotations.get(HELM_RELEASE_NAMESPACE, ""), crd.annotations.get(HELM_RELEASE_NAME, ""))
        if all(release) and release in deps.helm_releases:
            reasons.append(f"installed by Helm release {release[0]}/{release[1]} of the application")
        part_of = crd.labels.get(PART_OF_LABEL)
        if part_of and part_of in deps.part_of:
            reasons.append(f"labelled {PART_OF_LABEL}={part_of} like the application")
        asked = scope.wants_crd(crd.name, crd.group)
        if asked:
            reasons.append(f"asked for (include_crds {asked})")
        if reasons:
            deps.crds.setdefault(crd.name, []).extend(reasons)


def _note_dependencies(obj: JSON, resource: ApiResource, deps: _Dependencies,
                       crd_names: dict[tuple[str, str], str]) -> None:
    gk = (resource.group, resource.kind)
    if gk in crd_names:
        reasons = deps.crds.setdefault(crd_names[gk], [])
        if not reasons:
            reasons.append("custom resources of it are in the backup")
    spec = obj.get("spec") or {}
    md = obj.get("metadata") or {}
    annotations, labels = md.get("annotations") or {}, md.get("labels") or {}
    if annotations.get(HELM_RELEASE_NAME) and annotations.get(HELM_RELEASE_NAMESPACE):
        deps.helm_releases.add((annotations[HELM_RELEASE_NAMESPACE], annotations[HELM_RELEASE_NAME]))
    if labels.get(PART_OF_LABEL):
        deps.part_of.add(labels[PART_OF_LABEL])
    if gk == ("", "PersistentVolumeClaim"):
        if spec.get("volumeName"):
            deps.pvs.add(spec["volumeName"])
        if spec.get("storageClassName"):
            deps.storage_classes.add(spec["storageClassName"])
    elif gk == ("apps", "StatefulSet"):
        for tpl in spec.get("volumeClaimTemplates") or []:
            sc = (tpl.get("spec") or {}).get("storageClassName")
            if sc:
                deps.storage_classes.add(sc)
    elif gk == ("", "ServiceAccount"):
        deps.service_accounts.add((md.get("namespace", ""), md.get("name", "")))
    elif gk == ("rbac.authorization.k8s.io", "RoleBinding"):
        ref = obj.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            deps.cluster_roles.add(ref.get("name", ""))
    elif gk == ("networking.k8s.io", "Ingress") and spec.get("ingressClassName"):
        deps.ingress_classes.add(spec["ingressClassName"])
    template_path = POD_SPEC_PATHS.get(gk)
    if template_path:
        pod_spec = dig(obj, *template_path) or {}
        if pod_spec.get("priorityClassName"):
            deps.priority_classes.add(pod_spec["priorityClassName"])


def _pvc_ref(obj: JSON) -> PvcRef:
    md, spec = obj["metadata"], obj.get("spec") or {}
    return PvcRef(namespace=md["namespace"], name=md["name"], uid=md.get("uid", ""),
                  volume_name=spec.get("volumeName"), storage_class=spec.get("storageClassName"),
                  size=((spec.get("resources") or {}).get("requests") or {}).get("storage"))


def _cluster_dependencies(cluster: Cluster, deps: _Dependencies, report: CollectReport) -> Iterator[JSON]:
    def fetch(api_version: str, kind: str, names: set[str]) -> Iterator[JSON]:
        for name in sorted(names):
            try:
                obj = cluster.get_or_none(api_version, kind, name)
            except ApiError as exc:
                report.type_errors.append(TypeFailure(f"{kind} {name}", None, exc.status, exc.reason, exc.message))
                continue
            if obj is not None:
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", kind)
                report.count(obj)
                yield obj

    yield from fetch("apiextensions.k8s.io/v1", "CustomResourceDefinition", set(deps.crds))
    pvs = list(fetch("v1", "PersistentVolume", deps.pvs))
    for pv in pvs:
        sc = (pv.get("spec") or {}).get("storageClassName")
        if sc:
            deps.storage_classes.add(sc)
    yield from pvs
    yield from fetch("storage.k8s.io/v1", "StorageClass", deps.storage_classes)
    yield from fetch("scheduling.k8s.io/v1", "PriorityClass", deps.priority_classes)
    yield from fetch("networking.k8s.io/v1", "IngressClass", deps.ingress_classes)

    if deps.service_accounts:
        try:
            crb_res = cluster.resource_for("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
            for crb in cluster.list_pages(crb_res):
                subjects = crb.get("subjects") or []
                if any(s.get("kind") == "ServiceAccount" and (s.get("namespace", ""), s.get("name", ""))
                       in deps.service_accounts for s in subjects):
                    ref = crb.get("roleRef") or {}
                    if ref.get("kind") == "ClusterRole":
                        deps.cluster_roles.add(ref.get("name", ""))
                    report.count(crb)
                    yield crb
        except ApiError as exc:
            report.type_errors.append(TypeFailure("clusterrolebindings.rbac.authorization.k8s.io", None,
                                                 exc.status, exc.reason, exc.message))
    yield from fetch("rbac.authorization.k8s.io/v1", "ClusterRole", deps.cluster_roles)
