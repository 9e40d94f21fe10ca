"""Where a restore starts: choosing a restore point and loading the part of it that is wanted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubekeep.backup.manifests import read_manifests
from kubekeep.backup.restore_point import RestorePointRecord, find_restore_point, read_restore_point
from kubekeep.catalog import Catalog, latest_restore_point
from kubekeep.repo.repository import Repository


class RestorePointNotFoundError(LookupError):
    pass


def choose_restore_point(repo: Repository, *, restore_point: str | None = None, app: str | None = None,
                         before: datetime | None = None, catalog: Catalog | None = None
                         ) -> tuple[str, RestorePointRecord]:
    """By id, or the latest succeeded point of ``app`` (optionally finished before ``before``).

    The catalog answers "latest"; the repository is the truth (the catalog is a
    rebuildable index), so the chosen point is then read from the repository.
    """
    if restore_point:
        try:
            return find_restore_point(repo, restore_point)
        except LookupError:
            raise RestorePointNotFoundError(f"restore point {restore_point!r} not found in {repo.storage.url}") \
                from None
    if not app:
        raise ValueError("give a restore point id, or an app (for its latest restore point)")
    if catalog is not None:
        point = latest_restore_point(catalog, app, before=before)
        if point is not None:
            return point.snapshot_id, read_restore_point(repo, point.snapshot_id)
    # no catalog (or it is behind): scan restore-point snapshots
    best: tuple[str, RestorePointRecord] | None = None
    for info in repo.snapshots(tags=["kubekeep:restore-point", f"app:{app}"]):
        if info.metadata.get("status") != "succeeded":
            continue
        record = read_restore_point(repo, info.id)
        if before is not None and datetime.fromisoformat(record.finished_at) >= before:
            continue
        if best is None or record.finished_at > best[1].finished_at:
            best = (info.id, record)
    if best is None:
        when = f" before {before.isoformat()}" if before else ""
        raise RestorePointNotFoundError(f"no succeeded restore point of app {app!r}{when} in {repo.storage.url}")
    return best


@dataclass(frozen=True)
class ObjectFilter:
    """The part of a restore point to restore (empty fields select everything)."""

    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    pvcs: tuple[str, ...] = ()

    @classmethod
    def parse_labels(cls, selector: str | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in (selector or "").split(","):
            if not part.strip():
                continue
            if "=" not in part or "!=" in part:
                raise ValueError(f"label selector {selector!r}: only key=value terms are supported here")
            k, v = part.split("=", 1)
            out[k.strip().rstrip("=")] = v.strip().lstrip("=")
        return out

    def wants(self, obj: dict[str, Any]) -> bool:
        md = obj.get("metadata") or {}
        kind = str(obj.get("kind", ""))
        if self.pvcs:
            # a single PVC restore takes that PVC and its bound PV, nothing else
            if kind == "PersistentVolumeClaim":
                return md.get("name") in self.pvcs
            if kind == "PersistentVolume":
                return (obj.get("spec") or {}).get("claimRef", {}).get("name") in self.pvcs
            return False
        if self.kinds and kind.lower() not in {k.lower() for k in self.kinds} and \
                f"{kind}.{obj.get('apiVersion', '').split('/')[0]}".lower() not in {k.lower() for k in self.kinds}:
            return False
        if self.names and md.get("name") not in self.names:
            return False
        if self.namespaces and md.get("namespace") and md.get("namespace") not in self.namespaces:
            return False
        labels = md.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())


def load_manifests(repo: Repository, record: RestorePointRecord, selection: ObjectFilter | None = None
                   ) -> Iterator[dict[str, Any]]:
    for obj, _line in read_manifests(repo, record.manifest_snapshot):
        if selection is None or selection.wants(obj):
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
