"""Transforms applied to manifests before they reach the target API server.

A transform chain is data: a list of typed steps read from a dict or YAML,
validated up front (a bad spec fails before any object is touched), applied in
order to copies of the manifests. Spec format (docs/restore-order.md)::

    version: 1
    transforms:
      - type: namespace-map
        map: {shop: shop-restored}
      - type: storage-class-map
        map: {standard: gp3}
      - type: image-rewrite
        rules:
          - {from: docker.io, to: mirror.example.com/dockerhub}
          - {from: gcr.io/google-samples, to: registry.example.com/samples}
      - type: labels          # or: annotations
        selector: {kind: Deployment, namespace: shop-*}
        add: {restored-by: kubekeep}
        remove: [pod-template-hash]
      - type: json-patch
        selector: {kind: Deployment.apps, name: web, labels: {tier: frontend}}
        patch:
          - {op: replace, path: /spec/replicas, value: 1}

The registry :data:`TRANSFORM_TYPES` maps each ``type`` to its class; each
class reads its own spec (``from_spec``) and writes it back (``to_spec``).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import jsonpatch
import yaml

from kubekeep.manifest import (
    Manifest,
    ManifestError,
    containers_of,
    dig,
    metadata_of,
    pod_spec_of,
    ref_of,
    split_api_version,
)

from .errors import TransformError, TransformSpecError

SPEC_VERSION = 1
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


# -------------------------------------------------------------------- helpers


def _mapping(value: Any, where: str, *, values: type = str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TransformSpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, values):
            raise TransformSpecError(
                f"{where}: expected {values.__name__} values under string keys, got {key!r}: {item!r}"
            )
    return dict(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TransformSpecError(f"{where}: expected a string or a list of strings, got {value!r}")


def _non_empty_list(spec: Mapping[str, Any], key: str, where: str, of: str) -> Sequence[Any]:
    raw = spec.get(key)
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise TransformSpecError(f"{where}.{key}: expected a non-empty list of {of}")
    return raw


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(spec) - allowed - {"type"}
    if unknown:
        raise TransformSpecError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


@dataclass(frozen=True)
class Selector:
    """Which manifests: the objects a restore takes from a restore point, and those a transform touches.
    Empty fields match everything.

    ``kinds``: ``Kind`` (any group) or ``Kind.group``, in any case; ``names`` and
    ``namespaces``: shell-style patterns (``shop-*``); ``labels``: equality.
    (What a *backup* takes from a live cluster is a different thing:
    :class:`kubekeep.backup.scope.BackupScope`.)
    """

    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Any, where: str) -> Selector:
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise TransformSpecError(f"{where}: expected a mapping")
        _check_keys(spec, {"kind", "name", "namespace", "labels"}, where)
        return cls(
            kinds=_strings(spec.get("kind", ()), f"{where}.kind"),
            names=_strings(spec.get("name", ()), f"{where}.name"),
            namespaces=_strings(spec.get("namespace", ()), f"{where}.namespace"),
            labels=_mapping(spec.get("labels", {}), f"{where}.labels"),
        )

    def to_spec(self) -> dict[str, Any] | None:
        spec: dict[str, Any] = {}
        if self.kinds:
            spec["kind"] = list(self.kinds)
        if self.names:
            spec["name"] = list(self.names)
        if self.namespaces:
            spec["namespace"] = list(self.namespaces)
        if self.labels:
            spec["labels"] = dict(self.labels)
        return spec or None

    @staticmethod
    def parse_labels(selector: str | None) -> dict[str, str]:
        """``key=value,key2=value2`` (equality terms only) as a mapping."""
        out: dict[str, str] = {}
        for part in (selector or "").split(","):
            if not part.strip():
                continue
            if "=" not in part or "!=" in part:
                raise ValueError(f"label selector {selector!r}: only key=value terms are supported here")
            k, v = part.split("=", 1)
            out[k.strip().rstrip("=")] = v.strip().lstrip("=")
        return out

    def matches(self, manifest: Manifest) -> bool:
        ref = ref_of(manifest)
        if self.kinds and not any(
            k.lower() in (ref.kind.lower(), f"{ref.kind}.{ref.group}".lower()) for k in self.kinds
        ):
            return False
        if self.names and not any(fnmatch.fnmatchcase(ref.name, p) for p in self.names):
            return False
        if self.namespaces and not any(fnmatch.fnmatchcase(ref.namespace, p) for p in self.namespaces):
            return False
        labels = dig(manifest, "metadata", "labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())


def _with_selector(spec: dict[str, Any], selector: Selector) -> dict[str, Any]:
    """A transform's spec with its selector, when it has one."""
    selected = selector.to_spec()
    return {**spec, "selector": selected} if selected else spec


