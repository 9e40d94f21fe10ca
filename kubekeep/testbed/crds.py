"""Minimal CustomResourceDefinitions the test bed installs for features it simulates.

Only the API surface is real (groups, versions, kinds, scopes); the schemas are
open (``x-kubernetes-preserve-unknown-fields``) because nothing here validates
them — the controllers that would are played by kwok or by the tests.

- ``kwok.x-k8s.io/v1alpha1`` Exec and ClusterExec: kwok reads them (``--enable-crds``)
  to run ``pods/exec`` requests as local commands.
- ``snapshot.storage.k8s.io/v1`` VolumeSnapshot, VolumeSnapshotContent and
  VolumeSnapshotClass: the CSI snapshot API (no snapshot controller and no CSI
  driver run in the test bed; tests act as the controller).
"""

from __future__ import annotations

import time
from typing import Any

from kubekeep.cluster import ApiError, Cluster, has_condition

JSON = dict[str, Any]

KWOK_GROUP = "kwok.x-k8s.io"
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"


def crd_manifest(group: str, kind: str, *, plural: str | None = None, namespaced: bool = True,
                 version: str = "v1", spec_properties: JSON | None = None, status: bool = False,
                 short_names: tuple[str, ...] = (), labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None) -> JSON:
    """A CustomResourceDefinition serving one version of ``kind`` (the one builder of the test bed and the tests).

    ``spec_properties``: the schema of ``spec`` (None: an open schema that keeps any field); ``status``:
    a status subresource (and an open ``status`` in the schema).
    """
    plural = plural or kind.lower() + "s"
    schema: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if spec_properties is not None:
        schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": spec_properties}}}
        if status:
            schema["properties"]["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    served: JSON = {"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if status:
        served["subresources"] = {"status": {}}
    names: JSON = {"plural": plural, "singular": kind.lower(), "kind": kind}
    if short_names:
        names["shortNames"] = list(short_names)
    annotations = dict(annotations or {})
    if group.endswith(".k8s.io"):
        # *.k8s.io groups are protected: the API server insists on an approval annotation
        annotations.setdefault("api-approved.kubernetes.io", "unapproved, test bed stand-in for the "
                               "kubernetes-csi/external-snapshotter CRDs")
    metadata: JSON = {"name": f"{plural}.{group}"}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": metadata,
            "spec": {"group": group, "scope": "Namespaced" if namespaced else "Cluster", "names": names,
                     "versions": [served]}}


def _crd(group: str, kind: str, plural: str, *, namespaced: bool, status: bool = False,
         short_names: tuple[str, ...] = ()) -> JSON:
    return crd_manifest(group, kind, plural=plural, namespaced=namespaced, status=status, short_names=short_names,
                        version="v1alpha1" if group == KWOK_GROUP else "v1",
                        labels={"testbed.kubekeep.io/crd": "true"})


def kwok_exec_crds() -> list[JSON]:
    return [
        _crd(KWOK_GROUP, "Exec", "execs", namespaced=True),
        _crd(KWOK_GROUP, "ClusterExec", "clusterexecs", namespaced=False),
    ]


def volume_snapshot_crds() -> list[JSON]:
    return [
        _crd(SNAPSHOT_GROUP, "VolumeSnapshotClass", "volumesnapshotclasses", namespaced=False,
             short_names=("vsclass",)),
        _crd(SNAPSHOT_GROUP, "VolumeSnapshotContent", "volumesnapshotcontents", namespaced=False, status=True,
             short_names=("vsc",)),
        _crd(SNAPSHOT_GROUP, "VolumeSnapshot", "volumesnapshots", namespaced=True, status=True,
             short_names=("vs",)),
    ]


def install(cluster: Cluster, crds: list[JSON], *, timeout: float = 30.0) -> None:
    """Create the CRDs (existing ones are kept) and wait until each is Established and discoverable.

    One still being deleted (a test module's teardown deletes without waiting) is waited for and created
    anew: kept, it would vanish under its new user."""
    for crd in crds:
        api_version, kind, name = crd["apiVersion"], crd["kind"], crd["metadata"]["name"]
        existing = cluster.get_or_none(api_version, kind, name)
        if existing is not None and existing.get("metadata", {}).get("deletionTimestamp"):
            cluster.wait_for(api_version, kind, name, lambda o: o is None, timeout=timeout,
                             what="the CRD's earlier deletion finished")
            existing = None
        if existing is None:
            try:
                cluster.create(crd)
            except ApiError as exc:
                if not exc.conflict:
                    raise
    for crd in crds:
        cluster.wait_for(crd["apiVersion"], crd["kind"], crd["metadata"]["name"],
                         lambda o: has_condition(o, "Established"), timeout=timeout,
                         what="CRD Established")
    wanted = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    deadline = time.monotonic() + timeout
    while True:
        served = {(r.group, r.kind) for r in cluster.resources(refresh=True)}
        if wanted <= served:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not discoverable within {timeout:.0f}s: {sorted(wanted - served)}")
        time.sleep(0.2)
