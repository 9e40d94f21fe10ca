"""One open repository per location and key per worker process, shared by the tasks of a run.

Opening a repository reads its config and key slots and derives the key
(Argon2id, 64 MiB): a backup with N volumes used to pay that N+4 times, once
per task. Tasks ask this pool instead (:func:`repository`): the first lease
opens the repository, later leases of the same location and key share that
open :class:`~kubekeep.repo.repository.Repository` (safe to use from several
threads), and the last lease to end closes it. A flow holds a lease for its
whole run (:func:`keep_open`, lazy: the first task that needs the repository
opens it, so opening errors stay task errors), so every task of the run shares
one repository and one derived key, and the repository is closed when the run
ends.

Why a process-wide pool is "per run": Prefect runs the tasks of a flow run as
threads of one process (ThreadPoolTaskRunner), and a deployment worker runs
each flow run in a process of its own. Two runs in one process (subflows,
tests, the CLI) share an open repository while both hold it.

Identity is the location's and the key's settings (secrets included, held in
memory as a digest only): another passphrase, other credentials or another
prefix never get someone else's open repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from kubekeep.catalog import Catalog
from kubekeep.repo.repository import Repository

from .encryption import EncryptionKey
from .location import LocationProfile


def _identity(block: Any) -> str:
    """A digest of every field of a block, secret values included (never kept in clear)."""
    values = {name: (value.get_secret_value() if isinstance(value, SecretStr) else value)
              for name, value in sorted(block.__dict__.items()) if not name.startswith("_")}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Entry:
    #: serialises opening, so that two tasks starting at once derive the key once
    opening: threading.Lock = field(default_factory=threading.Lock)
    repo: Repository | None = None
    leases: int = 0


class RepositoryPool:
    """Open repositories by (location, key) identity, reference-counted; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def _acquire(self, location: LocationProfile, key: EncryptionKey) -> tuple[tuple[str, str], _Entry]:
        ident = (_identity(location), _identity(key))
        with self._lock:
            entry = self._entries.setdefault(ident, _Entry())
            entry.leases += 1
        return ident, entry

    def _release(self, ident: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            entry.leases -= 1
            if entry.leases > 0:
                return
            del self._entries[ident]
            repo, entry.repo = entry.repo, None
        if repo is not None:
            repo.close()

    @contextmanager
    def hold(self, location: LocationProfile, key: EncryptionKey) -> Iterator[None]:
        """Keep the repository of ``location`` open until the block ends, once a lease has opened it."""
        ident, entry = self._acquire(location, key)
        try:
            yield
        finally:
            self._release(ident, entry)

    @contextmanager
    def lease(self, location: LocationProfile, key: EncryptionKey, *, create: bool = False) -> Iterator[Repository]:
        """The open repository of ``location`` (opened now if no lease holds it; ``create``: a first
        backup may initialise it, see :meth:`EncryptionKey.open_repository`)."""
        ident, entry = self._acquire(location, key)
        try:
            with entry.opening:
                if entry.repo is None:
                    entry.repo = key.open_repository(location.storage(), create=create,
                                                     object_lock=location.object_lock_mode is not None)
                repo = entry.repo
            yield repo
        finally:
            self._release(ident, entry)

    def open_count(self) -> int:
        """How many repositories are open now (for tests and diagnostics)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if e.repo is not None)


#: the pool of this process
POOL = RepositoryPool()


def repository(location: LocationProfile, key: EncryptionKey, *, create: bool = False
               ) -> AbstractContextManager[Repository]:
    """What a task uses: the run's shared open repository of ``location`` (see the module doc)."""
    return POOL.lease(location, key, create=create)


def keep_open(location: LocationProfile, key: EncryptionKey) -> AbstractContextManager[None]:
    """What a flow uses around its tasks: one repository (and one derived key) for the whole run."""
    return POOL.hold(location, key)


@contextmanager
def open_catalog(location: LocationProfile, key: EncryptionKey, *, cache_dir: str | os.PathLike[str] | None = None
                 ) -> Iterator[Catalog]:
    """The location's catalog, its files sealed and opened with the repository's key; the repository
    lease ends (and the repository is closed, unless a run holds it) when the block ends."""
    with repository(location, key) as repo:
        yield Catalog(repo.storage, cache_dir=cache_dir, codec=repo.catalog_codec())