class Transform(Protocol):
    type_name: ClassVar[str]

    def apply(self, manifest: Manifest) -> Manifest:
        """Transform ``manifest`` (the chain's own copy: may be changed in place) and return it."""
        ...

    def to_spec(self) -> dict[str, Any]: ...


# ------------------------------------------------------------- namespace map


SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
#: on a ClusterRoleBinding restored as a copy for mapped namespaces: the name of the binding it copies
COPIED_FROM_ANNOTATION = "kubekeep.io/copied-from"
#: on such a copy: the subjects of the original that are not in the copy (not in a mapped namespace)
SUBJECTS_NOT_COPIED_ANNOTATION = "kubekeep.io/subjects-not-copied"
_MAX_NAME = 253


def _subject_name(subject: Mapping[str, Any]) -> str:
    namespace = subject.get("namespace")
    return f"{subject.get('kind')} {namespace + '/' if namespace else ''}{subject.get('name')}"


def copied_binding_name(name: str, pairs: Sequence[tuple[str, str]]) -> str:
    """The name of a cluster-scoped binding copied for mapped namespaces (deterministic, so a repeated
    restore finds its own copy): a source namespace that begins or ends the name is replaced by its target,
    else ``-<target>`` is appended."""
    out = name
    for source, target in pairs:
        for sep in "-.:":
            if out.startswith(source + sep):
                out = target + out[len(source):]
                break
            if out.endswith(sep + source):
                out = out[: -len(source)] + target
                break
        else:
            out = f"{out}-{target}"
    if out == name:
        out = f"{name}-{'-'.join(t for _, t in pairs)}"
    if len(out) > _MAX_NAME:
        digest = hashlib.sha256(out.encode()).hexdigest()[:10]
        out = f"{out[: _MAX_NAME - 11]}-{digest}"
    return out


