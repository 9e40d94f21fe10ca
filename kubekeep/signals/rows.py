"""PointSignals <-> rows of the catalog's ``signals`` table (one point row, one row per volume)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kubekeep.catalog import POINT_SUBJECT, SignalRow

from .objects import ObjectSignals
from .record import PointSignals
from .volume import VolumeSignals

_VOLUME_COUNTS = (
    "files", "previous_files", "directories", "previous_directories", "logical_bytes", "files_added",
    "files_changed", "files_deleted", "files_moved", "bytes_added", "bytes_changed", "changed_files_bytes",
    "bytes_deleted", "bytes_moved", "new_unique_bytes", "new_stored_bytes", "new_chunks", "new_chunk_bytes",
    "incompressible_chunks", "incompressible_bytes", "entropy_rise_files", "extensions_changed",
    "new_extension_files", "ransom_note_dirs",
)


def _ts(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def signal_rows(point: PointSignals) -> list[SignalRow]:
    finished = _ts(point.finished_at)
    assert finished is not None, "a signals record always has finished_at"
    common = {"restore_point_id": point.restore_point_id, "app": point.app, "finished_at": finished,
              "threshold": point.threshold, "computed_at": _ts(point.computed_at)}
    o = point.objects
    rows = [SignalRow(subject=POINT_SUBJECT, score=point.score, suspect=point.suspect, reasons=tuple(point.reasons),
                      previous_point_id=point.previous_point_id, baseline=tuple(point.baseline),
                      seconds=point.seconds, baseline_candidates=point.carried,
                      objects=o.objects if o else None, previous_objects=o.previous_objects if o else None,
                      objects_deleted=o.deleted if o else None,
                      previous_by_kind=dict(o.previous_by_kind) if o else None,
                      deleted_by_kind=dict(o.deleted_by_kind) if o else None,
                      deleted_examples=tuple(o.examples) if o else None, **common)]  # type: ignore[arg-type]
    for v in point.volumes:
        score = point.subject_scores.get(v.subject, 0.0)
        counts = {name: getattr(v, name) for name in _VOLUME_COUNTS}
        rows.append(SignalRow(subject=v.subject, score=score, suspect=score >= point.threshold > 0,
                              reasons=tuple(r for r in point.reasons if r.startswith(f"volume {v.subject}:")),
                              previous_point_id=point.previous_point_id, seconds=v.seconds,
                              snapshot_id=v.snapshot_id, previous_snapshot_id=v.previous_snapshot_id,
                              high_entropy_share=v.high_entropy_share, new_extensions=tuple(v.new_extensions),
                              ransom_note_example=v.ransom_note_example, dedup_ratio=v.dedup_ratio,
                              dedup_ratio_change=v.dedup_ratio_change, extensions=dict(v.extensions),
                              **counts, **common))  # type: ignore[arg-type]
    return rows


def points_from_rows(rows: Iterable[SignalRow]) -> list[PointSignals]:
    """Rebuild PointSignals from catalog rows (as list_signals returns them: point row, then its volumes)."""
    points: dict[str, PointSignals] = {}
    order: list[str] = []
    for row in rows:
        point = points.get(row.restore_point_id)
        if point is None:
            point = PointSignals(restore_point_id=row.restore_point_id, app=row.app,
                                 finished_at=row.finished_at.isoformat(), previous_point_id=row.previous_point_id,
                                 threshold=row.threshold,
                                 computed_at=row.computed_at.isoformat() if row.computed_at else "")
            points[row.restore_point_id] = point
            order.append(row.restore_point_id)
        if row.subject == POINT_SUBJECT:
            point.score, point.suspect, point.reasons = row.score, row.suspect, list(row.reasons)
            point.baseline = list(row.baseline or ())
            point.seconds = row.seconds or 0.0
            point.carried = row.baseline_candidates
            if row.objects is not None:
                point.objects = ObjectSignals(
                    previous_point_id=row.previous_point_id, objects=row.objects,
                    previous_objects=row.previous_objects or 0, deleted=row.objects_deleted or 0,
                    previous_by_kind=dict(row.previous_by_kind or {}), deleted_by_kind=dict(row.deleted_by_kind or {}),
                    examples=list(row.deleted_examples or ()))
            continue
        namespace, _, pvc = row.subject.partition("/")
        volume = VolumeSignals(namespace=namespace, pvc=pvc, snapshot_id=row.snapshot_id or "",
                               previous_snapshot_id=row.previous_snapshot_id,
                               new_extensions=list(row.new_extensions or ()),
                               ransom_note_example=row.ransom_note_example, dedup_ratio=row.dedup_ratio,
                               dedup_ratio_change=row.dedup_ratio_change, extensions=dict(row.extensions or {}),
                               seconds=row.seconds or 0.0)
        for name in _VOLUME_COUNTS:
            setattr(volume, name, getattr(row, name) or 0)
        point.volumes.append(volume)
        point.subject_scores[row.subject] = row.score
    return [points[i] for i in order]
