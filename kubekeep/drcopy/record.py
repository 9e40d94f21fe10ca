"""What the source's catalog learns from a DR copy: where each copied point now is (``dr_copies``).

The source's repository is only read by a copy; its catalog (an index, docs/catalog-schema.md) gets one
row per point the destination holds, so the source's restore-point index shows the DR copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .copy import CopyMode, PointCopy

if TYPE_CHECKING:
    from kubekeep.catalog import DrCopyRecord

#: the outcomes of copy_point after which the destination holds the point
HELD = ("copied", "skipped")


def copy_records(results: Iterable[PointCopy], destination: str, mode: CopyMode, *,
                 now: datetime | None = None) -> list[DrCopyRecord]:
    """The ``dr_copies`` rows of a run's results: the points copied or already at ``destination``
    (failed ones are left out)."""
    from kubekeep.catalog import DrCopyRecord  # here: a copy process never loads the catalog's pyarrow

    now = now or datetime.now(UTC)
    return [DrCopyRecord(restore_point_id=r.restore_point, app=r.app, destination=destination, mode=mode.value,
                         copied_at=now,
                         retain_until=datetime.fromisoformat(r.locked_until) if r.locked_until else None)
            for r in results if r.status in HELD and r.app]
