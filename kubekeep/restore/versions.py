"""API drift: is a stored apiVersion served by the target, and if not, what to convert it to.

The cluster layer supplies what the target serves as plain data::

    served = {"apps": {"Deployment": ["v1"]}, "": {"Pod": ["v1"]}, ...}
    #         group    kind          served versions, preferred first

This module decides, per manifest, one of: served as stored; convert (with a
known field conversion for the common removed betas); not convertible, with a
reason for the restore report. Conversions are pure functions on copies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubekeep.manifest import Manifest, ObjectRef, dig, ref_of, split_api_version

ServedVersions = Mapping[str, Mapping[str, Sequence[str]]]


class VersionVerdict(StrEnum):
    SERVED = "served"
    CONVERT = "convert"
    NOT_CONVERTIBLE = "not-convertible"


@dataclass(frozen=True)
class VersionDecision:
    verdict: VersionVerdict
    api_version: str
    kind: str
    reason: str
    #: the apiVersion to create the object with (None when not convertible)
    target_api_version: str | None = None


@dataclass(frozen=True)
class ConversionResult:
    ref: ObjectRef
    decision: VersionDecision
    #: the manifest to create: the input (served), a converted copy, or None
    manifest: Manifest | None
    notes: tuple[str, ...] = ()


class _NotConvertible(Exception):
    pass


Converter = Callable[[Manifest], list[str]]


@dataclass(frozen=True)
class KnownConversion:
    source_group: str
    source_versions: tuple[str, ...]
    kind: str
    target_group: str
    target_version: str
    #: changes a copy whose apiVersion is already set to the target; returns notes
    convert: Converter
    note: str


# ------------------------------------------------------------------ converters


def _same_shape(_: Manifest) -> list[str]:
    return []


def _selector_from_template(manifest: Manifest) -> list[str]:
    spec = manifest.setdefault("spec", {})
    if spec.get("selector"):
        return []
    labels = dig(spec, "template", "metadata", "labels")
    if not isinstance(labels, dict) or not labels:
        raise _NotConvertible("apps/v1 requires spec.selector, and the pod template has no labels to derive it from")
    spec["selector"] = {"matchLabels": dict(labels)}
    return [f"added spec.selector.matchLabels from the pod template labels {sorted(labels)}"]


def _deployment(manifest: Manifest) -> list[str]:
    notes = _selector_from_template(manifest)
    spec = manifest["spec"]
    if spec.pop("rollbackTo", None) is not None:
        notes.append("dropped spec.rollbackTo (removed in apps/v1)")
    return notes


def _daemonset(manifest: Manifest, source_api_version: str) -> list[str]:
    notes = _selector_from_template(manifest)
    spec = manifest["spec"]
    if spec.pop("templateGeneration", None) is not None:
        notes.append("dropped spec.templateGeneration (removed in apps/v1)")
    if source_api_version == "extensions/v1beta1" and "updateStrategy" not in spec:
        spec["updateStrategy"] = {"type": "OnDelete"}
        notes.append("set updateStrategy OnDelete (the extensions/v1beta1 default; apps/v1 defaults to RollingUpdate)")
    return notes


def _statefulset(manifest: Manifest, source_api_version: str) -> list[str]:
    notes = _selector_from_template(manifest)
    spec = manifest["spec"]
    if source_api_version == "apps/v1beta1" and "updateStrategy" not in spec:
        spec["updateStrategy"] = {"type": "OnDelete"}
        notes.append("set updateStrategy OnDelete (the apps/v1beta1 default; apps/v1 defaults to RollingUpdate)")
    return notes


def _ingress_backend(backend: Any) -> Any:
    if not isinstance(backend, dict) or "serviceName" not in backend:
        return backend
    port = backend.get("servicePort")
    new_port: dict[str, Any] = {}
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        new_port["number"] = int(port)
    elif isinstance(port, str):
        new_port["name"] = port
    converted: dict[str, Any] = {"service": {"name": backend["serviceName"], "port": new_port}}
    rest = {k: v for k, v in backend.items() if k not in ("serviceName", "servicePort")}
    converted.update(rest)
    return converted


def _ingress(manifest: Manifest) -> list[str]:
    notes: list[str] = []
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return notes
    if "backend" in spec:
        spec["defaultBackend"] = _ingress_backend(spec.pop("backend"))
        notes.append("spec.backend -> spec.defaultBackend")
    for rule in spec.get("rules") or ():
        for path in dig(rule, "http", "paths") or ():
            if not isinstance(path, dict):
                continue
            path["backend"] = _ingress_backend(path.get("backend"))
            if "pathType" not in path:
                path["pathType"] = "ImplementationSpecific"
                notes.append(f"path {path.get('path', '/')!r}: pathType ImplementationSpecific (the old behaviour)")
    notes.append("backends: serviceName/servicePort -> service.name/service.port")
    return notes


def _pdb(manifest: Manifest) -> list[str]:
    spec = manifest.get("spec")
    if isinstance(spec, dict) and spec.get("selector") == {}:
        # policy/v1beta1: an empty selector selects no pods; policy/v1: every pod of the namespace
        del spec["selector"]
        return ["dropped the empty spec.selector: it selected no pods in v1beta1 but would select all in v1"]
    return []


def _endpointslice(manifest: Manifest) -> list[str]:
    notes: list[str] = []
    for endpoint in manifest.get("endpoints") or ():
        if not isinstance(endpoint, dict) or "topology" not in endpoint:
            continue
        topology = dict(endpoint.pop("topology") or {})
        hostname = topology.pop("kubernetes.io/hostname", None)
        if hostname and "nodeName" not in endpoint:
            endpoint["nodeName"] = hostname
        zone = topology.pop("topology.kubernetes.io/zone", None)
        if zone and "zone" not in endpoint:
            endpoint["zone"] = zone
        if topology:
            endpoint["deprecatedTopology"] = topology
        notes.append("endpoints[].topology -> nodeName/zone/deprecatedTopology")
    return notes[:1]


def _hpa_v2beta1(manifest: Manifest) -> list[str]:
    for metric in dig(manifest, "spec", "metrics") or ():
        if not isinstance(metric, dict):
            continue
        if metric.get("type") != "Resource":
            raise _NotConvertible(
                f"autoscaling/v2beta1 {metric.get('type')} metrics have no automatic conversion; only Resource"
            )
        resource = metric.get("resource") or {}
        target: dict[str, Any] = {}
        if "targetAverageUtilization" in resource:
            target = {"type": "Utilization", "averageUtilization": resource.pop("targetAverageUtilization")}
        elif "targetAverageValue" in resource:
            target = {"type": "AverageValue", "averageValue": resource.pop("targetAverageValue")}
        resource["target"] = target
    return ["Resource metrics: targetAverage* -> target{type, ...}"]


#: resource.k8s.io/v1beta1 DeviceRequest fields that v1beta2 and v1 hold under ``exactly``
_EXACT_REQUEST_FIELDS = ("deviceClassName", "selectors", "allocationMode", "count", "adminAccess", "tolerations",
                         "capacity")


def _dra_requests_v1beta1(manifest: Manifest) -> list[str]:
    """ResourceClaim / ResourceClaimTemplate resource.k8s.io/v1beta1 -> v1beta2 or v1: a request's
    device fields move under ``exactly`` (``firstAvailable`` requests keep their shape)."""
    spec = dig(manifest, "spec", "spec") if manifest.get("kind") == "ResourceClaimTemplate" else manifest.get("spec")
    moved = 0
    for request in dig(spec, "devices", "requests") or ():
        if not isinstance(request, dict) or "exactly" in request:
            continue
        exact = {k: request.pop(k) for k in _EXACT_REQUEST_FIELDS if k in request}
        if request.get("firstAvailable"):
            if exact:
                raise _NotConvertible("a request with firstAvailable also sets " + ", ".join(sorted(exact)))
            continue
        request["exactly"] = exact
        moved += 1
    return [f"{moved} device request(s): deviceClassName/selectors/allocationMode/... -> exactly"] if moved else []


def _dra_slice_v1beta1(manifest: Manifest) -> list[str]:
    """ResourceSlice resource.k8s.io/v1beta1 -> v1beta2 or v1: a device's ``basic`` fields move up."""
    flattened = 0
    for device in dig(manifest, "spec", "devices") or ():
        if isinstance(device, dict) and isinstance(device.get("basic"), dict):
            for key, value in device.pop("basic").items():
                device.setdefault(key, value)
            flattened += 1
    return [f"{flattened} device(s): basic.* -> the device"] if flattened else []


