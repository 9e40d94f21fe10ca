"""Restore points made without a cluster: a volume snapshot, a manifest snapshot and the record."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from kubekeep.repo.repository import Repository
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    VOLUME_TAG,
    RestorePointRecord,
    VolumeRecord,
    manifest_stream,
    write_restore_point,
)


def make_point(repo: Repository, volume: Path, rp_id: str, app: str = "shop", retention: object = None,
               retain_until: str | None = None) -> str:
    """Back up ``volume`` and two manifests as restore point ``rp_id``; return its record's snapshot id."""
    vol = repo.backup(volume, tags=[VOLUME_TAG], metadata={"restore_point": rp_id}, retention=retention)  # type: ignore[arg-type]
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{rp_id}", "namespace": app}},
               {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": app}}]
    man = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(objects)}, tags=[MANIFESTS_TAG],
                      metadata={"restore_point": rp_id}, retention=retention)  # type: ignore[arg-type]
    now = datetime.now(UTC).isoformat()
    record = RestorePointRecord(
        id=rp_id, app=app, cluster="test", namespaces=[app], started_at=now, finished_at=now, status="succeeded",
        location=repo.storage.url, manifest_snapshot=man.snapshot_id, object_count=2,
        volumes=[VolumeRecord(namespace=app, pvc="data", storage_class=None, size_bytes=0, method="direct",
                              snapshot_id=vol.snapshot_id, files=vol.stats.files, logical_bytes=vol.stats.bytes,
                              stored_bytes=vol.stats.new_stored_bytes)],
        retain_until=retain_until)
    return write_restore_point(repo, record, retention=retention)  # type: ignore[arg-type]


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def dir_bytes(root: Path) -> int:
    return sum((Path(d) / f).stat().st_size for d, _s, fs in os.walk(root) for f in fs)
