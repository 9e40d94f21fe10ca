"""Issue 14 item 11: an S3 endpoint that accepts connections but never answers gives a clear error in
bounded time (connect/read timeouts and an overall deadline per request, retries included).

The endpoint is a real TCP server on 127.0.0.1 that accepts and then says nothing: that is the failure
mode itself, not a mock of S3.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.location import s3_config as s3_config_from_env
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import (
    DeadlineExceededError,
    RetryingStorage,
    S3Config,
    S3Storage,
    TransientStorageError,
)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> of a server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _storage(endpoint: str, **overrides: float) -> S3Storage:
    return S3Storage(S3Config(bucket="bucket", prefix="repo/", endpoint_url=endpoint, access_key="a",
                              secret_key="b", region="us-east-1", addressing_style="path", **overrides))


def test_a_silent_endpoint_fails_within_the_deadline(silent_endpoint: str) -> None:
    storage = _storage(silent_endpoint, connect_timeout=1, read_timeout=1, deadline=3)
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError) as err:
        storage.get("config")
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 4.5, elapsed
    assert isinstance(err.value, TransientStorageError)
    assert "did not answer" in str(err.value) and silent_endpoint in str(err.value)
    # the retry wrapper does not start the deadline all over again
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        list(RetryingStorage(storage, base_delay=0.01).list("snapshots/"))
    assert time.monotonic() - start < 4.5


def test_repository_open_on_a_silent_endpoint_fails_by_default_within_30_seconds(silent_endpoint: str) -> None:
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        Repository.open(_storage(silent_endpoint), passphrase="pw")
    assert time.monotonic() - start < 30


def test_cli_snapshots_on_a_silent_endpoint_is_one_clear_line(silent_endpoint: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEKEEP_S3_ENDPOINT", silent_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", "pw")
    monkeypatch.setenv("KUBEKEEP_S3_READ_TIMEOUT", "1")
    monkeypatch.setenv("KUBEKEEP_S3_DEADLINE", "2")
    start = time.monotonic()
    r = CliRunner().invoke(repo_app, ["snapshots", "--repo", "s3://bucket/repo"])
    assert time.monotonic() - start < 5
    assert r.exit_code == 1, r.output
    assert "did not answer" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_timeouts_come_from_the_environment() -> None:
    config = s3_config_from_env("s3://b/p", {"KUBEKEEP_S3_CONNECT_TIMEOUT": "2.5", "KUBEKEEP_S3_READ_TIMEOUT": "7",
                                             "KUBEKEEP_S3_DEADLINE": "12"})
    assert (config.connect_timeout, config.read_timeout, config.deadline) == (2.5, 7.0, 12.0)
    default = S3Config(bucket="b")
    assert default.connect_timeout + default.read_timeout <= 30 and default.deadline <= 30
    with pytest.raises(ValueError, match="KUBEKEEP_S3_DEADLINE"):
        s3_config_from_env("s3://b/p", {"KUBEKEEP_S3_DEADLINE": "soon"})


def test_large_uploads_have_their_own_bounds(silent_endpoint: str) -> None:
    """A loaded server may take longer to store a pack than to answer a HEAD: uploads of at least
    transfer_size wait transfer_read_timeout, and metadata requests still fail fast."""
    storage = _storage(silent_endpoint, connect_timeout=1, read_timeout=1, deadline=1.5,
                       transfer_read_timeout=3, transfer_deadline=3.5)
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="deadline 1.5 s"):
        storage.put("small", b"x" * 1000)
    assert time.monotonic() - start < 2.5
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="deadline 3.5 s"):
        storage.put("data/ab/pack", b"p" * (2 * 1024 * 1024))
    assert 2.5 < time.monotonic() - start < 6
