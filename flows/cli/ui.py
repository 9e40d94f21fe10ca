"""`kubekeep ui`: from nothing to a working Prefect UI with Kubekeep deployed, in one command.

Starts a Prefect server (API and UI) on 127.0.0.1, registers Kubekeep's block types and saves the
``default`` location, key and cluster blocks the deployments name, creates the ``kubekeep`` work pool,
deploys prefect.yaml, starts a worker that polls every few seconds, prints the URL, and stops the
worker and the server on Ctrl-C. The server's database lives in ``<cache>/ui/`` (runs, blocks and
artifacts are kept between starts).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from .app import Flag, app
from .common import (
    ContextOpt,
    KubeconfigOpt,
    LocationOpt,
    PasswordFileOpt,
    cluster_connection,
    encryption_key,
    fail,
    location_profile,
)

ROOT = Path(__file__).resolve().parents[2]  # prefect.yaml and the flows' source
POOL = "kubekeep"


def _home() -> Path:
    from flows.runtime import cache_dir

    return Path(os.environ.get("KUBEKEEP_UI_HOME") or cache_dir() / "ui")


def _prefect(args: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        fail(f"{what} failed: {lines[-1] if lines else f'exit code {result.returncode}'}")


@app.command("ui")
def ui_cmd(
    location: LocationOpt,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the UI and API on 127.0.0.1.")
                    ] = 4200,
    poll: Annotated[float, typer.Option("--poll", min=0.5, help="Seconds between the worker's looks for runs.")
                    ] = 2.0,
    init: Annotated[bool, Flag("--init", help="Create the repository if the location holds none.")] = False,
) -> None:
    """Start the Prefect UI with Kubekeep deployed (server, blocks, work pool, deployments, worker); Ctrl-C
    stops everything."""
    from flows.runtime import healthy, template_database
    from kubekeep.process import ManagedProcess, wait_until

    loc = location_profile(location)
    key = encryption_key(password_file)
    conn = cluster_connection(kubeconfig, context)
    try:
        with key.open_repository(loc.storage(), create=init):
            pass
    except Exception as exc:  # noqa: BLE001 - one line for the user
        fail(f"{loc.describe()}: {str(exc).splitlines()[0]}" + ("" if init else " (--init creates a repository)"))

    home = _home()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    db = home / "prefect.db"
    if not db.exists():
        shutil.copyfile(template_database(), db)  # migrated once per Prefect version
    url = f"http://127.0.0.1:{port}"
    api = f"{url}/api"
    if healthy(api, timeout=1.0):
        fail(f"something already answers on {url}; choose another --port")
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{db}", "PREFECT_UI_ENABLED": "true",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_WORKER_QUERY_SECONDS": str(poll), "PREFECT_WORKER_PREFETCH_SECONDS": str(max(poll, 5.0))}

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Prefect's server app, with Kubekeep's block rules checked on save (flows/cli/ui_server.py)
    server = ManagedProcess("prefect-server", [sys.executable, "-m", "flows.cli.ui_server", str(port)], logs,
                            env={**env, "PREFECT_UI_API_URL": api, "PREFECT_SERVER_API_HOST": "127.0.0.1",
                                 "PREFECT_SERVER_API_PORT": str(port)}, cwd=ROOT)
    worker: ManagedProcess | None = None
    try:
        typer.echo(f"starting the Prefect server on {url} ...")
        wait_until(lambda: healthy(api) or stop.is_set(), timeout=180, what="Prefect server", processes=[server])
        if stop.is_set():
            return
        _prefect(["block", "register", "-m", "blocks"], env, "registering the blocks")
        _save_blocks(api, loc, key, conn)
        _prefect(["work-pool", "create", POOL, "--type", "process", "--overwrite"], env, "creating the work pool")
        _prefect(["--no-prompt", "deploy", "--all"], env, "deploying prefect.yaml")
        worker = ManagedProcess("prefect-worker", [sys.executable, "-m", "prefect", "worker", "start", "--pool",
                                                   POOL, "--type", "process"], logs, env=env, cwd=ROOT)
        typer.echo(f"Kubekeep UI: {url}\n"
                   f"  location {loc.describe()}, blocks 'default', work pool '{POOL}', worker polling every "
                   f"{poll:g}s\n"
                   f"  for the CLI and scripts: export PREFECT_API_URL={api}\n"
                   f"  logs: {logs}\n(Ctrl-C stops the worker and the server)")
        while not stop.wait(1.0):
            for process in (server, worker):
                if not process.alive():
                    fail(f"the {process.name} stopped (exit code {process.proc.returncode}); its log: "
                         f"{process.log_path}")
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        typer.echo("stopped the worker and the server")


def _save_blocks(api: str, loc: object, key: object, conn: object) -> None:
    """Save the ``default`` blocks the deployments name (overwriting: the command's options decide)."""
    import prefect.settings

    with prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_API_URL: api}):
        for block in (loc, key, conn):
            block.save("default", overwrite=True)  # type: ignore[attr-defined]
