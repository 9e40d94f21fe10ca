"""Restore points written the way a backup run writes them (volume snapshot, manifest snapshot, record
last, locked, catalog rows), with chosen start times, for retention tests. No cluster is needed: the
retention path reads only the repository and the catalog."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kubekeep.backup.volumes import export_directory
from kubekeep.catalog import Catalog
from kubekeep.repo.repository import Repository, Retention
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    catalog_rows,
    manifest_stream,
    write_restore_point,
)
from kubekeep.restorepoint.object_lock import apply_retention

CHUNKER = {"min_size": 1024, "avg_size": 4096, "max_size": 16384}
PACK_SIZE = 64 * 1024
UNIQUE_BYTES = 200_000
SHARED_BYTES = 100_000


@dataclass(frozen=True)
class WrittenPoint:
    id: str
    app: str
    started: datetime
    record_snapshot: str
    manifest_snapshot: str
    volume_snapshot: str
    #: sha256 of every file of the volume, by relative path
    digest: dict[str, str]

    @property
    def snapshots(self) -> list[str]:
        return [self.record_snapshot, self.manifest_snapshot, self.volume_snapshot]


def make_volume(root: Path, seed: int) -> dict[str, str]:
    """A volume with data shared by every point and data unique to this one (so prune has work)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "shared.bin").write_bytes(random.Random(0).randbytes(SHARED_BYTES))
    (root / "unique.bin").write_bytes(random.Random(seed).randbytes(UNIQUE_BYTES))
    (root / "seed.txt").write_text(str(seed))
    return digest_tree(root)


def digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def write_point(repo: Repository, catalog: Catalog, work: Path, *, app: str, started: datetime, seed: int,
                status: str = "succeeded", policy: str | None = "nightly",
                retention: Retention | None = None) -> WrittenPoint:
    point_id = f"{app}-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    source = work / f"vol-{point_id}"
    digest = make_volume(source, seed)
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": app, "name": f"cm-{seed}"},
                "data": {"seed": str(seed)}},
               {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": app, "name": "web"}}]
    manifests = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(objects)}, tags=[MANIFESTS_TAG, f"app:{app}"],
                            metadata={"restore_point": point_id, "app": app}, retention=retention)
    volume = export_directory(repo, source, namespace=app, pvc="data", storage_class="standard",
                              size_bytes=1 << 20, restore_point_id=point_id, retention=retention)
    record = RestorePointRecord(
        id=point_id, app=app, cluster="test", namespaces=[app], started_at=started.isoformat(),
        finished_at=(started + timedelta(minutes=3)).isoformat(), status=status, location=repo.storage.url,
        manifest_snapshot=manifests.snapshot_id, policy=policy, object_count=len(objects),
        volumes=[volume], retain_until=retention[1].isoformat() if retention else None,
        status_reason=None if status == "succeeded" else "a volume failed")
    record_sid = write_restore_point(repo, record, retention=retention)
    assert volume.snapshot_id is not None
    if retention is not None:
        report = apply_retention(repo, [manifests.snapshot_id, volume.snapshot_id, record_sid], retention)
        assert not report.errors, report.errors
    point, rows, volumes = catalog_rows(repo, record, record_sid)
    catalog.add_restore_point(point, rows, volumes)
    return WrittenPoint(point_id, app, started, record_sid, manifests.snapshot_id, volume.snapshot_id, digest)


def data_bytes(repo: Repository) -> int:
    """Bytes stored in packs (what prune reclaims)."""
    return sum(info.size for info in repo.storage.list("data/"))
