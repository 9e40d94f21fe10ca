"""Storage backends behind one interface (see base.py for the contract)."""

from .base import (
    InvalidKeyError,
    ObjectExistsError,
    ObjectInfo,
    ObjectLockedError,
    ObjectNotFoundError,
    RetentionMode,
    RetentionNotSupportedError,
    Storage,
    StorageError,
    TransientStorageError,
)
from .filesystem import FilesystemStorage

__all__ = [
    "FilesystemStorage",
    "InvalidKeyError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectLockedError",
    "ObjectNotFoundError",
    "RetentionMode",
    "RetentionNotSupportedError",
    "Storage",
    "StorageError",
    "TransientStorageError",
]
