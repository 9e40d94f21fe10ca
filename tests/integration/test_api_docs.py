"""docs/api.md's curl examples, run as written against the real Prefect server.

Every ``sh`` block of the page runs, in order, as one bash script (``set -euo pipefail``)
against the harness server, where prefect.yaml's ``backup-now`` and ``restore``
deployments are deployed and a worker runs their flows on the test cluster.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kubekeep.cluster import Cluster
from tests.plugins.deployments import KubekeepDeployments

ROOT = Path(__file__).resolve().parents[2]


def doc_script(path: Path) -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 8, f"{path} lost its examples"
    return "set -euo pipefail\n" + "\n".join(blocks)


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _tail(trace: str) -> str:
    """bash -x's last commands: where the script was when it ended."""
    return "\n".join(trace.splitlines()[-25:])


def test_doc_script_is_every_sh_block() -> None:
    script = doc_script(ROOT / "docs" / "api.md")
    for call in ("/deployments/name/backup/backup-now", "/artifacts/restore-points-$APP/latest",
                 "/artifacts/restore-objects-$APP/latest", "/create_flow_run", "/flow_runs/$1", "/artifacts/filter",
                 "/logs/filter", "/flow_runs/filter", "/set_state"):
        assert call in script


def test_api_examples_run_against_the_real_server(kubekeep_deployments: KubekeepDeployments, kubekeep_worker: str,
                                                  cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"color": "blue"}})
    app = f"api-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PREFECT_API_URL": kubekeep_deployments.api, "APP": app, "NAMESPACE": namespace}
    copy = f"{namespace}-copy"
    try:
        try:
            result = subprocess.run(["bash", "-xc", doc_script(ROOT / "docs" / "api.md")], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=540)
        except subprocess.TimeoutExpired as timeout:
            pytest.fail(f"docs/api.md did not finish in 540 s; it printed:\n{_text(timeout.stdout)}\n"
                        f"its last commands (bash -x):\n{_tail(_text(timeout.stderr))}", pytrace=False)
        out = result.stdout
        trace = _tail(result.stderr)
        assert result.returncode == 0, f"docs/api.md failed ({result.returncode}):\n{out}\n{trace}"
        # the repeated start with the same idempotency key gave the same run
        assert re.search(r"^same run$", out, flags=re.M), out
        # the wrong parameter was refused, with the field named
        assert re.search(r"^409$", out, flags=re.M), out
        assert "volume_concurrency" in out
        # backup, dry run and restore each completed
        assert len(re.findall(r'"state":"COMPLETED"', out)) == 3, out
        # the backup's summary names its restore point; the restore table lists the ConfigMap as created
        assert re.search(rf"# Restore point `{re.escape(app)}-\d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}`", out), out
        assert re.search(rf"ConfigMap\t{re.escape(copy)}\tsettings\tcreated", out), out
        # the keyed index lists the restore point
        assert re.search(rf"^{re.escape(app)}-\d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}\t[^\t]+ UTC\tsucceeded\t", out,
                         flags=re.M), out
        # the recent-runs listing shows both restores; cancelling a finished run is refused
        assert "\tCOMPLETED\ttrue" in out and "\tCOMPLETED\tfalse" in out, out
        assert out.rstrip().endswith("ABORT"), out
        restored = cluster.get("v1", "ConfigMap", "settings", namespace=copy)
        assert restored is not None and restored["data"] == {"color": "blue"}
    finally:
        cluster.delete("v1", "Namespace", copy)


def test_a_server_that_never_answers_fails_the_helpers_instead_of_hanging(tmp_path: Path) -> None:
    """The page's ``api`` and ``wait_for`` give up on a server that accepts and never answers."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (ROOT / "docs" / "api.md").read_text(), flags=re.S | re.M)
    wait_for = re.search(r"^wait_for\(\) \{.*?^\}\n", "".join(blocks), flags=re.S | re.M)
    assert wait_for, "docs/api.md lost wait_for"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the backlog), never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        script = f"set -uo pipefail\n{blocks[0]}\n{wait_for.group(0)}\nwait_for some-run 1; echo \"exit $?\"\n"
        env = {**os.environ, "PREFECT_API_URL": url, "API_TIMEOUT": "1"}
        started = time.monotonic()
        try:
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("the page's helpers waited for a server that never answers", pytrace=False)
    assert result.stdout.strip() == "exit 1", (result.stdout, result.stderr)
    assert "run some-run not finished in time: no answer" in result.stderr, result.stderr
    assert time.monotonic() - started < 60
