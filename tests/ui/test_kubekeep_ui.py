"""Kubekeep from the Prefect UI alone, in headless Chromium (docs/ui.md, "A walk through the UI").

The harness Prefect server runs prefect.yaml's deployments (backup-now, restore, restore-points)
with a worker on the test cluster; the browser fills the run forms Prefect generates from the
flows' typed parameters, and reads the keyed artifacts and the run pages. The screenshots are
saved under the session's screenshot directory (KUBEKEEP_UI_SCREENSHOTS to choose it).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from kubekeep.cluster import Cluster
from kubekeep.ui import point_label
from tests.plugins.deployments import KubekeepDeployments
from tests.plugins.prefect import api_client
from tests.ui.forms import save_block, submit

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def group(page: Any, label: str) -> Any:
    """The innermost form group of the field labelled ``label``."""
    return page.locator("div.group", has=page.get_by_text(label, exact=True)).last


def wait_for_run(api: str, deployment: str, matches: Callable[[dict[str, Any]], bool],
                 timeout: float = 300) -> dict[str, Any]:
    """The newest run of ``deployment`` that ``matches``, once it is in a final state."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    with api_client(api) as client:
        while time.monotonic() < deadline:
            runs = [r for r in client.post("/flow_runs/filter", json={
                "deployments": {"id": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_DESC",
                "limit": 20}).json() if matches(r)]
            if runs and runs[0]["state_type"] in FINAL:
                return dict(runs[0])
            time.sleep(1)
    pytest.fail(f"no matching run of {deployment} finished in {timeout:.0f}s: {runs[:1]}", pytrace=False)


def visit(page: Any, url: str) -> None:
    """Open ``url`` and go on once the document is parsed: the test then waits for the elements it
    needs, not for every script, font and image of the UI (the "load" event)."""
    page.goto(url, wait_until="domcontentloaded")


def open_latest_artifact(page: Any, ui_url: str, api: str, key: str) -> dict[str, Any]:
    """Artifacts → ``key`` (its history, newest first) → the newest version; return it (API form)."""
    with api_client(api) as client:
        artifact = client.get(f"/artifacts/{key}/latest").json()
    visit(page, f"{ui_url}/v2/artifacts/key/{key}")
    # the key's page lists its versions, newest first; each links to /artifacts/artifact/<id>
    page.locator("a[href*='/artifacts/artifact/']").first.click()
    expect(page).to_have_url(re.compile(r"/artifacts/artifact/[0-9a-f-]+"))  # then ?tab=Artifact
    return dict(artifact)


def test_backup_pick_and_restore_from_the_ui(page: Any, ui_url: str, prefect_api: str, cluster: Cluster,
                                            namespace: str, kubekeep_deployments: KubekeepDeployments,
                                            kubekeep_worker: str, screenshots: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
                    "data": {"color": "blue"}})
    app = f"ui-{uuid.uuid4().hex[:6]}"
    copy = f"{namespace[:50]}-copy"
    ids = kubekeep_deployments.deployments
    try:
        # 1. a custom run of backup-now: app and namespace typed into the form
        visit(page, f"{ui_url}/v2/deployments/deployment/{ids['backup-now']}/run")
        page.get_by_label("app", exact=True).fill(app)
        group(page, "namespaces").locator("textarea").first.fill(namespace)
        submit(page)
        run = wait_for_run(prefect_api, ids["backup-now"], lambda r: r["parameters"].get("app") == app)
        assert run["state_type"] == "COMPLETED", run["state"]
        assert re.fullmatch(rf"backup {app} \d{{4}}-\d\d-\d\dT\d\d:\d\dZ", run["name"]), run["name"]

        # 2. the restore-points deployment lists the new point in the keyed table
        visit(page, f"{ui_url}/v2/deployments/deployment/{ids['restore-points']}/run")
        page.get_by_label("app", exact=True).fill(app)
        submit(page)
        listed = wait_for_run(prefect_api, ids["restore-points"], lambda r: r["parameters"].get("app") == app)
        assert listed["state_type"] == "COMPLETED", listed["state"]
        assert listed["name"] == f"restore points of {app}"
        artifact = open_latest_artifact(page, ui_url, prefect_api, f"restore-points-{app}")
        assert artifact["flow_run_id"] == listed["id"]
        rows = json.loads(artifact["data"])  # a table artifact's data is its rows as a JSON string
        point = rows[0]["id"]
        assert point.startswith(f"{app}-") and rows[0]["status"] == "succeeded", rows
        expect(page.get_by_text(point, exact=True).first).to_be_visible()
        page.screenshot(path=str(screenshots / "restore-points.png"))

        # 3. a restore into a new namespace: the point's id, a namespace map entry through the typed form
        visit(page, f"{ui_url}/v2/deployments/deployment/{ids['restore']}/run")
        restore_point = group(page, "restore_point (Optional)")
        restore_point.get_by_role("tab", name="str").click()
        restore_point.locator("textarea").fill(point)
        group(page, "app (Optional)").locator("textarea").fill(app)
        mapping = group(page, "namespace_map (Optional)")
        mapping.get_by_role("button", name="Add item").click()
        mapping.get_by_label("Source", exact=True).fill(namespace)
        mapping.get_by_label("Target", exact=True).fill(copy)
        page.get_by_role("button", name="Select existing").click()
        page.get_by_role("option", name="update", exact=True).click()
        group(page, "dry_run (Optional)").get_by_role("switch").click()  # the deployment defaults to a dry run
        mapping.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshots / "restore-form.png"))
        submit(page)
        restored = wait_for_run(prefect_api, ids["restore"], lambda r: r["parameters"].get("restore_point") == point)
        assert restored["state_type"] == "COMPLETED", restored["state"]
        assert restored["parameters"]["namespace_map"] == [{"source": namespace, "target": copy}]
        assert restored["parameters"]["existing"] == "update" and restored["parameters"]["dry_run"] is False
        assert restored["name"] == f"restore {point_label(point)}→{copy}"
        assert cluster.get("v1", "ConfigMap", "settings", namespace=copy)["data"] == {"color": "blue"}

        # 4. the restore's report is a keyed artifact with the object table, linked from the run
        assert open_latest_artifact(page, ui_url, prefect_api, f"restore-{app}")["flow_run_id"] == restored["id"]
        expect(page.get_by_text(re.compile(rf"Restore \S+ of restore point {re.escape(point)}")).first
               ).to_be_visible()
        page.screenshot(path=str(screenshots / "restore-report.png"))
        open_latest_artifact(page, ui_url, prefect_api, f"restore-objects-{app}")
        expect(page.get_by_text(copy, exact=True).first).to_be_visible()
        expect(page.get_by_text("created", exact=True).first).to_be_visible()
    finally:
        cluster.delete("v1", "Namespace", copy)


