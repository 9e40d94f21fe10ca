"""Restore point rows for catalog tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubekeep.catalog import RestorePoint, RestorePointObject, RestorePointVolume

T0 = datetime(2025, 1, 1, tzinfo=UTC)

def make_point(
    point_id: str,
    *,
    app: str = "shop",
    hours: int = 0,
    status: str = "succeeded",
    cluster: str = "prod",
    namespaces: tuple[str, ...] = ("shop",),
    tags: dict[str, str] | None = None,
) -> RestorePoint:
    started = T0 + timedelta(hours=hours)
    return RestorePoint(
        id=point_id,
        app=app,
        cluster=cluster,
        namespaces=namespaces,
        started_at=started,
        finished_at=started + timedelta(minutes=5),
        status=status,
        status_reason=None if status == "succeeded" else "volume export failed",
        snapshot_id=f"snap-{point_id}",
        location="file:///backups",
        policy="hourly",
        object_count=2,
        volume_count=1,
        logical_bytes=1000,
        stored_bytes=400,
        retain_until=started + timedelta(days=30),
        tags=tags or {},
    )


def make_objects(point_id: str, namespace: str = "shop") -> list[RestorePointObject]:
    return [
        RestorePointObject(point_id, "apps", "v1", "Deployment", namespace, "web", f"h-web-{point_id}", 900, "u1"),
        RestorePointObject(point_id, "", "v1", "ConfigMap", namespace, "web-config", "h-cm", 120, "u2"),
    ]


def make_volumes(point_id: str, namespace: str = "shop") -> list[RestorePointVolume]:
    return [
        RestorePointVolume(point_id, namespace, "data", 10 << 30, "direct", "standard", 12, 1000, 400, None),
    ]
