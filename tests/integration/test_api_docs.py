"""docs/api.md's curl examples, run as written against the real Prefect server.

Every ``sh`` block of the page runs, in order, as one bash script (``set -euo pipefail``)
against the harness server, where prefect.yaml's ``backup-now`` and ``restore``
deployments are deployed and a worker runs their flows on the test cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

from kubekeep.cluster import Cluster
from tests.plugins.deployments import KubekeepDeployments

ROOT = Path(__file__).resolve().parents[2]


def doc_script(path: Path) -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 8, f"{path} lost its examples"
    return "set -euo pipefail\n" + "\n".join(blocks)


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
        result = subprocess.run(["bash", "-xc", doc_script(ROOT / "docs" / "api.md")], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=540)
        out = result.stdout
        trace = "\n".join(result.stderr.splitlines()[-25:])  # bash -x: the last commands run
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
