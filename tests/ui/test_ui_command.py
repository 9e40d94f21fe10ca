"""`kubekeep ui`: one command from nothing to a working Prefect UI with Kubekeep deployed; Ctrl-C stops it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from kubekeep.process import free_port
from tests.plugins.prefect import api_client

ROOT = Path(__file__).resolve().parents[2]


def test_kubekeep_ui_deploys_everything_and_stops_on_ctrl_c(tmp_path: Path, test_cluster: Any, page: Any,
                                                             screenshots: Path) -> None:
    port = free_port()
    (tmp_path / "pw").write_text("ui-secret\n")
    env = {**os.environ, "KUBEKEEP_UI_HOME": str(tmp_path / "home"), "KUBEKEEP_TEST_CHEAP_KDF": "1"}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-c", "from flows.cli import main; main()", "ui", "-l", str(tmp_path / "loc"),
               "--password-file", str(tmp_path / "pw"), "--kubeconfig", str(test_cluster.kubeconfig),
               "--port", str(port), "--init"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    try:
        deadline = time.monotonic() + 400
        assert proc.stdout is not None
        while not any(line.startswith("Kubekeep UI: ") for line in out):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(out)
            out.append(line)
            assert time.monotonic() < deadline, "".join(out)
        url = f"http://127.0.0.1:{port}"
        assert f"Kubekeep UI: {url}\n" in out
        with api_client(f"{url}/api") as client:
            names = {d["name"] for d in client.post("/deployments/filter", json={}).json()}
            assert {"nightly-backup", "backup-now", "restore", "restore-points"} <= names
            for slug in ("kubekeep-location-profile", "kubekeep-encryption-key", "kubekeep-cluster-connection"):
                client.get(f"/block_types/slug/{slug}/block_documents/name/default").raise_for_status()
            deadline = time.monotonic() + 120
            while not [w for w in client.post("/work_pools/kubekeep/workers/filter", json={}).json()
                       if w["status"] == "ONLINE"]:
                assert time.monotonic() < deadline, "no worker came online"
                time.sleep(1)
        assert (tmp_path / "loc" / "config").exists()  # --init created the repository
        page.goto(f"{url}/v2/deployments", wait_until="domcontentloaded")
        expect(page.get_by_role("link", name="restore-points", exact=True).first).to_be_visible()
        page.screenshot(path=str(screenshots / "kubekeep-ui-deployments.png"))
        # a scheduled deployment's page: Prefect shows the cron in words ("At 02:00 AM") without its
        # timezone; the description says it (tests/unit/ui/test_schedule_descriptions.py)
        page.get_by_role("link", name="nightly-backup", exact=True).first.click()
        expect(page.get_by_text("At 02:00 AM", exact=True).first).to_be_visible()
        page.get_by_role("tab", name="Description").click()
        expect(page.get_by_text(re.compile(r"Runs 02:00 every day, timezone UTC")).first).to_be_visible()
        page.go_back()

        # an encryption key with no passphrase, key file or key env is refused when saved in the browser
        page.goto(f"{url}/v2/blocks/catalog/kubekeep-encryption-key/create", wait_until="domcontentloaded")
        page.get_by_label("Name", exact=True).fill("empty")
        with page.expect_response(lambda r: r.request.method == "POST" and "/block_documents" in r.url) as saved:
            page.get_by_role("button", name="Save").click()
        assert saved.value.status == 422, saved.value.text()
        assert "an encryption key needs a passphrase, a key_file or a key_env" in saved.value.json()["detail"]
        expect(page).to_have_url(re.compile(r"/create$"))
        page.screenshot(path=str(screenshots / "kubekeep-ui-key-refused.png"))
        with api_client(f"{url}/api") as client:
            slug = "/block_types/slug/kubekeep-encryption-key/block_documents/name"
            assert client.get(f"{slug}/empty").status_code == 404  # nothing was saved
            # an edit that empties the default key is refused too; the key stays as it was
            default = client.get(f"{slug}/default", params={"include_secrets": "true"}).json()
            edit = client.patch(f"/block_documents/{default['id']}", json={
                "data": {"passphrase": None, "key_file": None, "key_env": None}, "merge_existing_data": False})
            assert edit.status_code == 422 and "needs a passphrase" in edit.json()["detail"], edit.text
            assert client.get(f"{slug}/default", params={"include_secrets": "true"}).json()["data"] == default["data"]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(out) + rest
    assert "stopped the worker and the server" in rest
    try:
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
        raise AssertionError("the server still answers after Ctrl-C")
    except httpx.TransportError:
        pass