def test_block_form_refuses_a_negative_lock_period(page: Any, ui_url: str, prefect_api: str,
                                                   kubekeep_deployments: KubekeepDeployments,
                                                   screenshots: Path) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    visit(page, f"{ui_url}/v2/blocks/catalog/kubekeep-location-profile/create")
    page.get_by_label("Name", exact=True).fill(name)
    path = group(page, "Path (Optional)")
    path.get_by_role("tab", name="str").click()
    path.locator("textarea").fill("/srv/backups")
    days = group(page, "Object Lock Days (Optional)").locator("input")
    days.fill("-1")
    page.get_by_role("button", name="Save").click()
    # Chromium refuses the form and says why next to the field; nothing is saved
    assert days.evaluate("e => e.validationMessage") == "Value must be greater than or equal to 0."
    expect(page).to_have_url(re.compile(r"/create$"))
    page.screenshot(path=str(screenshots / "block-refused.png"))
    with api_client(prefect_api) as client:
        found = client.get(f"/block_types/slug/kubekeep-location-profile/block_documents/name/{name}")
    assert found.status_code == 404


def test_a_failed_run_shows_its_reason_on_the_run_page(page: Any, ui_url: str, prefect_api: str,
                                                       kubekeep_deployments: KubekeepDeployments,
                                                       kubekeep_worker: str, screenshots: Path) -> None:
    # an encryption key with nothing in it: the v2 UI saves it (docs/ui.md, Blocks) ...
    name = f"empty-{uuid.uuid4().hex[:6]}"
    visit(page, f"{ui_url}/v2/blocks/catalog/kubekeep-encryption-key/create")
    page.get_by_label("Name", exact=True).fill(name)
    save_block(page)
    expect(page).to_have_url(re.compile(r"/v2/blocks/block/[0-9a-f-]+$"))
    # ... and the run that uses it fails with one sentence naming the block, the reason and the fix
    with api_client(prefect_api) as client:  # retries a 503 (SQLite busy), as Prefect's client does
        created = client.post(f"/deployments/{kubekeep_deployments.deployments['restore']}/create_flow_run",
                              json={"parameters": {"encryption_key": name, "app": "shop"}})
        created.raise_for_status()
    run_id = created.json()["id"]
    run = wait_for_run(prefect_api, kubekeep_deployments.deployments["restore"], lambda r: r["id"] == run_id)
    assert run["state_type"] == "FAILED"
    reason = (f"the encryption key block '{name}' is invalid: an encryption key needs a passphrase, a key_file or "
              "a key_env; edit it in the Prefect UI under Blocks")
    assert reason in run["state"]["message"]
    visit(page, f"{ui_url}/v2/runs/flow-run/{run_id}")
    line = page.get_by_text(reason).first  # on the Logs tab, the tab the run page opens with
    expect(line).to_be_visible()
    line.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "failed-run.png"))
