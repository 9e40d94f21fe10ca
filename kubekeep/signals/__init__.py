"""Ransomware and anomaly signals: measure every restore point against the app's previous one, score it
against the app's own baseline, flag suspect points (docs/signals.md).

- :mod:`.treediff`, :mod:`.volume`: per-volume signals from the repository (tree diff + index);
- :mod:`.objects`: Kubernetes objects deleted since the previous point, by kind;
- :mod:`.score`: robust z-scores against a rolling baseline (pure functions);
- :mod:`.compute`: the step that measures and judges one restore point;
- :mod:`.marks`: how a scored point is shown (suspect, acknowledged, after-suspect, clean);
- :mod:`.store`: records in the repository (signals, acknowledgements) and their catalog rows.
"""

from .compute import CatalogHistory, PointHistory, PointRef, VolumeRef, compute_signals
from .marks import ACKNOWLEDGED, AFTER_SUSPECT, CLEAN, SUSPECT, point_marks
from .objects import ObjectKey, ObjectSignals, catalog_object_keys, manifest_object_keys, object_signals
from .record import PointSignals
from .rows import points_from_rows, signal_rows
from .score import (
    DEFAULT_THRESHOLD,
    FEATURES,
    Score,
    SignalPolicy,
    observations,
    robust_z,
    score_point,
    select_baseline,
)
from .store import (
    ACK_TAG,
    SIGNALS_TAG,
    Acknowledgement,
    SignalsError,
    SignalsRebuild,
    acknowledge,
    find_signals,
    read_signals,
    rebuild_signals,
    record_signals,
    write_signals,
)
from .treediff import DirectoryVisit, FileChange, diff_trees
from .volume import VolumeSignals, extension, volume_signals

__all__ = [
    "ACKNOWLEDGED",
    "ACK_TAG",
    "AFTER_SUSPECT",
    "CLEAN",
    "SUSPECT",
    "DEFAULT_THRESHOLD",
    "FEATURES",
    "SIGNALS_TAG",
    "Acknowledgement",
    "CatalogHistory",
    "DirectoryVisit",
    "FileChange",
    "ObjectKey",
    "ObjectSignals",
    "PointHistory",
    "PointRef",
    "PointSignals",
    "Score",
    "SignalPolicy",
    "SignalsError",
    "SignalsRebuild",
    "VolumeRef",
    "VolumeSignals",
    "acknowledge",
    "catalog_object_keys",
    "compute_signals",
    "diff_trees",
    "extension",
    "find_signals",
    "manifest_object_keys",
    "object_signals",
    "observations",
    "point_marks",
    "points_from_rows",
    "read_signals",
    "rebuild_signals",
    "record_signals",
    "robust_z",
    "score_point",
    "select_baseline",
    "signal_rows",
    "volume_signals",
    "write_signals",
]
