"""`kubekeep policy check|apps|save` and `kubekeep protect` as a user runs them: one-line errors, the
cluster's apps matched against a policy file, policies saved as blocks in a real Prefect API, and a
policy run now against a real control plane."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from blocks import ProtectionPolicy
from kubekeep.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def _kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900)


def _policy_file(tmp_path: Path, prefix: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(f"""
policies:
  - name: {prefix}
    apps: {{namespaces: ["{prefix}-*"], exclude: ["{prefix}-tmp"]}}
    schedule: {{cron: "15 3 * * *", timezone: Europe/Berlin}}
    retention: {{keep_daily: 7, keep_weekly: 4}}
    location: primary
""")
    return path


def test_policy_check_and_save_errors_are_one_line(prefect_api: str, tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": prefect_api, "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\napps: {all: true}\nschedule: {cron: '61 * * * *'}\nretention: {keep_daily: 3}\n"
                   "location: primary\n")
    for args, phrase in ((["policy", "check", str(bad)], "schedule.cron"),
                         (["policy", "check", str(tmp_path / "missing.yaml")], "cannot read the policy file"),
                         (["policy", "save", str(bad)], "schedule.cron")):
        result = _kubekeep(args, env)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1 and phrase in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr

    prefix = f"pc-{uuid.uuid4().hex[:6]}"
    good = _policy_file(tmp_path, prefix)
    checked = _kubekeep(["policy", "check", str(good)], env)
    assert checked.returncode == 0 and f"{prefix}: ok" in checked.stdout and "+01:00" in checked.stdout
    saved = _kubekeep(["policy", "save", str(good)], env)
    assert saved.returncode == 0, saved.stderr
    assert ProtectionPolicy.load(prefix).retention.keep_weekly == 4
    again = _kubekeep(["policy", "save", str(good)], env)
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert again.returncode == 1 and len(lines) == 1 and "--overwrite" in lines[0], again.stderr
    assert _kubekeep(["policy", "save", str(good), "--overwrite"], env).returncode == 0


def test_policy_apps_and_protect_now(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                     tmp_path: Path) -> None:
    prefix = f"pa-{uuid.uuid4().hex[:6]}"
    env = {"PREFECT_API_URL": prefect_api, "KUBECONFIG": str(test_cluster.kubeconfig), "COLUMNS": "250",
           "KUBEKEEP_PASSWORD": "policy-cli", "KUBEKEEP_TEST_CHEAP_KDF": "1",
           "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}
    path = _policy_file(tmp_path, prefix)
    created = []
    try:
        for name in (f"{prefix}-web", f"{prefix}-tmp"):
            cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            created.append(name)
            cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": name, "name": "c"},
                            "data": {"k": "v"}})
        apps = _kubekeep(["policy", "apps", str(path)], env)
        assert apps.returncode == 0, apps.stderr
        rows = {line.split()[1]: line for line in apps.stdout.splitlines() if f"{prefix}-" in line and "│" in line}
        assert "protected" in rows[f"{prefix}-web"] and "unprotected" in rows[f"{prefix}-tmp"], apps.stdout

        location = tmp_path / "location"
        run = _kubekeep(["protect", "-f", str(path), "-l", str(location), "--init", "--no-verify"], env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"{prefix}-web: backed up {prefix}-web-" in run.stdout, run.stdout
        assert f"{prefix}-tmp" in run.stdout.split("unprotected:")[1]
        points = _kubekeep(["restore-points", "-l", str(location), "--app", f"{prefix}-web"], env)
        assert points.returncode == 0 and f"{prefix}-web-" in points.stdout, points.stdout + points.stderr
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)
