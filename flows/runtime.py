"""How the `kubekeep` command runs flows: which Prefect API, where logs go, telemetry off.

- **API.** When ``PREFECT_API_URL`` is set (environment or Prefect profile) the
  flows run against that server (checked with one ``/health`` call). Otherwise a
  temporary Prefect server is started on 127.0.0.1 for this one command, on a
  copy of a database that was migrated (and had its block types registered) once
  per Prefect version (``<cache>/prefect/template-<version>.db``), so no command
  pays for migrations; it is stopped when the command ends.
- **Logs.** Prefect's console output (the "Starting temporary server" banner,
  INFO lines, "Encountered exception" tracebacks) and the temporary server's
  own output go to a log file (``<cache>/logs/kubekeep-<time>-<pid>.log``, or
  ``$KUBEKEEP_LOG_DIR``), never to the terminal, unless ``--verbose``. The
  command prints one line per error and names the log file.
- **Telemetry** is off (``DO_NOT_TRACK``, server analytics).

Set before Prefect is imported: everything here imports Prefect lazily.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("kubekeep.cli")

#: what keeps Prefect quiet and private, set before it is imported (a user's explicit values win)
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}
KEEP_LOGS = 20


class PrefectUnavailable(RuntimeError):
    """The Prefect API named by PREFECT_API_URL does not answer, or the temporary server did not start."""


def cache_dir() -> Path:
    base = os.environ.get("KUBEKEEP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubekeep")
    return Path(base)


def quiet_environment() -> None:
    """Telemetry off and no UI; call before Prefect is imported."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def new_log_file() -> Path:
    """A fresh log file for one command (older ones beyond the last few are removed)."""
    directory = Path(os.environ.get("KUBEKEEP_LOG_DIR") or cache_dir() / "logs")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = sorted(directory.glob("kubekeep-*.log"))
    for stale in old[:max(0, len(old) - KEEP_LOGS + 1)]:
        stale.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"kubekeep-{stamp}-{os.getpid()}.log"
    path.touch(mode=0o600)
    return path


def route_logs(log_file: Path, *, verbose: bool) -> logging.Handler:
    """Send every log record (Prefect's included) to ``log_file``; drop the console handlers unless
    ``verbose``. Call after Prefect is imported (it installs its handlers on import)."""
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name, obj in
                                       list(logging.root.manager.loggerDict.items())
                                       if isinstance(obj, logging.Logger)]
    for logger in loggers:
        consoles = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                    and not isinstance(h, logging.FileHandler)]
        if not verbose:
            for h in consoles:
                logger.removeHandler(h)
        if consoles and not logger.propagate:
            logger.addHandler(handler)
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("kubekeep", "flows", "tasks"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)
    return handler


