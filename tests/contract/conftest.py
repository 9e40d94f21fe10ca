"""The backends every contract test runs against.

- ``filesystem``: FilesystemStorage in tmp_path.
- ``filesystem+faults``: the same behind RetryingStorage(FaultInjectingStorage(...))
  with one call in five failing transiently (writes fail *after* reaching the
  store, like a lost response): retries must make the contract hold again.
- ``s3`` / ``s3-locked``: S3Storage on the session's SeaweedFS, in a plain
  bucket and in an Object Lock (versioned) bucket, under a fresh prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubekeep.repo.storage import (
    FaultInjectingStorage,
    FaultPlan,
    FilesystemStorage,
    RetryingStorage,
    S3Storage,
    Storage,
)

BACKENDS = [
    "filesystem",
    "filesystem+faults",
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("s3-locked", marks=pytest.mark.s3),
]
PLAIN_BACKENDS = ["filesystem", pytest.param("s3", marks=pytest.mark.s3)]


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if name == "filesystem":
        return FilesystemStorage(tmp_path / "location", create=True)
    if name == "filesystem+faults":
        faulty = FaultInjectingStorage(
            FilesystemStorage(tmp_path / "location", create=True),
            FaultPlan(transient_rate=0.2, fail_after_write=True), seed=7, sleep=lambda _: None,
        )
        return RetryingStorage(faulty, max_attempts=30, sleep=lambda _: None)
    factory: Callable[..., S3Storage] = request.getfixturevalue("s3_storage_factory")
    if name == "s3":
        return factory(locked=False)
    if name == "s3-locked":
        return factory(locked=True)
    raise AssertionError(name)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    backend = make_backend(request.param, request, tmp_path)
    yield backend
    backend.close()


@pytest.fixture(params=PLAIN_BACKENDS)
def plain_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A real backend without wrappers, for tests that build their own wrapper stack."""
    backend = make_backend(request.param, request, tmp_path)
    yield backend
    backend.close()