_WEBHOOK_OLD_DEFAULTS = {"failurePolicy": "Ignore", "matchPolicy": "Exact", "timeoutSeconds": 30}


def _webhooks(manifest: Manifest) -> list[str]:
    notes: list[str] = []
    for webhook in manifest.get("webhooks") or ():
        if not isinstance(webhook, dict):
            continue
        name = webhook.get("name", "?")
        if webhook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise _NotConvertible(
                f"webhook {name}: sideEffects {webhook.get('sideEffects', 'Unknown')!r}; admissionregistration/v1 "
                "accepts only None or NoneOnDryRun, which only the webhook's author can promise"
            )
        webhook.setdefault("admissionReviewVersions", ["v1beta1"])
        for key, old_default in _WEBHOOK_OLD_DEFAULTS.items():
            if key not in webhook:
                webhook[key] = old_default
                notes.append(f"webhook {name}: {key} {old_default!r} (the v1beta1 default)")
    return notes


def _conversions() -> list[KnownConversion]:
    table: list[KnownConversion] = []

    def add(src_group: str, versions: Iterable[str], kinds: Iterable[str], dst_group: str, dst_version: str,
            convert: Converter, note: str) -> None:
        for kind in kinds:
            table.append(KnownConversion(src_group, tuple(versions), kind, dst_group, dst_version, convert, note))

    removed_apps = "removed in Kubernetes 1.16"
    add("extensions", ["v1beta1"], ["Deployment"], "apps", "v1", _deployment, removed_apps)
    add("apps", ["v1beta1", "v1beta2"], ["Deployment"], "apps", "v1", _deployment, removed_apps)
    add("extensions", ["v1beta1"], ["DaemonSet"], "apps", "v1",
        lambda m: _daemonset(m, "extensions/v1beta1"), removed_apps)
    add("apps", ["v1beta2"], ["DaemonSet"], "apps", "v1", lambda m: _daemonset(m, "apps/v1beta2"), removed_apps)
    add("extensions", ["v1beta1"], ["ReplicaSet"], "apps", "v1", _selector_from_template, removed_apps)
    add("apps", ["v1beta2"], ["ReplicaSet"], "apps", "v1", _selector_from_template, removed_apps)
    add("apps", ["v1beta1"], ["StatefulSet"], "apps", "v1",
        lambda m: _statefulset(m, "apps/v1beta1"), removed_apps)
    add("apps", ["v1beta2"], ["StatefulSet"], "apps", "v1",
        lambda m: _statefulset(m, "apps/v1beta2"), removed_apps)
    add("extensions", ["v1beta1"], ["Ingress"], "networking.k8s.io", "v1", _ingress, "removed in 1.22")
    add("networking.k8s.io", ["v1beta1"], ["Ingress"], "networking.k8s.io", "v1", _ingress, "removed in 1.22")
    add("networking.k8s.io", ["v1beta1"], ["IngressClass"], "networking.k8s.io", "v1", _same_shape,
        "removed in 1.22")
    add("extensions", ["v1beta1"], ["NetworkPolicy"], "networking.k8s.io", "v1", _same_shape, "removed in 1.16")
    add("policy", ["v1beta1"], ["PodDisruptionBudget"], "policy", "v1", _pdb, "removed in 1.25")
    add("batch", ["v1beta1", "v2alpha1"], ["CronJob"], "batch", "v1", _same_shape, "removed in 1.25")
    add("rbac.authorization.k8s.io", ["v1beta1"], ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"],
        "rbac.authorization.k8s.io", "v1", _same_shape, "removed in 1.22")
    add("scheduling.k8s.io", ["v1beta1", "v1alpha1"], ["PriorityClass"], "scheduling.k8s.io", "v1",
        _same_shape, "removed in 1.17")
    add("storage.k8s.io", ["v1beta1"], ["StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"],
        "storage.k8s.io", "v1", _same_shape, "removed in 1.22")
    add("coordination.k8s.io", ["v1beta1"], ["Lease"], "coordination.k8s.io", "v1", _same_shape, "removed in 1.22")
    add("node.k8s.io", ["v1beta1"], ["RuntimeClass"], "node.k8s.io", "v1", _same_shape, "removed in 1.25")
    add("discovery.k8s.io", ["v1beta1"], ["EndpointSlice"], "discovery.k8s.io", "v1", _endpointslice,
        "removed in 1.25")
    add("autoscaling", ["v2beta2"], ["HorizontalPodAutoscaler"], "autoscaling", "v2", _same_shape,
        "removed in 1.26")
    add("autoscaling", ["v2beta1"], ["HorizontalPodAutoscaler"], "autoscaling", "v2", _hpa_v2beta1,
        "removed in 1.25")
    add("admissionregistration.k8s.io", ["v1beta1"],
        ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
        "admissionregistration.k8s.io", "v1", _webhooks, "removed in 1.22")
    add("certificates.k8s.io", ["v1beta1"], ["CertificateSigningRequest"], "certificates.k8s.io", "v1",
        _same_shape, "removed in 1.22")
    # Kubernetes 1.34 made these GA; 1.33 serves them only in beta (docs/testbed.md: the test bed's drift)
    add("storage.k8s.io", ["v1beta1"], ["VolumeAttributesClass"], "storage.k8s.io", "v1", _same_shape,
        "GA in 1.34 (v1beta1 is off by default there)")
    add("storage.k8s.io", ["v1"], ["VolumeAttributesClass"], "storage.k8s.io", "v1beta1", _same_shape,
        "is served from 1.34; older clusters serve storage.k8s.io/v1beta1 (same fields)")
    dra = ["DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice"]
    add("resource.k8s.io", ["v1beta2"], dra, "resource.k8s.io", "v1", _same_shape,
        "GA in 1.34 (same fields as v1beta2)")
    add("resource.k8s.io", ["v1"], dra, "resource.k8s.io", "v1beta2", _same_shape,
        "is served from 1.34; 1.33 serves resource.k8s.io/v1beta2 (same fields)")
    for version in ("v1", "v1beta2"):
        add("resource.k8s.io", ["v1beta1"], ["DeviceClass"], "resource.k8s.io", version, _same_shape,
            "v1beta1 is off by default from 1.34")
        add("resource.k8s.io", ["v1beta1"], ["ResourceClaim", "ResourceClaimTemplate"], "resource.k8s.io", version,
            _dra_requests_v1beta1, "v1beta1 is off by default from 1.34")
        add("resource.k8s.io", ["v1beta1"], ["ResourceSlice"], "resource.k8s.io", version, _dra_slice_v1beta1,
            "v1beta1 is off by default from 1.34")
    return table