def template_database() -> Path:
    """A Prefect database migrated, with its block types registered, once per Prefect version."""
    from importlib.metadata import version

    template = cache_dir() / "prefect" / f"cli-template-{version('prefect')}.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_suffix(f".tmp-{os.getpid()}")
    home = tempfile.mkdtemp(prefix="kubekeep-prefect-template-")
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": home,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp}"}
    env.pop("PREFECT_API_URL", None)
    code = ("import asyncio\n"
            "from prefect.server.database import provide_database_interface\n"
            "from prefect.server.models.block_registration import run_block_auto_registration\n"
            "async def main():\n"
            "    db = provide_database_interface()\n"
            "    await db.create_db()\n"
            "    async with await db.session() as session:\n"
            "        await run_block_auto_registration(session=session)\n"
            "        await session.commit()\n"
            "asyncio.run(main())\n")
    try:
        subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, timeout=300)
        os.replace(tmp, template)
    except subprocess.CalledProcessError as exc:
        raise PrefectUnavailable("could not prepare the Prefect database: "
                                 + (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:][0]
                                 if exc.stderr else "could not prepare the Prefect database") from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    return template


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    import urllib.error  # only commands that run flows ask (~50 ms of every command's start-up otherwise)
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class TemporaryServer:
    """A Prefect API server on 127.0.0.1 for one command (no UI, no analytics), on a copy of the template
    database; its output goes to the command's log file. Started before this process imports Prefect, so
    the two start-ups overlap."""

    def __init__(self, log_file: Path) -> None:
        from kubekeep.process import ManagedProcess, free_port

        self.log_file = log_file
        self.home = Path(tempfile.mkdtemp(prefix="kubekeep-prefect-"))
        db = self.home / "prefect.db"
        shutil.copyfile(template_database(), db)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        env = {**QUIET_ENV, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.url,
               "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{db}",
               "PREFECT_API_DATABASE_MIGRATE_ON_START": "false", "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
               "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
        self.started = time.monotonic()
        self.process = ManagedProcess("prefect-server", [
            sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--lifespan", "on"],
            self.home, env=env)

    def wait(self, timeout: float = 90.0) -> str:
        while not healthy(self.url, timeout=1.0):
            if not self.process.alive():
                raise PrefectUnavailable(f"the temporary Prefect server exited with code "
                                         f"{self.process.proc.returncode} (its output is in {self.log_file})")
            if time.monotonic() - self.started > timeout:
                raise PrefectUnavailable(f"the temporary Prefect server did not answer within {timeout:.0f}s "
                                         f"(its output is in {self.log_file})")
            time.sleep(0.05)
        log.info("temporary Prefect server %s ready in %.2fs", self.url, time.monotonic() - self.started)
        return self.url

    def stop(self) -> None:
        self.process.stop()
        _append_log(self.process.log_path, self.log_file)
        shutil.rmtree(self.home, ignore_errors=True)


def _append_log(source: Path, target: Path) -> None:
    try:
        text = source.read_text(errors="replace")
    except OSError:
        return
    if text.strip():
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"---- temporary Prefect server output ----\n{text}")


def drain_prefect_workers() -> None:
    """Send the logs and events still queued to the API before it goes away (else Prefect's workers
    retry against a closed port at interpreter exit)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            logs: object = APILogWorker.instance().drain()
            if inspect.isawaitable(logs):
                await logs
        except RuntimeError:
            pass  # never started
        events: object = EventsWorker.drain_all()
        if inspect.isawaitable(events):
            await events

    try:
        run_coro_as_sync(drain())
    except Exception:  # noqa: BLE001 - best effort at the end of a command; logged, never shown
        log.debug("draining Prefect's workers failed", exc_info=True)


def start_server_early(log_file: Path) -> TemporaryServer | None:
    """Start the temporary server now (before Prefect is imported here) unless PREFECT_API_URL is set in the
    environment; a Prefect profile that sets it is honoured later (the early server is then stopped)."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    return TemporaryServer(log_file)


@contextmanager
def flow_api(log_file: Path, server: TemporaryServer | None = None) -> Iterator[str]:
    """The Prefect API the flows of this command report to: PREFECT_API_URL when set (and answering),
    else a temporary server (``server``, if one was started early). Prefect is imported here."""
    import prefect.settings

    configured = prefect.settings.PREFECT_API_URL.value()
    if configured and server is not None:  # set by a Prefect profile: that server is the one to use
        server.stop()
        server = None
    with ExitStack() as stack:
        if server is not None:
            stack.callback(server.stop)
        if configured:
            if not healthy(configured, timeout=5.0):
                raise PrefectUnavailable(f"the Prefect API at {configured} (PREFECT_API_URL) does not answer; "
                                         "start it, or unset PREFECT_API_URL to use a temporary server")
            log.info("using the Prefect API at %s", configured)
            stack.callback(drain_prefect_workers)
            yield configured
            return
        if server is None:
            server = TemporaryServer(log_file)
            stack.callback(server.stop)
        url = server.wait()
        stack.enter_context(prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_API_URL: url}))
        stack.callback(drain_prefect_workers)
        yield url
