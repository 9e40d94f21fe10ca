"""The contract of per-kind restore actions, and the context they (and hooks) see.

An action names the kinds it applies to (:meth:`RestoreAction.applies_to`)
and runs for each object of those kinds after the object's current state on
the target is known and before anything is sent (:meth:`RestoreAction.execute`).
It returns an :class:`ActionResult`: go on (possibly with a changed manifest,
a narrower conflict policy, a note for the report), or finish the object here
with an outcome (skip it, report a problem). Actions never write to the
cluster themselves: the engine does, so dry runs stay dry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubekeep.cluster import ApiResource, Cluster
from kubekeep.manifest import Manifest, ObjectRef, dig

from ..plan import RestorePlan
from ..policy import ConflictPolicy, RestorePolicy
from ..report import Action, RestoreReport, VolumeOutcome

JSON = dict[str, Any]

DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")


@dataclass
class RestoreItem:
    """One object on its way to the target."""

    ref: ObjectRef
    #: a copy: actions may change it
    manifest: Manifest
    #: the object as the target serves it now (None: it does not exist)
    existing: JSON | None
    #: what happens if it exists (the run's policy for the kind; actions may narrow it)
    policy: ConflictPolicy
    phase: str = ""
    tier: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ActionResult:
    #: a replacement manifest (None: unchanged)
    manifest: Manifest | None = None
    #: a replacement conflict policy (None: unchanged)
    policy: ConflictPolicy | None = None
    #: finish the object here with this outcome (None: go on)
    finish: Action | None = None
    #: the reason for ``finish``, or a note for the report
    reason: str = ""

    @classmethod
    def proceed(cls, *, manifest: Manifest | None = None, policy: ConflictPolicy | None = None,
                note: str = "") -> ActionResult:
        return cls(manifest, policy, None, note)

    @classmethod
    def done(cls, action: Action, reason: str) -> ActionResult:
        return cls(None, None, action, reason)


PROCEED = ActionResult()


class RestoreAction(Protocol):
    """A per-kind rule of the restore (one module per kind under ``kubekeep.restore.actions``)."""

    name: str

    def applies_to(self) -> frozenset[str]:
        """Group-kinds (``Kind.group``, ``Kind`` for the core group) this action runs for."""
        ...

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult: ...


@dataclass(frozen=True)
class RestoredPvc:
    """A claim of the restore as the ``before_workloads`` hook sees it."""

    ref: ObjectRef
    action: Action
    #: the claim as the target serves it (None in dry runs or when it failed)
    claim: JSON | None
    volume_name: str | None
    bound: bool
    #: why it is not bound, when it is not
    note: str = ""


class RestoreContext:
    """Shared state of one run: the target, the plan, the policy, caches of target-wide facts.

    Thread-safe: objects of one priority entry are restored by several threads.
    """

    def __init__(self, cluster: Cluster, plan: RestorePlan, policy: RestorePolicy, *, dry_run: bool,
                 report: RestoreReport) -> None:
        self.cluster = cluster
        self.plan = plan
        self.policy = policy
        self.dry_run = dry_run
        self.report = report
        #: claims of this restore and their binding, filled before the ``before_workloads`` hook
        self.pvcs: list[RestoredPvc] = []
        self._lock = threading.RLock()
        self._resources: dict[tuple[str, str, str], ApiResource] | None = None
        self._storage_classes: dict[str, JSON] | None = None
        self._node_ports: dict[int, str] | None = None
        manifests = [o.manifest for p in plan.phases for o in p.objects]
        self.plan_refs = {o.ref for p in plan.phases for o in p.objects}
        #: (group, kind) of custom resources whose CRD is part of this restore
        self.plan_crd_kinds = {(str(dig(m, "spec", "group")), str(dig(m, "spec", "names", "kind")))
                               for m in manifests if m.get("kind") == "CustomResourceDefinition"
                               and str(m.get("apiVersion", "")).startswith("apiextensions.k8s.io/")}
        self.plan_storage_classes = {str(dig(m, "metadata", "name")): m for m in manifests
                                     if m.get("kind") == "StorageClass"
                                     and str(m.get("apiVersion", "")).startswith("storage.k8s.io/")}
        self.plan_namespaces = {str(dig(m, "metadata", "name")) for m in manifests
                                if m.get("kind") == "Namespace" and m.get("apiVersion") == "v1"}

    # ---- discovery ------------------------------------------------------
    def resource(self, ref: ObjectRef, *, refresh: bool = False) -> ApiResource | None:
        """The served resource of ``ref`` (group/version/kind), from the cached discovery."""
        with self._lock:
            if self._resources is None or refresh:
                self._resources = {(r.group, r.version, r.kind): r for r in self.cluster.resources(refresh=refresh)}
            return self._resources.get((ref.group, ref.version, ref.kind))

    def refresh_resources(self) -> set[tuple[str, str, str]]:
        """Re-discover what the target serves (after CRDs were created); return (group, version, kind)s."""
        with self._lock:
            self._resources = {(r.group, r.version, r.kind): r for r in self.cluster.resources(refresh=True)}
            return set(self._resources)

    def serves_kind(self, group: str, kind: str) -> bool:
        with self._lock:
            if self._resources is None:
                self.resource(ObjectRef(group, kind, "", ""))
            assert self._resources is not None
            return any(g == group and k == kind for g, _, k in self._resources)

    # ---- storage classes ------------------------------------------------
    def storage_classes(self) -> dict[str, JSON]:
        """StorageClasses of the target (by name), read once per run."""
        with self._lock:
            if self._storage_classes is None:
                resource = self.cluster.resource_for("storage.k8s.io/v1", "StorageClass")
                self._storage_classes = {str(dig(sc, "metadata", "name")): sc
                                         for sc in self.cluster.list_pages(resource)}
            return self._storage_classes

    def storage_class_known(self, name: str) -> bool:
        return name in self.plan_storage_classes or name in self.storage_classes()

    def default_storage_class(self) -> str | None:
        for name, sc in [*self.storage_classes().items(), *self.plan_storage_classes.items()]:
            annotations = dig(sc, "metadata", "annotations") or {}
            if any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS):
                return name
        return None

    def storage_class(self, name: str) -> JSON | None:
        return self.plan_storage_classes.get(name) or self.storage_classes().get(name)

    # ---- services -------------------------------------------------------
    def node_port_owner(self, port: int) -> str | None:
        """``namespace/name`` of the Service that holds ``port`` on the target (read once per run)."""
        with self._lock:
            if self._node_ports is None:
                self._node_ports = {}
                for svc in self.cluster.list_pages(self.cluster.resource_for("v1", "Service")):
                    owner = f"{dig(svc, 'metadata', 'namespace')}/{dig(svc, 'metadata', 'name')}"
                    for port_ in _node_ports(svc):
                        self._node_ports[port_] = owner
            return self._node_ports.get(port)

    def remember_node_ports(self, service: JSON) -> None:
        with self._lock:
            if self._node_ports is not None:
                owner = f"{dig(service, 'metadata', 'namespace')}/{dig(service, 'metadata', 'name')}"
                self._node_ports.update(dict.fromkeys(_node_ports(service), owner))


def _node_ports(service: JSON) -> Iterable[int]:
    spec = service.get("spec") or {}
    for port in spec.get("ports") or ():
        if isinstance(port, dict) and isinstance(port.get("nodePort"), int) and port["nodePort"]:
            yield port["nodePort"]
    if isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
        yield spec["healthCheckNodePort"]


#: called once after PVCs are Bound and before the first workload tier starts; returns what happened to the
#: data of the claims it filled (a claim whose data is not usable holds back the workloads that mount it)
BeforeWorkloads = Callable[[RestoreContext], Iterable[VolumeOutcome] | None]
