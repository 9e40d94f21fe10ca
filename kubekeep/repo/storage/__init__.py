"""Storage backends behind one interface (see base.py for the contract)."""

from . import base
from .base import *  # noqa: F403 - the interface, listed once in base.__all__
from .filesystem import FilesystemStorage
from .s3 import S3Config, S3Storage, create_bucket
from .wrappers import (
    FaultInjectingStorage,
    FaultPlan,
    ReadOnlyStorage,
    ReadOnlyStorageError,
    RetryingStorage,
)

__all__ = [
    *base.__all__,
    "FaultInjectingStorage",
    "FaultPlan",
    "FilesystemStorage",
    "ReadOnlyStorage",
    "ReadOnlyStorageError",
    "RetryingStorage",
    "S3Config",
    "S3Storage",
    "create_bucket",
]