KNOWN_CONVERSIONS: tuple[KnownConversion, ...] = tuple(_conversions())

#: (group, kind) with no successor API at all
NO_SUCCESSOR: dict[tuple[str, str], str] = {
    ("policy", "PodSecurityPolicy"): "PodSecurityPolicy was removed in Kubernetes 1.25 without a successor API; "
    "use Pod Security Admission (namespace labels pod-security.kubernetes.io/*) or a policy engine",
    ("extensions", "PodSecurityPolicy"): "PodSecurityPolicy was removed in Kubernetes 1.25 without a successor "
    "API; use Pod Security Admission (namespace labels pod-security.kubernetes.io/*) or a policy engine",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "apiextensions.k8s.io/v1beta1 CRDs need a structural "
    "schema and other changes in v1 that cannot be derived automatically; convert the CRD by hand",
}


# -------------------------------------------------------------------- decide


def _served_versions(served: ServedVersions, group: str, kind: str) -> Sequence[str]:
    return served.get(group, {}).get(kind, ())


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def decide_version(
    api_version: str,
    kind: str,
    served: ServedVersions,
    *,
    assume_compatible_versions: bool = False,
) -> VersionDecision:
    """Whether ``kind`` at ``api_version`` can be created on the target, and as what.

    ``assume_compatible_versions`` lets an unknown pair of versions of the same
    group (typically a custom resource) be treated as having the same schema.
    """
    group, version = split_api_version(api_version)
    here = _served_versions(served, group, kind)
    if version in here:
        return VersionDecision(VersionVerdict.SERVED, api_version, kind, "served by the target",
                               api_version)
    known = [c for c in KNOWN_CONVERSIONS
             if c.source_group == group and version in c.source_versions and c.kind == kind]
    for conversion in known:
        if conversion.target_version in _served_versions(served, conversion.target_group, kind):
            target = _api_version(conversion.target_group, conversion.target_version)
            return VersionDecision(VersionVerdict.CONVERT, api_version, kind,
                                   f"{api_version} {kind} {conversion.note}; converted to {target}", target)
    if known:
        targets = ", ".join(sorted({_api_version(c.target_group, c.target_version) for c in known}))
        return VersionDecision(VersionVerdict.NOT_CONVERTIBLE, api_version, kind,
                               f"not convertible: {api_version} is not served and neither is {targets}")
    if (group, kind) in NO_SUCCESSOR:
        return VersionDecision(VersionVerdict.NOT_CONVERTIBLE, api_version, kind,
                               f"not convertible: {NO_SUCCESSOR[(group, kind)]}")
    if here:
        if assume_compatible_versions:
            target = _api_version(group, here[0])
            return VersionDecision(VersionVerdict.CONVERT, api_version, kind,
                                   f"{api_version} not served; assumed compatible with {target}", target)
        return VersionDecision(
            VersionVerdict.NOT_CONVERTIBLE, api_version, kind,
            f"not convertible: the target serves {kind} only as {', '.join(_api_version(group, v) for v in here)} "
            f"and no conversion from {api_version} is known (assume_compatible_versions would treat them as equal)",
        )
    return VersionDecision(
        VersionVerdict.NOT_CONVERTIBLE, api_version, kind,
        f"not convertible: the target does not serve {kind} in group {group or 'core'} "
        "(is its CustomResourceDefinition or API extension installed?)",
    )


