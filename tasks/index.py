"""The restore-point index in the Prefect UI: a keyed table artifact per app, refreshed by every flow
that changes what a location holds (backup, restore, and the flows of copies, verification, expiry).

The key is stable (``restore-points-<app>``), so the Artifacts page lists it and keeps its history;
the rows come from the catalog (kubekeep.ui.index_rows).
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from blocks import EncryptionKey, LocationProfile, repository
from kubekeep.catalog import Catalog
from kubekeep.ui import RestorePointRow, artifact_key, index_rows

from .common import DATA_TASK

#: restore points the index shows per app (newest first)
INDEX_ROWS = 50


def index_key(app: str) -> str:
    """``restore-points-shop``: the key of an app's index artifact."""
    return artifact_key("restore-points", app)


@task(name="publish-restore-points", **DATA_TASK)
def publish_restore_points(location: LocationProfile, key: EncryptionKey, app: str, *,
                           limit: int = INDEX_ROWS) -> list[RestorePointRow]:
    """Read the app's newest restore points (any status) with their verdicts (verified, suspect, DR
    copies) from the location's catalog and publish them as the table artifact ``restore-points-<app>``;
    return the rows."""
    with repository(location, key) as repo:
        rows = index_rows(Catalog(repo.storage, codec=repo.catalog_codec()), app, limit=limit)
    create_table_artifact(
        [r.to_dict() for r in rows] or [{"id": "—", "time": "no restore point yet"}], key=index_key(app),
        description=f"Restore points of **{app}** at `{location.describe()}`, newest first "
                    f"({len(rows)} shown, at most {limit}). Restore one: Deployments → restore → Custom run, "
                    "restore_point = its id.")
    return rows
