"""A real Prefect API for the test session.

A real ``prefect server start`` (API plus services, so schedules fire, and the
web UI, so browser tests drive the same server), made fast to start: the SQLite
database is migrated once per Prefect version into a template in the cache
directory, and each session starts its server on a copy of it. PREFECT_HOME is
a temporary directory and analytics are off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


def _cache_dir() -> Path:
    base = os.environ.get("KUBEKEEP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubekeep")
    return Path(base)


def template_database() -> Path:
    """A migrated Prefect database for this Prefect version, made once and reused."""
    import prefect

    template = _cache_dir() / "prefect" / f"template-{prefect.__version__}.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_suffix(f".tmp-{os.getpid()}")
    env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp}",
           "PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-home-")}
    code = ("import asyncio\n"
            "from prefect.server.database import provide_database_interface\n"
            "asyncio.run(provide_database_interface().create_db())\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    os.replace(tmp, template)
    return template


def _drain_workers() -> None:
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass  # never started
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


@contextmanager
def prefect_server() -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 (API, services with the scheduler, and the UI at the
    server's root) against a copy of the template database; yield its API URL."""
    import prefect.settings

    from kubekeep.testbed.process import ManagedProcess, reserve_ports, wait_until

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
        wait_until(lambda: _healthy(url), timeout=90, what="Prefect server", processes=[server])
        stack.enter_context(prefect.settings.temporary_settings(updates={
            prefect.settings.PREFECT_API_URL: url,
            prefect.settings.PREFECT_HOME: str(home),
        }))
        # logs and events still queued must reach the API before it stops, or the
        # workers retry against a closed port for a minute at interpreter exit
        stack.callback(_drain_workers)
        yield url


def _healthy(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - loopback
        return bool(resp.status == 200)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of a real Prefect API shared by the session's flow tests."""
    with prefect_server() as url:
        yield url
