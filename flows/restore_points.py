"""The restore-points flow: list an app's restore points in the Prefect UI, to pick one for a restore.

Run it from its deployment (Deployments → restore-points → Custom run, app = shop): it refreshes the
keyed table artifact ``restore-points-<app>`` (Artifacts page; every backup and restore refreshes it too)
and returns the rows, newest first.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from blocks import EncryptionKey, LocationProfile, keep_open, load_blocks
from tasks.index import publish_restore_points


@flow(name="restore-points", flow_run_name="restore points of {app}")
def restore_points(app: str, location: str | LocationProfile = "default",
                   encryption_key: str | EncryptionKey = "default",
                   limit: Annotated[int, Field(ge=1, le=500)] = 20) -> list[dict[str, str]]:
    """List the restore points of an application, newest first, as the table artifact restore-points-<app>.

    Args:
        app: Application whose restore points are listed.
        location: The location block (name, or instance from Python) holding them.
        encryption_key: The key block that opens the location's repository.
        limit: At most this many restore points, the newest.
    """
    loc, key, _ = load_blocks(location, encryption_key, None)
    with keep_open(loc, key):
        rows = publish_restore_points(loc, key, app, limit=limit)
    return [r.to_dict() for r in rows]