@dataclass(frozen=True)
class NamespaceMap:
    """Move objects to other namespaces, and the references that name those namespaces."""

    mapping: Mapping[str, str]
    type_name: ClassVar[str] = "namespace-map"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str) -> NamespaceMap:
        _check_keys(spec, {"map"}, where)
        mapping = _mapping(spec.get("map"), f"{where}.map")
        for target in mapping.values():
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", target) or len(target) > 63:
                raise TransformSpecError(f"{where}.map: {target!r} is not a valid namespace name")
        return cls(mapping)

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "map": dict(self.mapping)}

    def _map(self, holder: Any, key: str = "namespace") -> None:
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key] in self.mapping:
            holder[key] = self.mapping[holder[key]]

    def _map_subject(self, subject: Any) -> tuple[str, str] | None:
        """Map a binding subject: a ServiceAccount's (or any namespaced subject's) namespace, or the group
        ``system:serviceaccounts:<ns>``; return (source, target) namespace when it named a mapped one."""
        if not isinstance(subject, dict):
            return None
        if subject.get("kind") == "Group" and isinstance(subject.get("name"), str):
            prefix, _, namespace = subject["name"].rpartition(":")
            if prefix == SERVICE_ACCOUNTS_GROUP and namespace in self.mapping:
                subject["name"] = f"{SERVICE_ACCOUNTS_GROUP}:{self.mapping[namespace]}"
                return namespace, self.mapping[namespace]
            return None
        namespace = subject.get("namespace")
        if isinstance(namespace, str) and namespace in self.mapping:
            subject["namespace"] = self.mapping[namespace]
            return namespace, self.mapping[namespace]
        return None

    def _copy_cluster_role_binding(self, manifest: Manifest, metadata: dict[str, Any]) -> None:
        """A ClusterRoleBinding that grants subjects of a mapped namespace becomes a copy for the target
        namespace(s): a name of its own (the original may still exist and keep granting the source), only the
        mapped subjects, and an annotation naming the original (docs/restore-order.md)."""
        subjects = [s for s in manifest.get("subjects") or () if isinstance(s, dict)]
        left = [_subject_name(s) for s in subjects]
        pairs: set[tuple[str, str]] = set()
        mapped = []
        for subject in subjects:
            pair = self._map_subject(subject)
            if pair is not None:
                pairs.add(pair)
                mapped.append(subject)
        if not mapped:
            return
        left = [name for name, s in zip(left, subjects, strict=True) if not any(s is m for m in mapped)]
        original = str(metadata.get("name", ""))
        metadata["name"] = copied_binding_name(original, sorted(pairs))
        manifest["subjects"] = mapped
        annotations = metadata.get("annotations")
        if not isinstance(annotations, dict):
            annotations = metadata["annotations"] = {}
        annotations[COPIED_FROM_ANNOTATION] = original
        if left:
            annotations[SUBJECTS_NOT_COPIED_ANNOTATION] = ", ".join(left)
        else:
            annotations.pop(SUBJECTS_NOT_COPIED_ANNOTATION, None)

    def apply(self, manifest: Manifest) -> Manifest:
        metadata = metadata_of(manifest)
        self._map(metadata)
        group, _ = split_api_version(str(manifest.get("apiVersion", "")))
        kind = manifest.get("kind")
        if group == "" and kind == "Namespace":
            self._map(metadata, "name")
            labels = metadata.get("labels")
            if isinstance(labels, dict):
                self._map(labels, NAMESPACE_NAME_LABEL)
        elif group == "rbac.authorization.k8s.io" and kind == "RoleBinding":
            for subject in manifest.get("subjects") or ():
                self._map_subject(subject)
        elif group == "rbac.authorization.k8s.io" and kind == "ClusterRoleBinding":
            self._copy_cluster_role_binding(manifest, metadata)
        elif group == "" and kind == "PersistentVolume":
            self._map(dig(manifest, "spec", "claimRef"))
        elif group == "snapshot.storage.k8s.io" and kind == "VolumeSnapshotContent":
            self._map(dig(manifest, "spec", "volumeSnapshotRef"))
        elif group == "admissionregistration.k8s.io" and kind in (
            "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"
        ):
            for webhook in manifest.get("webhooks") or ():
                self._map(dig(webhook, "clientConfig", "service"))
        elif group == "apiregistration.k8s.io" and kind == "APIService":
            self._map(dig(manifest, "spec", "service"))
        elif group == "apiextensions.k8s.io" and kind == "CustomResourceDefinition":
            self._map(dig(manifest, "spec", "conversion", "webhook", "clientConfig", "service"))
        elif group == "networking.k8s.io" and kind == "NetworkPolicy":
            for rule_list, peers in (("ingress", "from"), ("egress", "to")):
                for rule in dig(manifest, "spec", rule_list) or ():
                    for peer in dig(rule, peers) or ():
                        self._map(dig(peer, "namespaceSelector", "matchLabels"), NAMESPACE_NAME_LABEL)
        return manifest


# --------------------------------------------------------- storage class map


