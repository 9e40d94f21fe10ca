"""Prefect Blocks of Kubekeep: register with `prefect block register -m blocks`."""

from .cluster import ClusterConnection
from .encryption import EncryptionKey
from .location import LocationProfile

__all__ = ["ClusterConnection", "EncryptionKey", "LocationProfile"]
