"""How a scored restore point is shown: its mark, from the verdicts and acknowledgements (one rule for every view).

- ``suspect``: scored at or above its threshold, not acknowledged;
- ``acknowledged``: suspect, then acknowledged as a false positive (it joined the baseline);
- ``after-suspect``: not suspect itself, but newer than an unacknowledged suspect point of its app
  (encrypted or deleted data stays in every later point; kubekeep.catalog.last_clean_point skips it);
- ``clean``: the rest. Points without signals have no mark.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kubekeep.catalog import POINT_SUBJECT, SignalRow

SUSPECT = "suspect"
ACKNOWLEDGED = "acknowledged"
AFTER_SUSPECT = "after-suspect"
CLEAN = "clean"


def point_marks(rows: Iterable[SignalRow], acknowledged: set[str]) -> dict[str, str]:
    """Restore point id -> mark, for the point rows among ``rows`` (all of the apps' rows, for ``after-suspect``)."""
    points = [r for r in rows if r.subject == POINT_SUBJECT]
    newest_suspect: dict[str, datetime] = {}
    for r in points:
        if r.suspect and r.restore_point_id not in acknowledged and (
                r.app not in newest_suspect or r.finished_at > newest_suspect[r.app]):
            newest_suspect[r.app] = r.finished_at
    marks: dict[str, str] = {}
    for r in points:
        if r.suspect:
            marks[r.restore_point_id] = ACKNOWLEDGED if r.restore_point_id in acknowledged else SUSPECT
        elif r.app in newest_suspect and r.finished_at > newest_suspect[r.app]:
            marks[r.restore_point_id] = AFTER_SUSPECT
        else:
            marks[r.restore_point_id] = CLEAN
    return marks