@dataclass(frozen=True)
class StorageClassMap:
    """Rename storage classes in claims, volumes, claim templates and generic ephemeral volumes."""

    mapping: Mapping[str, str]
    selector: Selector = field(default_factory=Selector)
    type_name: ClassVar[str] = "storage-class-map"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str) -> StorageClassMap:
        _check_keys(spec, {"map", "selector"}, where)
        return cls(_mapping(spec.get("map"), f"{where}.map"), Selector.from_spec(spec.get("selector"), where))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type_name, "map": dict(self.mapping)}
        return _with_selector(spec, self.selector)

    def _map_claim(self, claim: Any) -> None:
        """``claim`` is an object with metadata and spec (a PVC or a claim template)."""
        if not isinstance(claim, dict):
            return
        spec = claim.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("storageClassName"), str):
            spec["storageClassName"] = self.mapping.get(spec["storageClassName"], spec["storageClassName"])
        annotations = dig(claim, "metadata", "annotations")
        if isinstance(annotations, dict) and annotations.get(STORAGE_CLASS_ANNOTATION) in self.mapping:
            annotations[STORAGE_CLASS_ANNOTATION] = self.mapping[annotations[STORAGE_CLASS_ANNOTATION]]

    def apply(self, manifest: Manifest) -> Manifest:
        if not self.selector.matches(manifest):
            return manifest
        group, _ = split_api_version(str(manifest.get("apiVersion", "")))
        kind = manifest.get("kind")
        if group == "" and kind in ("PersistentVolumeClaim", "PersistentVolume"):
            self._map_claim(manifest)
        elif group in ("apps", "extensions") and kind == "StatefulSet":
            for template in dig(manifest, "spec", "volumeClaimTemplates") or ():
                self._map_claim(template)
        pod_spec = pod_spec_of(manifest)
        if pod_spec is not None:
            for volume in pod_spec.get("volumes") or ():
                self._map_claim(dig(volume, "ephemeral", "volumeClaimTemplate"))
        return manifest


# ------------------------------------------------------------- image rewrite

_DIGEST_SPLIT = re.compile(r"^(?P<name>[^@]+?)(?P<suffix>(:[\w][\w.-]{0,127})?(@[A-Za-z0-9_+.-]+:[A-Fa-f0-9]+)?)$")


def split_image(image: str) -> tuple[str, str]:
    """``registry/repo:tag@digest`` -> (normalised ``registry/repo``, ``:tag@digest``).

    Docker Hub short names are normalised the way the container runtime does:
    ``busybox`` -> ``docker.io/library/busybox``.
    """
    match = _DIGEST_SPLIT.match(image)
    if match is None:
        return image, ""
    name, suffix = match["name"], match["suffix"]
    # a ':' in the last path component was the tag; one before a '/' is a registry port
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{first}", suffix
    if "." in first or ":" in first or first == "localhost":
        return name, suffix
    return f"docker.io/{name}", suffix


@dataclass(frozen=True)
class ImageRule:
    from_: str
    to: str

    def applies(self, normalised: str) -> bool:
        return normalised == self.from_ or normalised.startswith(self.from_ + "/")


@dataclass(frozen=True)
class ImageRewrite:
    """Rewrite the registry or repository prefix of container images (longest matching rule wins).

    Applies to every container (init, regular, ephemeral) of Pods and of pod
    templates (Deployments, StatefulSets, DaemonSets, ReplicaSets,
    ReplicationControllers, Jobs, CronJobs, PodTemplates).
    """

    rules: tuple[ImageRule, ...]
    selector: Selector = field(default_factory=Selector)
    type_name: ClassVar[str] = "image-rewrite"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str) -> ImageRewrite:
        _check_keys(spec, {"rules", "selector"}, where)
        raw = _non_empty_list(spec, "rules", where, "{from, to}")
        rules: list[ImageRule] = []
        for i, rule in enumerate(raw):
            rule_where = f"{where}.rules[{i}]"
            if not isinstance(rule, Mapping) or set(rule) != {"from", "to"}:
                raise TransformSpecError(f"{rule_where}: expected exactly the keys 'from' and 'to'")
            source, target = rule["from"], rule["to"]
            for label, value in (("from", source), ("to", target)):
                if not isinstance(value, str) or not value or value.endswith("/") or "@" in value:
                    raise TransformSpecError(
                        f"{rule_where}.{label}: {value!r} must be a registry or repository prefix "
                        "without trailing '/', tag or digest"
                    )
            if ":" in source.rpartition("/")[2] and "/" in source:
                raise TransformSpecError(f"{rule_where}.from: {source!r} looks like it has a tag; rules match "
                                         "registries and repositories, tags are kept")
            rules.append(ImageRule(_normalise_prefix(source), target))
        return cls(tuple(rules), Selector.from_spec(spec.get("selector"), where))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "type": self.type_name, "rules": [{"from": r.from_, "to": r.to} for r in self.rules]
        }
        return _with_selector(spec, self.selector)

    def rewrite(self, image: str) -> str:
        normalised, suffix = split_image(image)
        candidates = [r for r in self.rules if r.applies(normalised)]
        if not candidates:
            return image
        rule = max(candidates, key=lambda r: len(r.from_))
        return rule.to + normalised[len(rule.from_):] + suffix

    def apply(self, manifest: Manifest) -> Manifest:
        if not self.selector.matches(manifest):
            return manifest
        pod_spec = pod_spec_of(manifest)
        if pod_spec is not None:
            for container in containers_of(pod_spec):
                if isinstance(container.get("image"), str):
                    container["image"] = self.rewrite(container["image"])
        return manifest


