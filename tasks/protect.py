"""Protection tasks: which apps a policy protects right now, and what their newest restore points are.

Discovery runs on every ``protect`` run, so an app created after the policy was written (a new
namespace, Helm release or ``part-of`` group that matches it) is backed up from the next run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import task

from blocks import ClusterConnection, EncryptionKey, LocationProfile, open_catalog
from blocks.policy import sync_protect_schedule
from kubekeep.backup.scope import discover_applications
from kubekeep.catalog import RestorePoint, list_restore_points, newest_verified_time
from kubekeep.policy import ProtectionMap, ProtectionPolicy, Verify, match_apps, namespace_labels

from .common import DATA_TASK


@dataclass(frozen=True)
class AppToProtect:
    """One application a policy backs up on this run, with the scope its backup takes."""

    name: str
    namespaces: tuple[str, ...]
    label_selector: str | None


@dataclass(frozen=True)
class Discovery:
    #: the apps ``policy`` backs up on this run
    apps: tuple[AppToProtect, ...]
    #: every discovered app against every policy (protected, covered, unprotected)
    protection: ProtectionMap


@task(name="discover-apps", **DATA_TASK)
def discover_apps(cluster: ClusterConnection, policy: ProtectionPolicy,
                  policies: Sequence[ProtectionPolicy]) -> Discovery:
    """Discover the cluster's apps (namespaces, Helm releases, part-of groups) and match them against
    ``policies`` (which include ``policy``)."""
    with cluster.connect() as conn:
        found = discover_applications(conn)
        labels = namespace_labels(conn)
    protection = match_apps(found, policies, labels)
    mine = set(protection.by_policy.get(policy.name, ()))
    apps = tuple(AppToProtect(a.name, a.namespaces, a.label_selector) for a in found if a.name in mine)
    return Discovery(apps, protection)


@task(name="last-restore-points", **DATA_TASK)
def last_restore_points(location: LocationProfile, key: EncryptionKey, apps: Sequence[str]
                        ) -> dict[str, RestorePoint | None]:
    """The newest restore point (any status) of each app, from the location's catalog."""
    out: dict[str, RestorePoint | None] = {}
    with open_catalog(location, key) as catalog:
        for app in apps:
            newest = list_restore_points(catalog, app=app, statuses=None, newest_first=True, limit=1)
            out[app] = newest[0] if newest else None
    return out


@task(name="apps-due-for-verification", **DATA_TASK)
def apps_due_for_verification(location: LocationProfile, key: EncryptionKey, apps: Sequence[str], verify: Verify,
                              now: datetime | None = None) -> list[str]:
    """The apps (of ``apps``) whose newest verified point is older than the policy's verify frequency (or
    that have none)."""
    if verify.interval() is None or not apps:
        return []
    when = now or datetime.now(UTC)
    with open_catalog(location, key) as catalog:
        return [app for app in apps if verify.due(newest_verified_time(catalog, app), when)]


@task(name="sync-schedule", retries=2, retry_delay_seconds=5)
def sync_schedule(policy: ProtectionPolicy) -> str:
    """Put the policy's cron and timezone on its deployment protect/<policy>: "rescheduled", "unchanged" or
    "no deployment"."""
    synced = sync_protect_schedule(policy)
    return "no deployment" if synced is None else ("rescheduled" if synced[1] else "unchanged")
