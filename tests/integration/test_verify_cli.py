"""`kubekeep verify`, `kubekeep verifications` and the verification column of `kubekeep restore-points`, as a
user runs them: on the test bed, with the Prefect API, one-line errors and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app
from tests.integration.test_cli_errors_and_reports import _kubekeep, _one_line_error


@pytest.fixture
def cli_env(prefect_api: str, test_cluster, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"PREFECT_API_URL": prefect_api, "KUBECONFIG": str(test_cluster.kubeconfig),
            "KUBEKEEP_PASSWORD": "cli-verify", "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "250",
            "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}


@pytest.fixture
def backed_up(cli_env: dict[str, str], cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "uploads"), seed="cli-verify", files=3)
    location = str(tmp_path / "loc")
    result = _kubekeep(["backup", "--app", "cli-verify", "-n", namespace, "-l", location, "--init"], cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    yield location
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")


def test_verify_verifications_and_the_restore_points_column(backed_up: str, cli_env: dict[str, str],
                                                             tmp_path: Path, cluster: Cluster) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("checks:\n  - {type: exec, name: db-ping, pod_selector: app=db, command: [sh, -c, echo up], "
                      "stdout_regex: up}\nisolation: {max_replicas: 1}\n")
    passed = _kubekeep(["verify", "-l", backed_up, "--app", "cli-verify", "--policy", str(policy)], cli_env)
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-3000:]
    assert "db-ping" in passed.stdout and ": passed; RTO" in passed.stdout and "teardown complete" in passed.stdout

    policy.write_text("checks:\n  - {type: exec, name: db-down, pod_selector: app=db, command: [sh, -c, exit 7], "
                      "timeout_seconds: 2, interval_seconds: 1}\n")
    failed = _kubekeep(["verify", "-l", backed_up, "--app", "cli-verify", "--policy", str(policy)], cli_env)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "Traceback" not in failed.stdout + failed.stderr
    assert "reason: db-down: " in failed.stdout and "exit code 7" in failed.stdout

    stats = _kubekeep(["verifications", "-l", backed_up, "--app", "cli-verify"], cli_env)
    assert stats.returncode == 0, stats.stderr[-3000:]
    rows = [line.replace("│", " ").split() for line in stats.stdout.splitlines() if "50%" in line]
    assert len(rows) == 1 and rows[0][:5] == ["cli-verify", "2", "1", "1", "0"] and "failed" in rows[0], stats.stdout

    points = _kubekeep(["restore-points", "-l", backed_up, "--app", "cli-verify"], cli_env)
    assert points.returncode == 0, points.stderr[-3000:]
    assert "verified" in points.stdout and "FAILED" in points.stdout, points.stdout  # the newest verdict counts

    # bad input: one line, nothing lost
    policy.write_text("checks:\n  - {type: exec, name: Bad Name, pod_selector: app=db, command: [true]}\n")
    bad = _kubekeep(["verify", "-l", backed_up, "--app", "cli-verify", "--policy", str(policy)], cli_env)
    assert bad.returncode == 2 and "check name 'Bad Name'" in bad.stderr and "Traceback" not in bad.stderr
    both = _kubekeep(["verify", "-l", backed_up], cli_env)
    assert both.returncode == 2 and "--restore-point ID or --app NAME" in both.stderr
    _one_line_error(_kubekeep(["verifications", "-l", backed_up, "--id", "v-nope"], cli_env),
                    "verification v-nope not found")
    _one_line_error(_kubekeep(["verify", "-l", backed_up, "--app", "no-such-app"], cli_env),
                    "no succeeded restore point of app 'no-such-app'")
    left = list(cluster.list_pages(cluster.resource_for("v1", "Namespace"), label_selector="kubekeep.io/sandbox"))
    assert all((n.get("status") or {}).get("phase") == "Terminating" for n in left), left
