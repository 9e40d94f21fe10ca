"""A real Prefect API for the test session.

A real ``prefect server start`` (API plus services, so schedules fire, and the
web UI, so browser tests drive the same server), made fast to start: the SQLite
database is migrated once per Prefect version into a template in the cache
directory (the same template the ``kubekeep`` command's temporary server uses:
flows/runtime.py), and each session starts its server on a copy of it.
PREFECT_HOME is a temporary directory and analytics are off.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


RETRYABLE = frozenset({429, 502, 503})


class _RetryingTransport(httpx.HTTPTransport):
    """Retries the answers Prefect's server gives for errors a client can retry (503 when its SQLite
    database is locked under load, 429), as Prefect's own client does; the last answer is returned."""

    def __init__(self, attempts: int) -> None:
        super().__init__(retries=2)  # connection errors too
        self.attempts = attempts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body is sent again on a retry
        for attempt in range(1, self.attempts + 1):
            response = super().handle_request(request)
            if response.status_code not in RETRYABLE or attempt == self.attempts:
                return response
            response.read()
            response.close()
            time.sleep(min(0.25 * 2 ** attempt, 4.0))
        raise AssertionError("unreachable")


def api_client(base_url: str, *, timeout: float = 10, attempts: int = 6) -> httpx.Client:
    """An HTTP client for the tests' raw calls to a Prefect API: retries 429/502/503 (up to ``attempts``
    requests in all, ~15 s of backoff at the default)."""
    return httpx.Client(base_url=base_url, timeout=timeout, transport=_RetryingTransport(attempts))


@contextmanager
def prefect_server() -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 (API, services with the scheduler, and the UI at the
    server's root) against a copy of the template database; yield its API URL."""
    import prefect.settings

    from flows.runtime import drain_prefect_workers, healthy, template_database
    from kubekeep.process import ManagedProcess, reserve_ports, wait_until

    home = Path(tempfile.mkdtemp(prefix="kubekeep-prefect-"))
    db = home / "prefect.db"
    shutil.copyfile(template_database(), db)
    ports = reserve_ports(1)  # held until the server has stopped (released last)
    port = ports.ports[0]
    url = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{db}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # the UI costs nothing measurable at start (its static files are copied once per Prefect
        # version); the browser tests (tests/ui) use it
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_UI_API_URL": url,
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_API_URL": url,
        # schedules are tested: let the scheduler look often
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    }
    with ExitStack() as stack:
        stack.callback(ports.release)
        stack.callback(shutil.rmtree, home, True)
        server = ManagedProcess("prefect-server", [
            sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
            "--analytics-off", "--log-level", "WARNING"], home, env=env)
        stack.callback(server.stop)
        wait_until(lambda: healthy(url), timeout=90, what="Prefect server", processes=[server])
        stack.enter_context(prefect.settings.temporary_settings(updates={
            prefect.settings.PREFECT_API_URL: url,
            prefect.settings.PREFECT_HOME: str(home),
        }))
        # logs and events still queued must reach the API before it stops, or the
        # workers retry against a closed port for a minute at interpreter exit
        stack.callback(drain_prefect_workers)
        yield url


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of a real Prefect API shared by the session's flow tests."""
    with prefect_server() as url:
        yield url


def flow_in_thread(run_flow: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a flow in a thread, so the test can find it paused and resume it; the returned dict gets the flow's
    return value under ``outcome``, or what it raised under ``error``."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = run_flow(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    # the Prefect settings of the test (its API URL) are context variables: the run's thread gets a copy
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    return thread, result
