"""Storage backends behind one interface (see base.py for the contract)."""

from .base import (
    DeadlineExceededError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectInfo,
    ObjectLockedError,
    ObjectNotFoundError,
    ObjectVersion,
    RetentionMode,
    RetentionNotSupportedError,
    Storage,
    StorageError,
    TransientStorageError,
    VersionsNotSupportedError,
)
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
    "DeadlineExceededError",
    "FaultInjectingStorage",
    "FaultPlan",
    "FilesystemStorage",
    "InvalidKeyError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectLockedError",
    "ObjectNotFoundError",
    "ObjectVersion",
    "ReadOnlyStorage",
    "ReadOnlyStorageError",
    "RetentionMode",
    "RetentionNotSupportedError",
    "RetryingStorage",
    "S3Config",
    "S3Storage",
    "Storage",
    "StorageError",
    "TransientStorageError",
    "VersionsNotSupportedError",
    "create_bucket",
]
