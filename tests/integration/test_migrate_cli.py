"""`kubekeep migrate` as a user runs it, on two real control planes: --plan (table and JSON), a refused plan,
a cutover that needs --yes, a migration and its rollback; one-line errors, no tracebacks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from kubekeep.cluster import ApiError
from kubekeep.migrate import MigrationPlan
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import PROVISIONER

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "Starting temporary server", "Encountered exception", " INFO ")


def _kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, phrase: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    for noise in NOISE:
        assert noise not in output, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], result.stderr


def test_migrate_cli_plan_refusal_yes_run_and_rollback(prefect_api: str, two_clusters,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    ns, fast = f"cli-mig-{tag}", f"fast-{tag}"
    env = {"PREFECT_API_URL": prefect_api, "KUBEKEEP_PASSWORD": "cli-pass", "KUBEKEEP_TEST_CHEAP_KDF": "1",
           "COLUMNS": "200", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}
    location = str(tmp_path / "loc")
    base = ["migrate", "--app", "cli-shop", "-n", ns, "-l", location,
            "--from-kubeconfig", str(two_clusters.first.kubeconfig),
            "--to-kubeconfig", str(two_clusters.second.kubeconfig)]
    with two_clusters.first.connect() as new, two_clusters.second.connect() as old:
        new.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": fast},
                    "provisioner": PROVISIONER, "volumeBindingMode": "Immediate"})
        try:
            sample_app.create(new, ns)
            new.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "media", "namespace": ns},
                        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": fast,
                                 "resources": {"requests": {"storage": "1Gi"}}}})
            digests = sample_app.fill_volume(sample_app.volume_path(new, ns, "uploads"), seed="cli-mig", files=5)

            # a class the target lacks, not brought along: the plan is shown and refused, exit code 3
            refused = _kubekeep([*base, "--plan", "--exclude-kind", "StorageClass"], env)
            _one_line_error(refused, 3, "migration plan refused, nothing was written")
            assert fast in refused.stdout and "kubekeep-hostpath" in refused.stdout  # the suggestion

            mapped = [*base, "--exclude-kind", "StorageClass", "--storage-class-map", f"{fast}=kubekeep-hostpath"]
            planned = _kubekeep([*mapped, "--plan", "--json"], env)
            assert planned.returncode == 0, planned.stderr[-3000:]
            plan = MigrationPlan.from_json(planned.stdout)
            assert not plan.refused and plan.target_namespaces == [ns]
            assert old.get_or_none("v1", "Namespace", ns) is None

            # a cutover quiesces the source: not without --yes
            _one_line_error(_kubekeep(mapped, env), 2, "give --yes")
            assert old.get_or_none("v1", "Namespace", ns) is None
            bad = _kubekeep([*mapped, "--namespace-map", "no-equals-sign", "--yes"], env)
            assert bad.returncode == 2 and "Traceback" not in bad.stderr

            report = tmp_path / "migration.json"
            run = _kubekeep([*mapped, "--yes", "--init", "--report", str(report)], env)
            assert run.returncode == 0, run.stderr[-3000:]
            assert "migrated cli-shop" in run.stdout and "downtime" in run.stdout, run.stdout
            result = json.loads(report.read_text())
            assert result["downtime"]["seconds"] > 0 and all(v["equal"] for v in result["volumes"])
            path = sample_app.volume_path(old, ns, "uploads")
            assert {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in path.rglob("*") if p.is_file() and not p.is_symlink()} == digests
            assert old.get("v1", "PersistentVolumeClaim", "media", ns)["spec"]["storageClassName"] == \
                "kubekeep-hostpath"
            assert new.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 0

            back = _kubekeep([*base, "--rollback"], env)
            assert back.returncode == 0, back.stderr[-3000:]
            assert f"Deployment {ns}/web" in back.stdout
            assert new.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2
        finally:
            for cluster in (new, old):
                with contextlib.suppress(ApiError):
                    cluster.delete("v1", "Namespace", ns)
            new.delete("storage.k8s.io/v1", "StorageClass", fast)