def _normalise_prefix(prefix: str) -> str:
    """Rule prefixes follow the image normalisation: ``library/x`` and ``x/y`` live on docker.io."""
    first = prefix.split("/", 1)[0]
    if "." in first or ":" in first or first == "localhost":
        return prefix
    return f"docker.io/{prefix}"


# --------------------------------------------------------- labels/annotations


@dataclass(frozen=True)
class _MetadataMap:
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    selector: Selector = field(default_factory=Selector)
    type_name: ClassVar[str] = ""
    field_name: ClassVar[str] = ""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str) -> Any:
        _check_keys(spec, {"add", "remove", "selector"}, where)
        add = _mapping(spec.get("add", {}), f"{where}.add")
        remove = _strings(spec.get("remove", ()), f"{where}.remove")
        if not add and not remove:
            raise TransformSpecError(f"{where}: nothing to do (give 'add' and/or 'remove')")
        return cls(add, remove, Selector.from_spec(spec.get("selector"), f"{where}.selector"))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type_name}
        if self.add:
            spec["add"] = dict(self.add)
        if self.remove:
            spec["remove"] = list(self.remove)
        return _with_selector(spec, self.selector)

    def apply(self, manifest: Manifest) -> Manifest:
        if not self.selector.matches(manifest):
            return manifest
        metadata = metadata_of(manifest)
        values = metadata.get(self.field_name)
        values = dict(values) if isinstance(values, dict) else {}
        for key in self.remove:
            values.pop(key, None)
        values.update(self.add)
        if values:
            metadata[self.field_name] = values
        else:
            metadata.pop(self.field_name, None)
        return manifest


@dataclass(frozen=True)
class Labels(_MetadataMap):
    """Add or remove labels of the objects themselves (not of their pod templates)."""

    type_name: ClassVar[str] = "labels"
    field_name: ClassVar[str] = "labels"


@dataclass(frozen=True)
class Annotations(_MetadataMap):
    """Add or remove annotations of the objects themselves."""

    type_name: ClassVar[str] = "annotations"
    field_name: ClassVar[str] = "annotations"


# ---------------------------------------------------------------- json patch

_POINTER_RE = re.compile(r"^(/([^~/]|~[01])*)*$")
_OP_FIELDS = {
    "add": {"path", "value"},
    "remove": {"path"},
    "replace": {"path", "value"},
    "move": {"path", "from"},
    "copy": {"path", "from"},
    "test": {"path", "value"},
}


