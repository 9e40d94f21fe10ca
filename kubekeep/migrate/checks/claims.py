"""The PersistentVolumeClaims a restore creates, directly or through templates, as one list.

A claim is a PersistentVolumeClaim of the plan, a StatefulSet's volumeClaimTemplate
(standing for one claim per replica, ``<template>-<statefulset>-<ordinal>``) or a
generic ephemeral volume's template (one claim per pod). Each is paired with the
same claim as the restore point stores it, so checks see both the class it had
and the class it gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubekeep.manifest import Manifest, dig, pod_spec_of
from kubekeep.restore.transforms import STORAGE_CLASS_ANNOTATION

from ..planner import PlannedObject
from .context import CheckContext


@dataclass(frozen=True)
class Claim:
    #: what the plan shows (``PersistentVolumeClaim shop/data``, ``StatefulSet.apps shop/db template data``)
    subject: str
    namespace: str
    #: the class the restore point's claim names: None = no class (the default class), "" = no dynamic class
    source_class: str | None
    target_class: str | None
    #: the storage request (a quantity), None when the claim has none
    request: str | None
    #: claim names on the target it stands for (a template: one per replica); empty for ephemeral volumes
    names: tuple[str, ...]
    #: the claim names in the restore point (to find their volume data)
    source_names: tuple[str, ...]
    source_namespace: str
    #: a claim bound to a named PersistentVolume
    volume_name: str | None = None
    ephemeral: bool = False


def class_of(claim: Any) -> str | None:
    """The StorageClass a claim (or claim template) names: ``spec.storageClassName``, else the beta
    annotation; None when it names none."""
    name = dig(claim, "spec", "storageClassName")
    if isinstance(name, str):
        return name
    annotation = (dig(claim, "metadata", "annotations") or {}).get(STORAGE_CLASS_ANNOTATION)
    return annotation if isinstance(annotation, str) else None


def _request(claim: Any) -> str | None:
    value = dig(claim, "spec", "resources", "requests", "storage")
    return str(value) if value is not None else None


def _templates(manifest: Manifest) -> list[Any]:
    return [t for t in dig(manifest, "spec", "volumeClaimTemplates") or () if isinstance(t, dict)]


def _ephemeral(manifest: Manifest) -> list[tuple[str, Any]]:
    spec = pod_spec_of(manifest)
    out = []
    for volume in (spec or {}).get("volumes") or ():
        template = dig(volume, "ephemeral", "volumeClaimTemplate")
        if isinstance(template, dict):
            out.append((str(volume.get("name")), template))
    return out


def _replicas(manifest: Manifest) -> int:
    replicas = dig(manifest, "spec", "replicas")
    return replicas if isinstance(replicas, int) and replicas >= 0 else 1


def claims_of(obj: PlannedObject) -> Iterator[Claim]:
    ref, src_ref = obj.ref, obj.source_ref
    if (ref.group, ref.kind) == ("", "PersistentVolumeClaim"):
        volume = dig(obj.target, "spec", "volumeName")
        yield Claim(str(ref), ref.namespace, class_of(obj.source), class_of(obj.target), _request(obj.target),
                    (ref.name,), (src_ref.name,), src_ref.namespace, volume if isinstance(volume, str) else None)
        return
    if (ref.group, ref.kind) == ("apps", "StatefulSet"):
        replicas = _replicas(obj.target)
        for source, target in zip(_templates(obj.source), _templates(obj.target), strict=False):
            template = str(dig(target, "metadata", "name"))
            src_template = str(dig(source, "metadata", "name"))
            yield Claim(f"{ref} template {template}", ref.namespace, class_of(source), class_of(target),
                        _request(target), tuple(f"{template}-{ref.name}-{i}" for i in range(replicas)),
                        tuple(f"{src_template}-{src_ref.name}-{i}" for i in range(replicas)), src_ref.namespace)
    sources = dict(_ephemeral(obj.source))
    for name, target in _ephemeral(obj.target):
        yield Claim(f"{ref} ephemeral volume {name}", ref.namespace, class_of(sources.get(name)), class_of(target),
                    _request(target), (), (), src_ref.namespace, ephemeral=True)


def all_claims(ctx: CheckContext) -> list[Claim]:
    """Every claim of the plan; a claim that is both a PersistentVolumeClaim of the plan and stands for
    a StatefulSet template's replica is listed once (as the PersistentVolumeClaim)."""
    out: list[Claim] = []
    explicit: set[tuple[str, str]] = set()
    for obj in ctx.prepared.objects:
        for claim in claims_of(obj):
            if not claim.ephemeral and claim.subject.startswith("PersistentVolumeClaim "):
                explicit.add((claim.namespace, claim.names[0]))
            out.append(claim)
    deduplicated = []
    for claim in out:
        if claim.names and not claim.subject.startswith("PersistentVolumeClaim "):
            names = tuple(n for n in claim.names if (claim.namespace, n) not in explicit)
            if not names:
                continue
            keep = [i for i, n in enumerate(claim.names) if (claim.namespace, n) not in explicit]
            claim = Claim(claim.subject, claim.namespace, claim.source_class, claim.target_class, claim.request,
                          names, tuple(claim.source_names[i] for i in keep), claim.source_namespace)
        deduplicated.append(claim)
    return deduplicated
