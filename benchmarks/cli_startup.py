"""What a `kubekeep` command pays for Prefect before its flow does any work.

Each case runs a fresh Python process that imports Prefect, gets a Prefect API and runs a flow of one
trivial task, the way `kubekeep backup`/`restore` do:

- ``prefect-ephemeral``: Prefect's own default (no PREFECT_API_URL, a fresh PREFECT_HOME): its temporary
  server migrates a new database on every command;
- ``kubekeep-temporary``: flows.runtime: a server on a copy of a pre-migrated template database, started
  before this process imports Prefect;
- ``reuse PREFECT_API_URL``: a server that is already running.

    python benchmarks/cli_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PREFECT_DEFAULT = """
import time
t0 = time.perf_counter()
from prefect import flow, task
@task
def one() -> int:
    return 1
@flow
def trivial() -> int:
    return one()
trivial()
print(f"{time.perf_counter() - t0:.2f}")
"""

KUBEKEEP = """
import time
t0 = time.perf_counter()
from flows.runtime import flow_api, new_log_file, quiet_environment, route_logs, start_server_early
quiet_environment()
log_file = new_log_file()
server = start_server_early(log_file)
import prefect
route_logs(log_file, verbose=False)
from prefect import flow, task
@task
def one() -> int:
    return 1
@flow
def trivial() -> int:
    return one()
with flow_api(log_file, server):
    trivial()
print(f"{time.perf_counter() - t0:.2f}")
"""


def run(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kkb-cli-"))
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    base.update({"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "KUBEKEEP_LOG_DIR": str(work / "logs"),
                 "PYTHONPATH": str(ROOT)})
    results: dict[str, list[float]] = {"prefect-ephemeral": [], "kubekeep-temporary": [], "reuse PREFECT_API_URL": []}
    sys.path.insert(0, str(ROOT))
    from flows.runtime import TemporaryServer, template_database

    template_database()  # made once per Prefect version; not part of a command's cost
    server = TemporaryServer(work / "server.log")
    try:
        url = server.wait()
        for i in range(args.repeat):
            home = work / f"home-{i}"
            results["prefect-ephemeral"].append(run(PREFECT_DEFAULT, {**base, "PREFECT_HOME": str(home)}))
            results["kubekeep-temporary"].append(run(KUBEKEEP, {**base, "PREFECT_HOME": str(home) + "-k"}))
            results["reuse PREFECT_API_URL"].append(run(KUBEKEEP, {**base, "PREFECT_HOME": str(home) + "-r",
                                                                   "PREFECT_API_URL": url}))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    import prefect

    print(f"- {os.cpu_count()} CPUs, Python {platform.python_version()}, Prefect {prefect.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\n| Prefect API | best | median | worst |\n|---|---:|---:|---:|")
    for name, values in results.items():
        values.sort()
        print(f"| {name} | {values[0]:.1f} s | {values[len(values) // 2]:.1f} s | {values[-1]:.1f} s |")


if __name__ == "__main__":
    main()
