"""Where a restore starts: the part of a restore point that is wanted.

Choosing the restore point itself is :mod:`kubekeep.restorepoint.choose` (shared with copy, verify and
retention); which objects a restore takes is a :class:`~kubekeep.restore.transforms.Selector`, the same
type that says which objects a transform touches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from kubekeep.manifest import Manifest, dig
from kubekeep.repo.repository import Repository
from kubekeep.restorepoint import RestorePointRecord, read_manifests

from .transforms import Selector


def claim_wanted(manifest: Manifest, pvcs: Collection[str]) -> bool:
    """Whether ``manifest`` is one of the claims ``pvcs`` (``namespace/name``, or a bare name: any
    namespace) or the PersistentVolume bound to one of them: what a single-claim restore takes."""
    kind = manifest.get("kind")
    if kind == "PersistentVolumeClaim":
        namespace, name = dig(manifest, "metadata", "namespace"), dig(manifest, "metadata", "name")
    elif kind == "PersistentVolume":
        namespace, name = dig(manifest, "spec", "claimRef", "namespace"), dig(manifest, "spec", "claimRef", "name")
    else:
        return False
    return f"{namespace}/{name}" in pvcs or name in pvcs


def load_manifests(repo: Repository, record: RestorePointRecord, selector: Selector | None = None, *,
                   pvcs: Collection[str] = ()) -> Iterator[Manifest]:
    """The restore point's manifests that ``selector`` matches; with ``pvcs``, only those claims and
    their volumes (:func:`claim_wanted`)."""
    for obj, _line in read_manifests(repo, record.manifest_snapshot):
        if pvcs:
            if claim_wanted(obj, pvcs):
                yield obj
        elif selector is None or selector.matches(obj):
            yield obj


PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def drop_reprovisioned_volumes(manifests: list[dict[str, Any]], claims_with_data: set[tuple[str, str]]
                               ) -> tuple[list[dict[str, Any]], list[str]]:
    """Leave out dynamically provisioned PVs whose claim's data the restore point holds.

    Their claim gets a fresh volume from its StorageClass's provisioner on the
    target and Kubekeep fills it from the snapshot; restoring the old PV object
    would point the claim at a volume that is gone, or that still belongs to the
    original claim (a copy into another namespace). Statically provisioned PVs
    (NFS exports, pre-created local volumes) are kept: they name real storage.
    """
    kept, skipped = [], []
    for m in manifests:
        if m.get("kind") == "PersistentVolume" and m.get("apiVersion") == "v1":
            annotations = (m.get("metadata") or {}).get("annotations") or {}
            claim = (m.get("spec") or {}).get("claimRef") or {}
            if PROVISIONED_BY in annotations and (claim.get("namespace"), claim.get("name")) in claims_with_data:
                skipped.append(f"PersistentVolume {m['metadata']['name']}: dynamically provisioned; its claim "
                               f"{claim.get('namespace')}/{claim.get('name')} gets a new volume filled from the "
                               "snapshot")
                continue
        kept.append(m)
    return kept, skipped
