"""The `kubekeep` command as a user runs it: one-line errors, reports, restores listing, its own Prefect server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "Starting temporary server", "Encountered exception", "database is locked", " INFO ")


def _kubekeep(args: list[str], env: dict[str, str], *, api: bool = True) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    if not api:
        full.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=600)


def _one_line_error(result: subprocess.CompletedProcess[str], phrase: str) -> str:
    """The command failed with exactly one line on stderr containing ``phrase``, nothing noisy anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    for noise in NOISE:
        assert noise not in output, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli_env(prefect_api: str, test_cluster, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"PREFECT_API_URL": prefect_api, "KUBECONFIG": str(test_cluster.kubeconfig),
            "KUBEKEEP_PASSWORD": "cli-pass", "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "250",
            "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}


@pytest.fixture
def backed_up_app(cli_env: dict[str, str], cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "uploads"), seed="cli", files=3)
    location = str(tmp_path / "loc")
    result = _kubekeep(["backup", "--app", "cli-shop", "-n", namespace, "-l", location, "--init"], cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not result.stderr.strip(), result.stderr  # no banner, no Prefect logs, no progress off a terminal
    yield location
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")


def test_failing_commands_print_one_line_and_keep_details_in_the_log(backed_up_app: str, cli_env: dict[str, str],
                                                                     namespace: str, tmp_path: Path) -> None:
    location = backed_up_app
    restore = ["restore", "-l", location, "--namespace-map", f"{namespace}={namespace[:50]}-x"]

    line = _one_line_error(_kubekeep([*restore, "-p", "cli-shop-19990101T000000Z-000000"], cli_env),
                           "not found")
    log_file = Path(re.search(r"details: (\S+\.log)\)", line).group(1))  # type: ignore[union-attr]
    assert log_file.parent == tmp_path / "logs" and "Traceback" in log_file.read_text()

    _one_line_error(_kubekeep([*restore, "--app", "cli-shop"], {**cli_env, "KUBEKEEP_PASSWORD": "wrong"}),
                    "wrong passphrase")
    missing = tmp_path / "no-such-location"
    _one_line_error(_kubekeep(["restore", "-l", str(missing), "--app", "cli-shop"], cli_env), "does not exist")
    assert not missing.exists()  # a read command creates nothing
    _one_line_error(_kubekeep(["restores", "-l", str(missing)], cli_env), "does not exist")

    damaged = tmp_path / "damaged"
    shutil.copytree(location, damaged)
    for pack in (damaged / "data").rglob("*"):
        if pack.is_file():
            raw = bytearray(pack.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            pack.chmod(0o644)
            pack.write_bytes(bytes(raw))
    _one_line_error(_kubekeep(["restore", "-l", str(damaged), "--app", "cli-shop", "--namespace-map",
                               f"{namespace}={namespace[:50]}-bad"], cli_env), "authentication failed")

    # --verbose shows the details in the terminal (and still names the log)
    verbose = _kubekeep([*restore, "-p", "nope-19990101T000000Z-000000", "--verbose"], cli_env)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "details:" in verbose.stderr


def test_restore_report_file_and_restores_listing(backed_up_app: str, cli_env: dict[str, str], cluster: Cluster,
                                                  namespace: str, tmp_path: Path) -> None:
    location = backed_up_app
    copy = f"{namespace[:50]}-rep"
    transforms = tmp_path / "transforms.yaml"
    transforms.write_text("""
transforms:
  - type: labels
    selector: {kind: ConfigMap}
    add: {restored-by: kubekeep}
tiers:
  StatefulSet/db: 0
  Deployment/web: 1
""")
    try:
        result = _kubekeep(["restore", "-l", location, "--app", "cli-shop", "--namespace-map", f"{namespace}={copy}",
                            "--transforms", str(transforms), "--report", str(tmp_path / "report.json"),
                            "--ready-timeout", "200"], cli_env)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert result.stdout.startswith("completed") and not result.stderr.strip(), result.stderr
        restore_id = re.search(r"restore (r-\S+) of", result.stdout).group(1)  # type: ignore[union-attr]
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["restore_id"] == restore_id and report["cluster"] == "kubekeep-testbed"
        assert cluster.get("v1", "ConfigMap", "shop-config", copy)["metadata"]["labels"]["restored-by"] == "kubekeep"
        tiers = {p["tier"]: p for p in report["phases"] if p["tier"] is not None}
        assert tiers[1]["started_at"] >= tiers[0]["ready_at"]
        assert {v["pvc"]: v["status"] for v in report["volumes"]} == {f"{copy}/uploads": "verified",
                                                                       f"{copy}/data-db-0": "verified"}
        # the ClusterRoleBinding of the app's service account is a copy for the new namespace
        binding = next(o for o in report["outcomes"] if o["kind"] == "ClusterRoleBinding")
        assert binding["name"] == f"{copy}-shop-view" and binding["action"] == "created"
        subjects = cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", binding["name"])["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": "shop", "namespace": copy}]
        original = cluster.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")
        assert original["subjects"][0]["namespace"] == namespace  # the source keeps its grant
        # custom resources: the report says their status is not restored
        coupon = next(o for o in report["outcomes"] if o["kind"] == "Coupon")
        assert coupon["action"] == "created"

        listed = _kubekeep(["restores", "-l", location, "--app", "cli-shop"], cli_env)
        assert listed.returncode == 0 and restore_id in listed.stdout and "succeeded" in listed.stdout, listed.stderr
        shown = _kubekeep(["restores", "-l", location, "--id", restore_id, "--report", str(tmp_path / "r.md")],
                          cli_env)
        assert shown.returncode == 0, shown.stderr
        assert "StatefulSet.apps" in shown.stdout and f"{copy}/data-db-0" in shown.stdout
        markdown = (tmp_path / "r.md").read_text()
        assert "## Objects" in markdown and "| StatefulSet.apps |" in markdown and "## Volumes" in markdown

        # the catalog is derived data: deleted, rebuilt from the repository, the restore is there again
        shutil.rmtree(Path(location) / "catalog")
        rebuilt = _kubekeep(["catalog-rebuild", "-l", location], cli_env)
        assert rebuilt.returncode == 0 and "restores written: 1" in rebuilt.stdout, rebuilt.stderr
        again = _kubekeep(["restores", "-l", location, "--id", restore_id], {**cli_env,
                                                                          "KUBEKEEP_CACHE_DIR": str(tmp_path / "c2")})
        assert again.returncode == 0 and "StatefulSet.apps" in again.stdout, again.stderr
    finally:
        cluster.delete("v1", "Namespace", copy)
        cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{copy}-shop-view")


def test_without_prefect_api_url_a_quiet_temporary_server_runs_the_flow(cli_env: dict[str, str], cluster: Cluster,
                                                                         namespace: str, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}})
    env = {**cli_env, "PREFECT_HOME": str(tmp_path / "fresh-prefect-home"),
           "KUBEKEEP_CACHE_DIR": os.environ.get("KUBEKEEP_CACHE_DIR") or str(Path.home() / ".cache/kubekeep")}
    started = time.monotonic()
    result = _kubekeep(["backup", "--app", "tmp-server", "-n", namespace, "-l", str(tmp_path / "loc"), "--init"], env,
                       api=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("tmp-server-") and not result.stderr.strip(), result.stderr
    logs = list((tmp_path / "logs").glob("kubekeep-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "temporary Prefect server" in text and "database is locked" not in text
    print(f"backup through a temporary Prefect server: {elapsed:.1f}s; "
          f"{re.search(r'ready in [0-9.]+s', text).group(0)}")  # type: ignore[union-attr]


def test_demo_is_quiet_and_uses_the_cli_runtime(tmp_path: Path) -> None:
    """README's first command: the demo reports through the same runtime as every command (no Prefect banner,
    no INFO logs, a log file), on a temporary server from the pre-migrated template."""
    env = {"KUBEKEEP_DEMO_LOCATION": str(tmp_path / "demo-loc"), "KUBEKEEP_LOG_DIR": str(tmp_path / "logs"),
           "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "250"}
    result = _kubekeep(["demo"], env, api=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for noise in NOISE:
        assert noise not in output, output[-3000:]
    assert re.search(r"Restore point \S+: succeeded, \d+ objects", result.stdout), result.stdout
    assert list((tmp_path / "logs").glob("*.log")), "the demo writes its log file like every command"