@dataclass(frozen=True)
class JsonPatch:
    """RFC 6902 operations applied to every selected manifest (a failing ``test`` fails the transform)."""

    operations: tuple[Mapping[str, Any], ...]
    selector: Selector = field(default_factory=Selector)
    type_name: ClassVar[str] = "json-patch"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str) -> JsonPatch:
        _check_keys(spec, {"patch", "selector"}, where)
        raw = _non_empty_list(spec, "patch", where, "RFC 6902 operations")
        for i, op in enumerate(raw):
            op_where = f"{where}.patch[{i}]"
            if not isinstance(op, Mapping):
                raise TransformSpecError(f"{op_where}: expected a mapping like {{op: replace, path: /a, value: 1}}")
            name = op.get("op")
            if name not in _OP_FIELDS:
                raise TransformSpecError(f"{op_where}: op {name!r} is not one of {sorted(_OP_FIELDS)}")
            missing = _OP_FIELDS[name] - set(op)
            if missing:
                raise TransformSpecError(f"{op_where}: op {name!r} needs {sorted(missing)}")
            extra = set(op) - _OP_FIELDS[name] - {"op"}
            if extra:
                raise TransformSpecError(f"{op_where}: op {name!r} does not take {sorted(extra)}")
            for pointer_field in ("path", "from"):
                if pointer_field in op and (
                    not isinstance(op[pointer_field], str) or not _POINTER_RE.match(op[pointer_field])
                ):
                    raise TransformSpecError(
                        f"{op_where}.{pointer_field}: {op[pointer_field]!r} is not a JSON pointer "
                        "('' or '/a/b', with '~1' for '/' and '~0' for '~')"
                    )
        operations = tuple(copy.deepcopy(dict(op)) for op in raw)
        try:
            jsonpatch.JsonPatch(list(operations))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise TransformSpecError(f"{where}.patch: {exc}") from exc
        return cls(operations, Selector.from_spec(spec.get("selector"), f"{where}.selector"))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type_name, "patch": [dict(op) for op in self.operations]}
        return _with_selector(spec, self.selector)

    def apply(self, manifest: Manifest) -> Manifest:
        if not self.selector.matches(manifest):
            return manifest
        # a fresh patch object per manifest: jsonpatch may keep values by reference
        patch = jsonpatch.JsonPatch(copy.deepcopy(list(self.operations)))
        result = patch.apply(manifest, in_place=True)
        if not isinstance(result, dict):
            raise TransformError([f"json-patch turned the manifest into a {type(result).__name__}"])
        return result


# ------------------------------------------------------------------ registry

TRANSFORM_TYPES: dict[str, Any] = {
    cls.type_name: cls for cls in (NamespaceMap, StorageClassMap, ImageRewrite, Labels, Annotations, JsonPatch)
}


@dataclass(frozen=True)
class TransformChain:
    transforms: tuple[Transform, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> TransformChain:
        """Read ``{version: 1, transforms: [...]}`` or just the list of transforms."""
        if data is None:
            return cls()
        if isinstance(data, Mapping):
            unknown = set(data) - {"version", "transforms"}
            if unknown:
                raise TransformSpecError(f"unknown keys {sorted(unknown)} (expected 'version', 'transforms')")
            version = data.get("version", SPEC_VERSION)
            if version != SPEC_VERSION:
                raise TransformSpecError(f"transform spec version {version!r} is not supported (use {SPEC_VERSION})")
            items = data.get("transforms") or []
        else:
            items = data
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise TransformSpecError("transforms: expected a list")
        transforms: list[Transform] = []
        for index, spec in enumerate(items):
            where = f"transforms[{index}]"
            if not isinstance(spec, Mapping):
                raise TransformSpecError(f"{where}: expected a mapping with a 'type'")
            type_name = spec.get("type")
            cls_ = TRANSFORM_TYPES.get(str(type_name))
            if cls_ is None:
                raise TransformSpecError(
                    f"{where}: unknown type {type_name!r} (known: {', '.join(sorted(TRANSFORM_TYPES))})"
                )
            transforms.append(cls_.from_spec(spec, f"{where} ({type_name})"))
        return cls(tuple(transforms))

    @classmethod
    def from_yaml(cls, text: str) -> TransformChain:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TransformSpecError(f"transform spec is not valid YAML: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"version": SPEC_VERSION, "transforms": [t.to_spec() for t in self.transforms]}

    def apply(self, manifests: Iterable[Manifest]) -> list[Manifest]:
        """Transformed copies of ``manifests``; every failure is collected, then raised as one error."""
        out: list[Manifest] = []
        failures: list[str] = []
        for original in manifests:
            manifest = copy.deepcopy(original)
            try:
                before = str(ref_of(original))
            except ManifestError as exc:
                failures.append(str(exc))
                continue
            for index, transform in enumerate(self.transforms):
                try:
                    manifest = transform.apply(manifest)
                    ref_of(manifest)
                except TransformError as exc:
                    failures.append(f"{before}: transforms[{index}] ({transform.type_name}): {exc.failures[0]}")
                    break
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, ManifestError,
                        KeyError, IndexError, TypeError) as exc:
                    failures.append(f"{before}: transforms[{index}] ({transform.type_name}): {exc}")
                    break
            else:
                out.append(manifest)
        if failures:
            raise TransformError(failures)
        return out
