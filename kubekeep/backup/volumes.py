"""Volume data: find where a PVC's files are reachable and export them into the repository.

The direct path reads the files from the worker: hostPath and local PVs by
their path, NFS PVs through a mount table (``server:/export`` -> local mount
point) given by the worker's configuration. Which path applies is decided by
kubekeep.backup.csi.volume_method; the CSI path (VolumeSnapshot + mover Job)
lives in kubekeep.backup.csi.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kubekeep.repo.protocols import ProgressFn
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention
from kubekeep.restorepoint import VOLUME_TAG, VolumeRecord

from .csi import VolumeMethod

_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
          "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


class VolumeError(Exception):
    """A volume that cannot be exported (with the reason)."""


def parse_quantity(value: str | None) -> int:
    """Bytes of a Kubernetes quantity such as ``1Gi`` or ``500M`` (0 when absent)."""
    if not value:
        return 0
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * _UNITS[suffix])
    return int(float(value))


def local_path(method: VolumeMethod, nfs_mounts: Mapping[str, str] | None = None) -> Path | None:
    """Where this worker reads a direct-path volume: its hostPath/local path, or an NFS export through
    the worker's mount table (``server:/export`` -> local mount point); None when not reachable."""
    if method.method != "direct" or not method.path:
        return None
    if method.volume_type != "nfs":
        return Path(method.path)
    export = f"{method.nfs_server}:{method.path.rstrip('/') or '/'}"
    for remote, local in (nfs_mounts or {}).items():
        remote_norm = remote.rstrip("/") or remote
        if export == remote_norm or export.startswith(remote_norm + "/"):
            return Path(local) / export[len(remote_norm):].lstrip("/")
    return None


def find_volume_snapshot(repo: Repository, namespace: str, pvc: str, restore_point_id: str) -> str | None:
    """The snapshot a mover wrote for this PVC in this restore point (the CSI path's result)."""
    for info in reversed(repo.snapshots(tags=[VOLUME_TAG])):
        if info.metadata.get("pvc") == f"{namespace}/{pvc}" and info.metadata.get("restore_point") == restore_point_id:
            return info.id
    return None


def latest_volume_snapshot(repo: Repository, namespace: str, pvc: str) -> str | None:
    """The newest earlier snapshot of the same PVC: the parent of an incremental export."""
    key = f"{namespace}/{pvc}"
    candidates = [i for i in repo.snapshots(tags=[VOLUME_TAG]) if i.metadata.get("pvc") == key]
    return candidates[-1].id if candidates else None


def export_directory(repo: Repository, source: Path, *, namespace: str, pvc: str, storage_class: str | None,
                     size_bytes: int, restore_point_id: str, method: str = "direct",
                     retention: Retention | None = None, progress: ProgressFn | None = None,
                     incremental: bool = True) -> VolumeRecord:
    """Back up one volume's directory as a snapshot (incremental from the PVC's previous one)."""
    if not source.is_dir():
        raise VolumeError(f"volume {namespace}/{pvc}: {source} is not a readable directory on this worker")
    if not os.access(source, os.R_OK | os.X_OK):
        raise VolumeError(f"volume {namespace}/{pvc}: no permission to read {source}")
    parent = latest_volume_snapshot(repo, namespace, pvc) if incremental else None
    result = repo.backup(source, parent=parent, tags=[VOLUME_TAG, f"pvc:{namespace}/{pvc}"],
                         metadata={"pvc": f"{namespace}/{pvc}", "restore_point": restore_point_id,
                                   "method": method},
                         retention=retention, progress=progress)
    if result.errors:
        raise VolumeError(f"volume {namespace}/{pvc}: {len(result.errors)} file(s) could not be read: "
                          + "; ".join(result.errors[:5]))
    stats = result.stats
    return VolumeRecord(namespace=namespace, pvc=pvc, storage_class=storage_class, size_bytes=size_bytes,
                        method=method, snapshot_id=result.snapshot_id, files=stats.files,
                        logical_bytes=stats.bytes, stored_bytes=stats.new_stored_bytes)
