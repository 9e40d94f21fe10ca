"""Objects the app's pods need that neither the restore point nor the target holds (warnings).

A pod template names a PriorityClass or RuntimeClass (pods are rejected by
admission without it), a ServiceAccount (likewise), ConfigMaps and Secrets
(volumes, ``envFrom``, ``env[].valueFrom``, ``imagePullSecrets``; optional ones
are not counted) and PersistentVolumeClaims (pods stay Pending). A reference is
fine when the plan creates the object or the target has it; objects every
namespace gets from the target's controllers (the ``default`` ServiceAccount,
``kube-root-ca.crt``) always exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubekeep.manifest import Manifest, containers_of, dig, pod_spec_of
from kubekeep.restore.actions.configmap import ROOT_CA_CONFIGMAP

from ..model import PlanItem, Severity, Topic
from .context import CheckContext

#: (group, kind, namespace or "", name)
Reference = tuple[str, str, str, str]

_REJECTED = "its pods are rejected by admission"
_NOT_STARTED = "its pods do not start"
_WHAT = {("scheduling.k8s.io", "PriorityClass"): _REJECTED, ("node.k8s.io", "RuntimeClass"): _REJECTED,
         ("", "ServiceAccount"): _REJECTED, ("", "ConfigMap"): _NOT_STARTED, ("", "Secret"): _NOT_STARTED,
         ("", "PersistentVolumeClaim"): "its pods stay Pending"}
ALWAYS_THERE = {("", "ServiceAccount", "default"), ("", "ConfigMap", ROOT_CA_CONFIGMAP)}


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _volume_refs(volume: Any) -> Iterator[tuple[str, str | None, bool]]:
    """(kind, name, optional) of what one pod volume names."""
    if not isinstance(volume, dict):
        return
    if isinstance(volume.get("configMap"), dict):
        yield "ConfigMap", _name(volume["configMap"].get("name")), bool(volume["configMap"].get("optional"))
    if isinstance(volume.get("secret"), dict):
        yield "Secret", _name(volume["secret"].get("secretName")), bool(volume["secret"].get("optional"))
    if isinstance(volume.get("persistentVolumeClaim"), dict):
        yield "PersistentVolumeClaim", _name(volume["persistentVolumeClaim"].get("claimName")), False
    for source in dig(volume, "projected", "sources") or ():
        if isinstance(source, dict):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if isinstance(source.get(key), dict):
                    yield kind, _name(source[key].get("name")), bool(source[key].get("optional"))


def references_of(manifest: Manifest, namespace: str) -> set[Reference]:
    """What the pods of ``manifest`` (a Pod or a workload) need to exist, optional references left out."""
    spec = pod_spec_of(manifest)
    if spec is None:
        return set()
    refs: set[tuple[str, str, str, str | None]] = {
        ("scheduling.k8s.io", "PriorityClass", "", _name(spec.get("priorityClassName"))),
        ("node.k8s.io", "RuntimeClass", "", _name(spec.get("runtimeClassName"))),
        ("", "ServiceAccount", namespace, _name(spec.get("serviceAccountName") or spec.get("serviceAccount"))),
    }
    for secret in spec.get("imagePullSecrets") or ():
        refs.add(("", "Secret", namespace, _name(dig(secret, "name"))))
    for volume in spec.get("volumes") or ():
        refs |= {("", kind, namespace, name) for kind, name, optional in _volume_refs(volume) if not optional}
    for container in containers_of(spec):
        for source in container.get("envFrom") or ():
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = dig(source, key)
                if isinstance(ref, dict) and not ref.get("optional"):
                    refs.add(("", kind, namespace, _name(ref.get("name"))))
        for env in container.get("env") or ():
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = dig(env, "valueFrom", key)
                if isinstance(ref, dict) and not ref.get("optional"):
                    refs.add(("", kind, namespace, _name(ref.get("name"))))
    return {(g, k, ns, n) for g, k, ns, n in refs if n is not None and (g, k, n) not in ALWAYS_THERE}


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    planned = {(o.ref.group, o.ref.kind, o.ref.namespace, o.ref.name) for o in ctx.prepared.objects}
    for obj in ctx.prepared.objects:
        missing = sorted(r for r in references_of(obj.target, obj.ref.namespace)
                         if r not in planned and r not in ctx.facts.existing)
        for group, kind, namespace, name in missing:
            what = f"{kind}{'.' + group if group else ''} {namespace + '/' if namespace else ''}{name}"
            yield PlanItem(Severity.WARNING, Topic.REFERENCES, str(obj.ref),
                           f"its pods need {what}, which neither the restore point nor the target holds: "
                           f"{_WHAT[(group, kind)]}",
                           "create it on the target before the cutover, or include it in the backup")