def convert_manifest(
    manifest: Manifest, served: ServedVersions, *, assume_compatible_versions: bool = False
) -> ConversionResult:
    """Decide for ``manifest`` and, when converting, return a converted copy."""
    ref = ref_of(manifest)
    api_version = str(manifest["apiVersion"])
    decision = decide_version(api_version, ref.kind, served, assume_compatible_versions=assume_compatible_versions)
    if decision.verdict is VersionVerdict.SERVED:
        return ConversionResult(ref, decision, manifest)
    if decision.verdict is VersionVerdict.NOT_CONVERTIBLE or decision.target_api_version is None:
        return ConversionResult(ref, decision, None)
    group, version = split_api_version(api_version)
    target_group, target_version = split_api_version(decision.target_api_version)
    converted = copy.deepcopy(manifest)
    converted["apiVersion"] = decision.target_api_version
    conversion = next(
        (c for c in KNOWN_CONVERSIONS if c.source_group == group and version in c.source_versions
         and c.kind == ref.kind and c.target_group == target_group and c.target_version == target_version),
        None,
    )
    if conversion is None:  # assumed compatible
        return ConversionResult(ref, decision, converted)
    try:
        notes = conversion.convert(converted)
    except _NotConvertible as exc:
        failed = VersionDecision(VersionVerdict.NOT_CONVERTIBLE, api_version, ref.kind,
                                 f"not convertible to {decision.target_api_version}: {exc}")
        return ConversionResult(ref, failed, None)
    return ConversionResult(ref, decision, converted, tuple(notes))


@dataclass(frozen=True)
class VersionReport:
    manifests: list[Manifest] = field(default_factory=list)
    converted: list[ConversionResult] = field(default_factory=list)
    not_convertible: list[ConversionResult] = field(default_factory=list)


def convert_manifests(
    manifests: Iterable[Manifest], served: ServedVersions, *, assume_compatible_versions: bool = False
) -> VersionReport:
    """Convert a restore set: the manifests to create, and what was converted or left out and why."""
    report = VersionReport()
    for manifest in manifests:
        result = convert_manifest(manifest, served, assume_compatible_versions=assume_compatible_versions)
        if result.manifest is None:
            report.not_convertible.append(result)
            continue
        report.manifests.append(result.manifest)
        if result.decision.verdict is VersionVerdict.CONVERT:
            report.converted.append(result)
    return report
