"""EncryptionKey: how a repository's master key is unlocked (passphrase or external key)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from kubekeep.catalog import Catalog
from kubekeep.repo.crypto import KdfParams, KeyWrapper, LocalKeyWrapper
from kubekeep.repo.errors import RepositoryNotFoundError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Storage

from .location import LocationProfile


class EncryptionKey(Block):
    """A passphrase slot, or an external key (a key file or environment variable on the worker)."""

    _block_type_name = "Kubekeep Encryption Key"
    _block_type_slug = "kubekeep-encryption-key"

    passphrase: SecretStr | None = Field(default=None, description="Opens a passphrase key slot.")
    key_file: str | None = Field(default=None, description="Path of an external key file on the worker.")
    key_env: str | None = Field(default=None, description="Environment variable holding an external key.")
    cheap_kdf: bool = Field(default=False, description="Weak KDF parameters: tests and demos only.")

    @model_validator(mode="after")
    def _check(self) -> EncryptionKey:
        if not (self.passphrase or self.key_file or self.key_env):
            raise ValueError("an encryption key needs a passphrase, a key_file or a key_env")
        return self

    def key_wrapper(self) -> KeyWrapper | None:
        if self.key_file:
            return LocalKeyWrapper.from_file(self.key_file)
        if self.key_env:
            return LocalKeyWrapper.from_env(self.key_env)
        return None

    def catalog(self, location: LocationProfile, *, cache_dir: str | os.PathLike[str] | None = None
                ) -> AbstractContextManager[Catalog]:
        """``with key.catalog(location) as catalog:`` the location's catalog, its files sealed and opened
        with the repository's key; the repository is closed when the block ends (blocks.repositories)."""
        from .repositories import open_catalog

        return open_catalog(location, self, cache_dir=cache_dir)

    def open_repository(self, storage: Storage, *, create: bool = False, workers: int = 2,
                        object_lock: bool = False) -> Repository:
        """Open the repository of a location (a new one: the caller closes it; tasks share one per run
        through :func:`blocks.repositories.repository`).

        Only ``create`` (a first backup with ``init``, or a test) initialises one, creating
        the directory or bucket if needed (a bucket with Object Lock when ``object_lock``):
        without it a missing or empty location is an
        error that suggests an unmounted volume, never a new repository on the local disk.
        """
        passphrase = self.passphrase.get_secret_value() if self.passphrase else None
        try:
            return Repository.open(storage, passphrase=passphrase, key_wrapper=self.key_wrapper(), workers=workers)
        except RepositoryNotFoundError:
            if not create:
                raise
        return Repository.init(storage, passphrase=passphrase, key_wrapper=self.key_wrapper(), workers=workers,
                               kdf=KdfParams.cheap() if self.cheap_kdf else None, create_location=True,
                               object_lock=object_lock)
