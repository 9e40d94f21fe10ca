"""Typed parameters of the restore flow: what the Prefect UI renders as forms (docs/ui.md).

Each structured parameter is a pydantic model (or a list of small models) with a description on
every field, so the run form shows inputs instead of a JSON editor. The models also accept the
older plain-data forms (``{"shop": "shop-copy"}`` for a namespace map, ``{"tiers": {...}}``, a
transform spec as the core reads it), so Python callers and the CLI keep working; the core
(kubekeep.restore) still validates the meaning and gives the one-line error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Existing = Literal["skip", "update", "recreate"]


def _none_is_empty(value: Any) -> Any:
    return [] if value is None else value


def _pairs(source: str, target: str) -> Any:
    """A ``{source: target}`` mapping as a list of ``{source, target}`` items (lists pass unchanged)."""

    def convert(value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [{source: k, target: v} for k, v in value.items()]
        return value

    return convert


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


Strings = Annotated[list[str], BeforeValidator(_none_is_empty)]


class NamespaceMapping(_Model):
    """One namespace of the restore point and where it is restored."""

    source: str = Field(min_length=1, description="Namespace in the restore point.")
    target: str = Field(min_length=1, description="Namespace to restore into (created when missing).")


class StorageClassMapping(_Model):
    """One StorageClass of the restore point and the one claims get instead."""

    source: str = Field(min_length=1, description="StorageClass in the restore point.")
    target: str = Field(min_length=1, description="StorageClass on the target cluster.")


class ImageRewriteRule(_Model):
    """Images starting with a registry or repository prefix get a new prefix (tags and digests are kept)."""

    source: str = Field(min_length=1, validation_alias="from", serialization_alias="from",
                        description="Registry or repository prefix to replace, e.g. registry.example.com/shop.")
    target: str = Field(min_length=1, validation_alias="to", serialization_alias="to",
                        description="New prefix, e.g. mirror.example.com/shop.")


class NameMapping(_Model):
    source: str = Field(min_length=1, description="Name in the restore point.")
    target: str = Field(min_length=1, description="Name on the target cluster.")


def as_mapping(items: Sequence[NamespaceMapping | StorageClassMapping | ImageRewriteRule]) -> dict[str, str]:
    """The ``{source: target}`` mapping the core takes, from the form's list of pairs."""
    return {item.source: item.target for item in items}


NamespaceMap = Annotated[list[NamespaceMapping], BeforeValidator(_pairs("source", "target"))]
StorageClassMap = Annotated[list[StorageClassMapping], BeforeValidator(_pairs("source", "target"))]
ImageRewrites = Annotated[list[ImageRewriteRule], BeforeValidator(_pairs("from", "to"))]


class KeyValue(_Model):
    key: str = Field(min_length=1, description="Label or annotation key.")
    value: str = Field(default="", description="Its value.")


KeyValues = Annotated[list[KeyValue], BeforeValidator(_pairs("key", "value"))]


class ObjectSelector(_Model):
    """Which objects a transform touches; empty fields match every object."""

    kind: Strings = Field(default=[], description="Kinds (Kind or Kind.group).")
    name: Strings = Field(default=[], description="Names (shell patterns such as web-*).")
    namespace: Strings = Field(default=[], description="Namespaces (shell patterns), as in the restore point.")
    labels: KeyValues = Field(default=[], description="Labels the objects carry (all of them).")

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {k: list(v) for k, v in (("kind", self.kind), ("name", self.name),
                                                            ("namespace", self.namespace)) if v}
        if self.labels:
            spec["labels"] = {kv.key: kv.value for kv in self.labels}
        return spec


def _selector_from_strings(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: ([v] if isinstance(v, str) and k != "labels" else v) for k, v in value.items()}
    return {} if value is None else value


Selector = Annotated[ObjectSelector, BeforeValidator(_selector_from_strings)]


class JsonPatchOperation(_Model):
    """One RFC 6902 operation."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"] = Field(description="The operation.")
    path: str = Field(description="JSON pointer of the field, e.g. /spec/replicas.")
    value: Any = Field(default=None, description="The value for add, replace and test.")
    from_: str | None = Field(default=None, validation_alias="from", serialization_alias="from",
                              description="Source pointer for move and copy.")

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op in ("add", "replace", "test"):
            spec["value"] = self.value
        if self.op in ("move", "copy"):
            spec["from"] = self.from_
        return spec


class TransformStep(_Model):
    """One more transform applied to the manifests after the maps (docs/restore-order.md). Fill in the
    fields its type uses: labels/annotations: add, remove; json-patch: patch; namespace-map and
    storage-class-map: map; image-rewrite: rules."""

    type: Literal["labels", "annotations", "json-patch", "namespace-map", "storage-class-map",
                  "image-rewrite"] = Field(description="What the step does.")
    selector: Selector = Field(default=ObjectSelector(), description="Only these objects (empty: all).")
    add: KeyValues = Field(default=[], description="labels/annotations: keys to set.")
    remove: Strings = Field(default=[], description="labels/annotations: keys to remove.")
    patch: list[JsonPatchOperation] = Field(default=[], description="json-patch: the operations, in order.")
    map: Annotated[list[NameMapping], BeforeValidator(_pairs("source", "target"))] = Field(
        default=[], description="namespace-map/storage-class-map: source -> target.")
    rules: ImageRewrites = Field(default=[], description="image-rewrite: prefix rules.")

    def to_spec(self) -> dict[str, Any]:
        """The step as the core's transform spec (kubekeep.restore.TransformChain.from_dict)."""
        spec: dict[str, Any] = {"type": self.type}
        if self.type in ("labels", "annotations"):
            spec.update({k: v for k, v in (("add", {kv.key: kv.value for kv in self.add}),
                                           ("remove", list(self.remove))) if v})
        elif self.type == "json-patch":
            spec["patch"] = [op.to_spec() for op in self.patch]
        elif self.type == "image-rewrite":
            spec["rules"] = [r.model_dump(by_alias=True) for r in self.rules]
        else:
            spec["map"] = {m.source: m.target for m in self.map}
        selector = self.selector.to_spec()
        if selector:
            spec["selector"] = selector
        return spec


