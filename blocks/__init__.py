"""Prefect Blocks of Kubekeep: register with `prefect block register -m blocks`."""

from typing import Any

from .cluster import ClusterConnection
from .encryption import EncryptionKey
from .location import LocationProfile
from .repositories import keep_open, open_catalog, repository


def load_blocks(location: str | LocationProfile, encryption_key: str | EncryptionKey,
                cluster: str | ClusterConnection | None) -> tuple[LocationProfile, EncryptionKey, ClusterConnection]:
    """Blocks given by name (saved in the Prefect API) or as instances (from Python); no cluster block
    means the worker's default kubeconfig."""
    loc: Any = LocationProfile.load(location) if isinstance(location, str) else location
    key: Any = EncryptionKey.load(encryption_key) if isinstance(encryption_key, str) else encryption_key
    conn: Any = ClusterConnection()
    if cluster is not None:
        conn = ClusterConnection.load(cluster) if isinstance(cluster, str) else cluster
    return loc, key, conn


__all__ = ["ClusterConnection", "EncryptionKey", "LocationProfile", "keep_open", "load_blocks", "open_catalog",
           "repository"]
