"""Errors raised by the repository layer. Every one carries a message fit for a user."""

from __future__ import annotations

from typing import Any


class RepositoryError(Exception):
    """Base of every repository failure."""


class RepositoryNotFoundError(RepositoryError):
    pass


class RepositoryExistsError(RepositoryError):
    pass


class UnsupportedFormatError(RepositoryError):
    pass


class WrongKeyError(RepositoryError):
    """No key slot opens with the passphrase or external key given."""


class KeySlotError(RepositoryError):
    """A key slot is damaged or carries parameters outside the accepted bounds (never a wrong passphrase)."""


class IntegrityError(RepositoryError):
    """An object failed authentication or does not match its id."""


class MissingObjectError(RepositoryError):
    pass


class SnapshotNotFoundError(RepositoryError):
    pass


class LockedError(RepositoryError):
    """Another operation holds a lock that excludes this one."""


class RestoreError(RepositoryError):
    """Some files could not be restored; ``failures`` maps path -> reason, ``result`` (the
    restorer's RestoreResult, when known) counts what was restored."""

    def __init__(self, message: str, failures: dict[str, str], *, result: Any = None) -> None:
        super().__init__(message)
        self.failures = failures
        self.result = result
