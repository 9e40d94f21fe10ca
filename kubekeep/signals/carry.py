"""The baseline carried from point to point, so judging a point reads one earlier point, not a window.

Scoring a point needs the observations of up to ``baseline_points`` earlier points of its app
that were not suspect (or were acknowledged since). Read from the catalog, that is one file per
point (until a compaction merges them): ~3.5 ms each for the wide ``signals`` table, so ~0.25 s
for the 70-point window at steady state, against a 1-2 s incremental backup.

Instead, each judged point stores its *candidates* in its catalog row (``baseline_candidates``,
docs/catalog-schema.md): itself, then its own candidates, down to the ``baseline_points``-th one
that was in a baseline when it was judged; suspect points in between are kept, because a later
acknowledgement brings them into the baseline. The next point reads its predecessor's row and
selects its baseline from those candidates with the acknowledgements of now, which is what the
window would give:

- an acknowledgement only ever adds points to a baseline, so the selection ends at or before the
  last candidate;
- a candidate deleted since (retention, forget) stays, as in the window: signals rows are not
  masked by deletions (what a point measured stays part of its app's history);
- a point of the app that was not scored when the predecessor was judged, but is now (scored
  late: concurrent runs of one app), is not among the candidates: the step sees its file in the
  listing (or cannot tell, when the table has compacted parts) and reads the window instead.

The values are the observations of kubekeep.signals.score under the policy the point was judged
with; a different policy (another fingerprint) reads the window.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .record import PointSignals
from .score import SignalPolicy, observations

FORMAT = 1


@dataclass(frozen=True)
class Candidate:
    """An earlier point as a baseline sees it."""

    restore_point_id: str
    suspect: bool
    #: observation key (score.Observation.key) -> value
    values: dict[str, float]


def candidate(point: PointSignals, policy: SignalPolicy) -> Candidate:
    return Candidate(point.restore_point_id, point.suspect, {o.key: o.value for o in observations(point, policy)})


def fingerprint(policy: SignalPolicy) -> str:
    """What decides the observations and the baseline's length (not the threshold: it judges, it does not
    observe)."""
    parts = (policy.baseline_points, policy.min_files, policy.min_objects, policy.min_new_bytes,
             policy.min_new_share, sorted(policy.watched_kinds), sorted(policy.mass_delete_kinds))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def carry(point: PointSignals, earlier: Iterable[Candidate], acknowledged: Collection[str],
          policy: SignalPolicy) -> list[Candidate]:
    """The candidates the next point starts from: ``point``, then ``earlier`` down to the ``baseline_points``-th
    candidate in a baseline (suspect ones in between kept)."""
    out: list[Candidate] = []
    taken = 0
    for c in (candidate(point, policy), *earlier):
        out.append(c)
        if not c.suspect or c.restore_point_id in acknowledged:
            taken += 1
            if taken >= policy.baseline_points:
                break
    return out


def encode(candidates: Sequence[Candidate], policy: SignalPolicy) -> str:
    """Compact JSON: the observation keys once, then each candidate's values in their order (null: absent)."""
    keys = sorted({k for c in candidates for k in c.values})
    return json.dumps({"format": FORMAT, "policy": fingerprint(policy), "keys": keys,
                       "points": [[c.restore_point_id, c.suspect,
                                   [_short(c.values[k]) if k in c.values else None for k in keys]]
                                  for c in candidates]}, separators=(",", ":"))


def _short(value: float) -> float | int:
    """Nine significant digits (a z-score is rounded to two decimals); an integral value without its ".0"."""
    short = float(f"{value:.9g}")
    return int(short) if short.is_integer() and abs(short) < 2**53 else short


def decode(raw: str | None, policy: SignalPolicy) -> list[Candidate] | None:
    """The candidates stored in a row, or None: none stored, another format or another policy."""
    if not raw:
        return None
    try:
        doc: Any = json.loads(raw)
        if doc.get("format") != FORMAT or doc.get("policy") != fingerprint(policy):
            return None
        keys = [str(k) for k in doc["keys"]]
        out = []
        for pid, suspect, values in doc["points"]:
            if len(values) != len(keys):
                return None
            out.append(Candidate(str(pid), bool(suspect),
                                 {k: float(v) for k, v in zip(keys, values, strict=True) if v is not None}))
        return out
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
