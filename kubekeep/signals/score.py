"""Scoring: each restore point against a rolling baseline of the app's own earlier points. Pure functions.

Every signal becomes one or more *observations* (a subject — a volume or the
app's objects — a feature and a value). Each observation gets a one-sided
robust z-score against the same observation in the baseline points:

    z = direction * (value - median) / max(1.4826 * MAD, floor)

1.4826 * MAD estimates the standard deviation of normal data while ignoring
outliers; the floor (per feature, in the feature's own unit) keeps a perfectly
steady baseline (MAD = 0) from turning a tiny change into a huge z, and says
what change counts as one unit of surprise. Only the suspicious direction
counts (more deletions, not fewer). A ratio built on fewer than ``min_files``
files (``min_objects`` objects) scores 0: a handful of files is never a mass
event. The point's score is its highest z; it is ``suspect`` at or above the
policy's threshold. Reasons list every observation at or above half the
threshold, strongest first.

The baseline is the app's previous ``baseline_points`` points that were not
suspect, or were acknowledged (an acknowledged false positive joins the
baseline); first points of a PVC or app (nothing to compare with) add no
observations. With no baseline yet, the median is 0 (no change) and the
spread is the floor.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .record import OBJECTS_SUBJECT, PointSignals
from .volume import VolumeSignals

MAD_TO_SIGMA = 1.4826
MiB = 1024 * 1024

DEFAULT_THRESHOLD = 6.0
DEFAULT_BASELINE_POINTS = 30
#: kinds whose deletion counts (pods, replica sets, jobs, events come and go with every rollout)
DEFAULT_WATCHED_KINDS = (
    "Secret", "ConfigMap", "PersistentVolumeClaim", "Service", "ServiceAccount", "Deployment", "StatefulSet",
    "DaemonSet", "CronJob", "Ingress.networking.k8s.io", "Role.rbac.authorization.k8s.io",
    "RoleBinding.rbac.authorization.k8s.io", "Deployment.apps", "StatefulSet.apps", "DaemonSet.apps",
    "CronJob.batch", "NetworkPolicy.networking.k8s.io",
)
#: kinds scored on their own as well (a mass deletion of these is the classic sabotage)
DEFAULT_MASS_DELETE_KINDS = ("Secret", "ConfigMap", "PersistentVolumeClaim")


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    #: +1: higher is suspicious; -1: lower is
    direction: int
    #: the smallest spread, in the feature's unit (a ratio: 0.02 = 2 percentage points)
    floor: float
    #: what the ratio counts ("files", "directories", "objects"); "" for shares of bytes
    counts: str = ""


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("files_added", "files added", 1, 0.10, "files"),
    Feature("files_changed", "files changed", 1, 0.02, "files"),
    Feature("files_deleted", "files deleted", 1, 0.02, "files"),
    Feature("high_entropy_rewrites", "files rewritten with high-entropy data", 1, 0.005, "files"),
    Feature("extension_changes", "files whose extension changed", 1, 0.01, "files"),
    Feature("new_extensions", "files with an extension new to the volume", 1, 0.02, "files"),
    Feature("ransom_note", "directories given one identical new small file", 1, 0.05, "directories"),
    Feature("high_entropy_share", "new content that did not compress", 1, 0.15),
    Feature("new_bytes", "new unique bytes (share of the volume)", 1, 0.05),
    Feature("objects_deleted", "objects deleted", 1, 0.05, "objects"),
    Feature("kind_deleted", "deleted", 1, 0.05, "objects"),
)}


@dataclass(frozen=True)
class SignalPolicy:
    """How points are judged; part of a protection policy (docs/signals.md)."""

    threshold: float = DEFAULT_THRESHOLD
    baseline_points: int = DEFAULT_BASELINE_POINTS
    min_files: int = 5
    min_objects: int = 3
    #: ``high_entropy_share`` is judged only when the new content is at least this big ...
    min_new_bytes: int = 1 * MiB
    #: ... and at least this share of the volume
    min_new_share: float = 0.01
    watched_kinds: tuple[str, ...] = DEFAULT_WATCHED_KINDS
    mass_delete_kinds: tuple[str, ...] = DEFAULT_MASS_DELETE_KINDS
    #: feature name -> floor, replacing the default floor
    floors: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError("the suspect threshold must be > 0")
        if self.baseline_points < 1:
            raise ValueError("baseline_points must be >= 1")
        unknown = set(self.floors) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) in floors: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(FEATURES)})")
        if any(not v > 0 for v in self.floors.values()):
            raise ValueError("floors must be > 0")

    def floor(self, feature: Feature) -> float:
        return float(self.floors.get(feature.name, feature.floor))


@dataclass(frozen=True)
class Observation:
    subject: str
    feature: Feature
    value: float
    #: for ratios: the count and what it is out of (gating and reasons)
    count: int | None = None
    of: int | None = None
    #: for per-kind features: the kind; extra words for the reason
    qualifier: str = ""
    detail: str = ""

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.feature.name}|{self.qualifier}"


@dataclass(frozen=True)
class Judged:
    observation: Observation
    z: float
    median: float
    scale: float
    baseline_size: int


@dataclass(frozen=True)
class Score:
    score: float
    suspect: bool
    reasons: list[str]
    subject_scores: dict[str, float]
    judged: list[Judged]


def _ratio(count: int, of: int) -> float:
    return count / of if of else (1.0 if count else 0.0)


def volume_observations(v: VolumeSignals, policy: SignalPolicy) -> list[Observation]:
    if v.first:
        return []
    s, prev = v.subject, v.previous_files
    out = [
        Observation(s, FEATURES["files_added"], v.added_ratio, v.files_added, prev),
        Observation(s, FEATURES["files_changed"], v.changed_ratio, v.files_changed, prev),
        Observation(s, FEATURES["files_deleted"], v.deleted_ratio, v.files_deleted, prev),
        Observation(s, FEATURES["high_entropy_rewrites"], v.entropy_rise_ratio, v.entropy_rise_files, prev),
        Observation(s, FEATURES["extension_changes"], v.extension_changed_ratio, v.extensions_changed, prev),
        Observation(s, FEATURES["new_extensions"], v.new_extension_ratio, v.new_extension_files, prev,
                    detail=f"new: {', '.join('.' + e for e in v.new_extensions)}" if v.new_extensions else ""),
        Observation(s, FEATURES["ransom_note"], v.ransom_note_ratio, v.ransom_note_dirs, v.previous_directories + 1,
                    detail=f"e.g. {v.ransom_note_example}" if v.ransom_note_example else ""),
        Observation(s, FEATURES["new_bytes"], v.new_bytes_ratio),
    ]
    if v.new_chunk_bytes >= policy.min_new_bytes and v.new_chunk_bytes >= policy.min_new_share * v.logical_bytes:
        out.append(Observation(s, FEATURES["high_entropy_share"], v.high_entropy_share,
                               detail=f"of {v.new_chunk_bytes / MiB:.1f} MiB new content"))
    return out


def object_observations(point: PointSignals, policy: SignalPolicy) -> list[Observation]:
    o = point.objects
    if o is None or o.first:
        return []
    deleted, previous = o.deleted_ratio(policy.watched_kinds)
    examples = f"e.g. {', '.join(o.examples[:3])}" if o.examples else ""
    out = [Observation(OBJECTS_SUBJECT, FEATURES["objects_deleted"], _ratio(deleted, previous), deleted, previous,
                       detail=examples)]
    for kind in policy.mass_delete_kinds:
        k_deleted, k_previous = o.deleted_by_kind.get(kind, 0), o.previous_by_kind.get(kind, 0)
        out.append(Observation(OBJECTS_SUBJECT, FEATURES["kind_deleted"], _ratio(k_deleted, k_previous), k_deleted,
                               k_previous, qualifier=kind))
    return out


def observations(point: PointSignals, policy: SignalPolicy) -> list[Observation]:
    out = object_observations(point, policy)
    for v in point.volumes:
        out.extend(volume_observations(v, policy))
    return out


def robust_z(value: float, history: Sequence[float], floor: float, direction: int) -> tuple[float, float, float]:
    """(one-sided z, median, scale) of ``value`` against ``history`` (median 0 when there is none)."""
    if history:
        median = statistics.median(history)
        mad = statistics.median(abs(h - median) for h in history)
    else:
        median, mad = 0.0, 0.0
    scale = max(MAD_TO_SIGMA * mad, floor)
    z = direction * (value - median) / scale
    return (z if z > 0 and math.isfinite(z) else 0.0), median, scale


class Judgeable(Protocol):
    """An earlier point as a baseline is chosen from it (PointSignals, or kubekeep.signals.carry.Candidate)."""

    @property
    def restore_point_id(self) -> str: ...

    @property
    def suspect(self) -> bool: ...


J = TypeVar("J", bound=Judgeable)


def select_baseline(history: Iterable[J], acknowledged: Iterable[str], policy: SignalPolicy) -> list[J]:
    """The baseline: up to ``baseline_points`` of ``history`` (the app's earlier points, newest first) that are
    not suspect or were acknowledged."""
    acked = set(acknowledged)
    out: list[J] = []
    for point in history:
        if point.suspect and point.restore_point_id not in acked:
            continue
        out.append(point)
        if len(out) >= policy.baseline_points:
            break
    return out


def _gated(obs: Observation, policy: SignalPolicy) -> bool:
    """True when the count behind a ratio is too small to be a mass event."""
    if obs.count is None:
        return False
    minimum = policy.min_objects if obs.feature.counts == "objects" else policy.min_files
    if obs.feature.counts == "directories":
        minimum = max(3, policy.min_objects)
    return obs.count < minimum


def score_point(point: PointSignals, baseline: Sequence[PointSignals], policy: SignalPolicy) -> Score:
    """Judge ``point`` against ``baseline`` (from :func:`select_baseline`)."""
    return score_against(point, [{o.key: o.value for o in observations(past, policy)} for past in baseline], policy)


def score_against(point: PointSignals, baseline: Sequence[Mapping[str, float]], policy: SignalPolicy) -> Score:
    """Judge ``point`` against the observations of its baseline points (observation key -> value, one
    mapping per point; kubekeep.signals.carry keeps them so)."""
    history: dict[str, list[float]] = {}
    for values in baseline:
        for key, value in values.items():
            history.setdefault(key, []).append(value)
    judged: list[Judged] = []
    for obs in observations(point, policy):
        past_values = history.get(obs.key, [])
        z, median, scale = robust_z(obs.value, past_values, policy.floor(obs.feature), obs.feature.direction)
        if _gated(obs, policy):
            z = 0.0
        judged.append(Judged(obs, round(z, 2), median, scale, len(past_values)))
    subject_scores: dict[str, float] = {}
    for j in judged:
        s = j.observation.subject
        subject_scores[s] = max(subject_scores.get(s, 0.0), j.z)
    score = max((j.z for j in judged), default=0.0)
    notable = sorted((j for j in judged if j.z >= policy.threshold / 2), key=lambda j: -j.z)
    return Score(score=score, suspect=score >= policy.threshold, reasons=[reason(j) for j in notable],
                 subject_scores=subject_scores, judged=judged)


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def reason(j: Judged) -> str:
    """One line a person can act on, e.g. ``volume shop/uploads: files deleted 60.0 % (720 of 1200 files);
    baseline median 0.4 % over 30 points; z 29.7``."""
    o = j.observation
    where = f"volume {o.subject}" if o.subject != OBJECTS_SUBJECT else "objects"
    what = f"{o.qualifier} {o.feature.label}" if o.qualifier else o.feature.label
    text = f"{where}: {what} {_pct(o.value)}"
    if o.count is not None and o.of is not None:
        text += f" ({o.count} of {o.of} {o.feature.counts or 'items'})"
    if o.detail:
        text += f", {o.detail}"
    if j.baseline_size:
        text += f"; baseline median {_pct(j.median)} over {j.baseline_size} point(s)"
    else:
        text += "; no baseline yet (median taken as 0)"
    return f"{text}; z {j.z:.1f}"
