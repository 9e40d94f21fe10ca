"""The restore-point record: what ties a backup run's snapshots together, and how it is written and read.

A backup run writes, in this order: one snapshot per volume, one snapshot of
the manifests, and last a small restore-point snapshot whose stream
``restore-point.json`` names all of them. A restore point exists once that
last snapshot is written; catalog rows come after it and can be rebuilt from
these records (:mod:`kubekeep.restorepoint.catalog`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention


class RestorePointNotFoundError(LookupError):
    """No restore point matches (a mistyped id, an app without succeeded points, a wrong location)."""


RESTORE_POINT_STREAM = "restore-point.json"
RESTORE_POINT_TAG = "kubekeep:restore-point"
MANIFESTS_TAG = "kubekeep:manifests"
VOLUME_TAG = "kubekeep:volume"
FORMAT = 1


@dataclass
class VolumeRecord:
    namespace: str
    pvc: str
    storage_class: str | None
    size_bytes: int
    method: str
    snapshot_id: str | None
    files: int = 0
    logical_bytes: int = 0
    stored_bytes: int = 0
    error: str | None = None


@dataclass
class RestorePointRecord:
    id: str
    app: str
    cluster: str
    namespaces: list[str]
    started_at: str
    finished_at: str
    status: str  # a RestorePointStatus value
    location: str
    manifest_snapshot: str
    policy: str | None = None
    status_reason: str | None = None
    object_count: int = 0
    kind_counts: dict[str, int] = field(default_factory=dict)
    volumes: list[VolumeRecord] = field(default_factory=list)
    type_errors: list[str] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    retain_until: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: CustomResourceDefinitions in the restore point -> why each was included
    crds: dict[str, list[str]] = field(default_factory=dict)
    #: when the backup scaled the app's workloads to zero (ISO 8601 UTC); None: nothing was quiesced
    quiesced_at: str | None = None
    format: int = FORMAT

    def volume(self, pvc: str) -> VolumeRecord:
        """The data of the claim ``pvc`` (``namespace/name``); ValueError naming the claims it has when the
        restore point holds no data for it."""
        namespace, _, name = pvc.partition("/")
        for v in self.volumes:
            if v.namespace == namespace and v.pvc == name and v.snapshot_id:
                return v
        have = ", ".join(f"{v.namespace}/{v.pvc}" for v in self.volumes if v.snapshot_id) or "none"
        raise ValueError(f"restore point {self.id} has no data for PVC {pvc} (it has: {have})")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RestorePointRecord:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"restore point record format {doc.get('format')!r} is not supported (want {FORMAT})")
        doc["volumes"] = [VolumeRecord(**v) for v in doc.get("volumes", [])]
        # fields added later are optional (defaults); fields a newer writer added are ignored
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def write_restore_point(repo: Repository, record: RestorePointRecord, *,
                        retention: Retention | None = None) -> str:
    """Write the restore-point snapshot (the commit point of a backup run); return its snapshot id."""
    result = repo.backup(streams={RESTORE_POINT_STREAM: [record.to_json()]},
                         tags=[RESTORE_POINT_TAG, f"app:{record.app}"],
                         metadata={"restore_point": record.id, "app": record.app, "status": record.status},
                         retention=retention)
    return result.snapshot_id


def read_restore_point(repo: Repository, snapshot_id: str) -> RestorePointRecord:
    return RestorePointRecord.from_json(b"".join(repo.read_stream(snapshot_id, RESTORE_POINT_STREAM)))
