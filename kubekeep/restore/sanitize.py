"""Strip what the source API server populated, so a manifest can be created again.

A manifest read from a cluster carries fields the server owns (uid,
resourceVersion, status, ...) and values it assigned (a Service's cluster IP,
a NodePort, the node a Pod ran on, the uid of the claim a PV was bound to).
Sent back as they are, they make a create fail (``resourceVersion`` must be
empty) or silently pin the object to something that no longer exists.

Run this after :mod:`owners` (which matches owners by uid) and before
transforms. Functions never modify their input; they return copies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubekeep.manifest import Manifest, dig, metadata_of, split_api_version

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)

#: annotations recording a binding decision of the source cluster's PV controller
PVC_BINDING_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
)
PV_BINDING_ANNOTATIONS = ("pv.kubernetes.io/bound-by-controller",)

#: labels the Job controller sets from the Job's uid; a new Job gets a new uid
JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


class PvcVolumeName(StrEnum):
    """What to do with ``spec.volumeName`` of a PersistentVolumeClaim."""

    #: keep it when the named PV is restored too (static binding), drop it otherwise
    AUTO = "auto"
    KEEP = "keep"
    DROP = "drop"


@dataclass(frozen=True)
class SanitizeOptions:
    preserve_node_ports: bool = False
    keep_last_applied: bool = False
    pvc_volume_name: PvcVolumeName = PvcVolumeName.AUTO
    #: ownerReferences point at uids of the source cluster; the garbage collector
    #: deletes objects whose owners do not exist, so by default they are dropped
    keep_owner_references: bool = False
    #: kinds (``Kind.group``, ``Kind`` for the core group) whose ``status`` is kept, to be restored through
    #: the status subresource (Velero's ``--status-include-resources``); every other status is dropped
    keep_status: frozenset[str] = frozenset()


def sanitize_manifests(
    manifests: Iterable[Manifest], options: SanitizeOptions | None = None
) -> list[Manifest]:
    """Sanitize a whole restore set (PVC handling depends on which PVs are in it)."""
    options = options or SanitizeOptions()
    items = list(manifests)
    restored_pvs = {
        str(dig(m, "metadata", "name"))
        for m in items
        if m.get("kind") == "PersistentVolume" and split_api_version(str(m.get("apiVersion", "")))[0] == ""
    }
    return [sanitize_manifest(m, options, restored_pvs=restored_pvs) for m in items]


def sanitize_manifest(
    manifest: Manifest,
    options: SanitizeOptions | None = None,
    *,
    restored_pvs: Iterable[str] | None = None,
) -> Manifest:
    """A copy of ``manifest`` without server-populated fields.

    ``restored_pvs`` names the PersistentVolumes restored alongside (for
    ``PvcVolumeName.AUTO``); None means "unknown", treated as none.
    """
    options = options or SanitizeOptions()
    out = copy.deepcopy(manifest)
    metadata = metadata_of(out)
    for name in SERVER_METADATA:
        metadata.pop(name, None)
    if not options.keep_owner_references:
        metadata.pop("ownerReferences", None)
    group, _ = split_api_version(str(out.get("apiVersion", "")))
    kind = out.get("kind")
    if not (out.get("status") and group_kind(group, str(kind)) in options.keep_status):
        out.pop("status", None)

    last_applied = _last_applied(metadata)
    if group == "":
        if kind == "Service":
            _sanitize_service(out, last_applied, options)
        elif kind == "PersistentVolume":
            _sanitize_pv(out)
        elif kind == "PersistentVolumeClaim":
            _sanitize_pvc(out, options, set(restored_pvs or ()))
        elif kind == "Pod":
            _sanitize_pod(out)
    elif group == "batch" and kind == "Job":
        _sanitize_job(out)

    if not options.keep_last_applied:
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
    _drop_empty(metadata, "annotations")
    _drop_empty(metadata, "labels")
    return out


def group_kind(group: str, kind: str) -> str:
    return f"{kind}.{group}" if group else kind


def _drop_empty(mapping: dict[str, Any], key: str) -> None:
    if key in mapping and not mapping[key]:
        del mapping[key]


def _last_applied(metadata: dict[str, Any]) -> dict[str, Any] | None:
    raw = (metadata.get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(raw, str):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _explicit_node_ports(last_applied: dict[str, Any] | None) -> set[int]:
    """NodePorts the user wrote down (per kubectl's last-applied record); the rest were assigned."""
    ports = dig(last_applied, "spec", "ports") or []
    return {p["nodePort"] for p in ports if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}


def _sanitize_service(service: Manifest, last_applied: dict[str, Any] | None, options: SanitizeOptions) -> None:
    spec = service.get("spec")
    if not isinstance(spec, dict):
        return
    # "None" makes a headless Service: a choice, not an assignment
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
    cluster_ips = spec.get("clusterIPs")
    if cluster_ips is not None:
        if cluster_ips == ["None"] or spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            spec.pop("clusterIPs", None)
    if options.preserve_node_ports:
        return
    explicit = _explicit_node_ports(last_applied)
    for port in spec.get("ports") or ():
        if isinstance(port, dict) and "nodePort" in port and port["nodePort"] not in explicit:
            del port["nodePort"]
    health = spec.get("healthCheckNodePort")
    if health is not None and health != dig(last_applied, "spec", "healthCheckNodePort"):
        del spec["healthCheckNodePort"]


def _sanitize_pv(pv: Manifest) -> None:
    claim_ref = dig(pv, "spec", "claimRef")
    if isinstance(claim_ref, dict):
        # keep namespace/name so the PV binds to the restored claim, not to a stale uid
        for name in ("uid", "resourceVersion"):
            claim_ref.pop(name, None)
    annotations = dig(pv, "metadata", "annotations")
    if isinstance(annotations, dict):
        for name in PV_BINDING_ANNOTATIONS:
            annotations.pop(name, None)


def _sanitize_pvc(pvc: Manifest, options: SanitizeOptions, restored_pvs: set[str]) -> None:
    spec = pvc.get("spec")
    annotations = dig(pvc, "metadata", "annotations")
    if isinstance(annotations, dict):
        # the node the source scheduler picked does not exist on the target
        annotations.pop("volume.kubernetes.io/selected-node", None)
    if not isinstance(spec, dict) or not spec.get("volumeName"):
        return
    keep = options.pvc_volume_name is PvcVolumeName.KEEP or (
        options.pvc_volume_name is PvcVolumeName.AUTO and spec["volumeName"] in restored_pvs
    )
    if keep:
        return
    # the PV is not restored: let the target provision a new volume for the claim
    del spec["volumeName"]
    if isinstance(annotations, dict):
        for name in PVC_BINDING_ANNOTATIONS:
            annotations.pop(name, None)


def _sanitize_pod(pod: Manifest) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    spec.pop("nodeName", None)
    # ephemeral containers cannot be set on create (only through the subresource)
    spec.pop("ephemeralContainers", None)
    # admission resolves priority from priorityClassName and rejects a mismatch
    if spec.get("priorityClassName"):
        spec.pop("priority", None)


def _sanitize_job(job: Manifest) -> None:
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    # a generated selector matches the old Job's uid; the API server generates a new one
    spec.pop("selector", None)
    labels = dig(spec, "template", "metadata", "labels")
    if isinstance(labels, dict):
        for name in JOB_UID_LABELS:
            labels.pop(name, None)
