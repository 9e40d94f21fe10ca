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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


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
