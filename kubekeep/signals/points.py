"""Restore points as the signals step sees them (the adapter from the restore-point record)."""

from __future__ import annotations

from datetime import datetime

from kubekeep.restorepoint import RestorePointRecord

from .compute import PointRef, VolumeRef


def point_ref(record: RestorePointRecord) -> PointRef:
    """The :class:`PointRef` of a committed restore point (volumes without data are left out)."""
    return PointRef(
        id=record.id, app=record.app, finished_at=datetime.fromisoformat(record.finished_at),
        volumes=tuple(VolumeRef(v.namespace, v.pvc, v.snapshot_id) for v in record.volumes if v.snapshot_id),
        objects_complete=not record.type_errors)
