"""Opening the two sites of a copy side by side.

Opening a repository derives its key slot's key (Argon2id; with the default
parameters ~0.27 s of one core), and a copy opens two. argon2 releases the GIL,
so the source is opened on a second thread while the caller's thread opens the
destination: one derivation's time instead of two, which is a fifth of an
incremental copy's fixed start-up (docs/benchmarks.md, "DR copy").
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kubekeep.repo.errors import RepositoryNotFoundError

S = TypeVar("S")
D = TypeVar("D")


def open_sites(open_source: Callable[[], S], open_destination: Callable[[], D]
               ) -> tuple[S, D | RepositoryNotFoundError]:
    """(source, destination) opened at once; in place of the destination, the RepositoryNotFoundError when its
    location holds no repository (the caller may create it from the source, or say why not). Any other error
    is raised, the source's first."""
    with ThreadPoolExecutor(1, thread_name_prefix="kubekeep-open-source") as pool:
        source = pool.submit(open_source)
        destination: D | RepositoryNotFoundError
        failure: BaseException | None = None
        try:
            destination = open_destination()
        except RepositoryNotFoundError as exc:
            destination = exc
        except BaseException as exc:  # noqa: BLE001 - raised after the source's outcome is known
            failure = exc
        opened = source.result()  # raises the source's error first
    if failure is not None:
        raise failure
    return opened, destination
