"""DR copy: restore points copied from one location to another (docs/dr-copy.md).

- :mod:`.points`: which points (one id, an app's, all), and which the destination already holds;
- :mod:`.copy`: copying one point (write order, verification, Object Lock, the record last),
  creating and checking the destination;
- :mod:`.record`: the rows of ``dr_copies`` in the source's catalog (where its points were copied);
- :mod:`.replica`: replica mode, packs byte for byte; :mod:`.independent`: independent mode,
  blobs re-encrypted under the destination's own key; :mod:`.verify`: authenticating a pack.

One-way: nothing at the destination is ever deleted, and the source is only read (its shared lock object apart).
"""

from .copy import (
    CopyError,
    CopyMode,
    DestinationLock,
    DestinationMismatchError,
    PointCopy,
    check_destination,
    copy_point,
    init_destination,
)
from .points import PointRef, choose_points, present_points, restore_points
from .record import copy_records
from .sites import open_sites
from .verify import PackVerificationError, verify_pack

__all__ = [
    "CopyError",
    "CopyMode",
    "DestinationLock",
    "DestinationMismatchError",
    "PackVerificationError",
    "PointCopy",
    "PointRef",
    "check_destination",
    "choose_points",
    "copy_point",
    "copy_records",
    "init_destination",
    "open_sites",
    "present_points",
    "restore_points",
    "verify_pack",
]
