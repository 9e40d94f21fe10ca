"""The repository: chunking, keyed ids, compression, encryption, packs, index, snapshots.

The format is specified in docs/repository-format.md, the modules in docs/repository-api.md.
(The archiver's BackupResult/BackupStats are in kubekeep.repo.archiver: importing the package
does not load the chunker.)
"""

from .crypto import KdfParams, KeyWrapper, LocalKeyWrapper
from .errors import (
    IntegrityError,
    KeySlotError,
    LockedError,
    MissingObjectError,
    RepositoryError,
    RestoreError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    WrongKeyError,
)
from .repository import Repository, RepoStats
from .snapshots import SnapshotInfo

__all__ = [
    "IntegrityError",
    "KdfParams",
    "KeySlotError",
    "KeyWrapper",
    "LocalKeyWrapper",
    "LockedError",
    "MissingObjectError",
    "RepoStats",
    "Repository",
    "RepositoryError",
    "RestoreError",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "UnsupportedFormatError",
    "WrongKeyError",
]