class PriorityEntry(_Model):
    """One line of the restore order: objects matching it are restored before those of later lines."""

    match: str = Field(description="Kind.group, Kind (core group), *.group, or * for everything else.")
    reason: str = Field(default="custom priority", description="Why this line is here (shown in the plan).")
    wait: Literal["none", "crds-established", "ready"] = Field(
        default="none", description="What the restore waits for after this line.")
    tiered: bool = Field(default=False, description="Restore these workloads tier by tier, each Ready first.")

    def to_spec(self) -> dict[str, Any]:
        return self.model_dump()


def _priority_items(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [{"match": v} if isinstance(v, str) else v for v in value]
    return value


Priorities = Annotated[list[PriorityEntry], BeforeValidator(_priority_items)]


class WorkloadTier(_Model):
    workload: str = Field(min_length=1, description="Kind/name (or name) of a workload, e.g. StatefulSet/db.")
    tier: int = Field(ge=0, description="Its tier: lower tiers are Ready before higher ones start.")


class WorkloadAfter(_Model):
    workload: str = Field(min_length=1, description="Kind/name (or name) of a workload.")
    needs: Strings = Field(description="Workloads that must be Ready before it starts.")


class ReadinessTiers(_Model):
    """Readiness tiers for this run (docs/restore-order.md): explicit tiers, or 'after' dependencies."""

    tiers: Annotated[list[WorkloadTier], BeforeValidator(_pairs("workload", "tier"))] = Field(
        default=[], description="Workloads and their tiers.")
    after: list[WorkloadAfter] = Field(default=[], description="Workloads started only after others are Ready.")

    def to_spec(self) -> dict[str, Any] | None:
        """The core's tier policy data (kubekeep.restore.TierPolicy.from_dict), or None when empty."""
        if not self.tiers and not self.after:
            return None
        return {"tiers": {t.workload: t.tier for t in self.tiers},
                "after": {a.workload: list(a.needs) for a in self.after}}


def _tiers_data(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, Mapping) and isinstance(value.get("after"), Mapping):
        after = [{"workload": k, "needs": [r.strip() for r in v.split(",") if r.strip()] if isinstance(v, str) else v}
                 for k, v in value["after"].items()]
        return {**value, "after": after}
    return value


Tiers = Annotated[ReadinessTiers, BeforeValidator(_tiers_data)]


class KindPolicy(_Model):
    kind: str = Field(min_length=1, description="Kind.group (Kind for the core group).")
    existing: Existing = Field(description="What to do with existing objects of this kind.")


class RestoreOptions(_Model):
    """More of the restore policy (the defaults suit most restores)."""

    existing_by_kind: Annotated[list[KindPolicy], BeforeValidator(_pairs("kind", "existing"))] = Field(
        default=[], description="Per kind, overrides `existing`.")
    recreate_pvcs: bool = Field(default=False, description="With existing=recreate, also recreate claims and "
                                                           "volumes that hold data.")
    create_namespaces: bool = Field(default=True, description="Create target namespaces the backup has no "
                                                              "object for.")
    node_port_conflicts: Literal["fail", "reassign"] = Field(
        default="fail", description="A kept nodePort that is taken on the target: fail, or reassign a free one.")
    ready_timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for each readiness tier.")
    crd_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for CRDs to be Established.")
    delete_timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for a deleted object "
                                                                   "(existing=recreate).")
    workers: int = Field(default=4, ge=1, description="Objects sent at once.")

    def to_policy_data(self, existing: str) -> dict[str, Any]:
        """The core's restore policy data (kubekeep.restore.policy.RestorePolicy.from_dict)."""
        data = self.model_dump(exclude={"existing_by_kind"})
        return {"existing": existing, "existing_by_kind": {k.kind: k.existing for k in self.existing_by_kind},
                **data}


Options = Annotated[RestoreOptions, BeforeValidator(lambda v: {} if v is None else v)]
