"""The browser test bed: headless Debian Chromium opens the harness Prefect server's UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.plugins.deployments import KubekeepDeployments
from tests.plugins.prefect import api_client


def test_ui_shows_kubekeep_deployments_and_flows(page: Any, ui_url: str, screenshots: Path,
                                                 kubekeep_deployments: KubekeepDeployments) -> None:
    # the root redirects to the default UI (v2 in Prefect 3.9): what a new user opening the URL sees
    page.goto(ui_url + "/")
    page.get_by_role("link", name="Deployments", exact=True).click()
    for name in ("backup-now", "restore"):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    page.screenshot(path=str(screenshots / "deployments.png"), full_page=True)

    page.get_by_role("link", name="Flows", exact=True).click()
    for name in ("backup", "restore"):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    page.screenshot(path=str(screenshots / "flows.png"), full_page=True)

    # a deployment's page names its work pool: the one the harness deployed to
    page.goto(f"{ui_url}/v2/deployments/deployment/{kubekeep_deployments.deployments['backup-now']}")
    expect(page.get_by_text(kubekeep_deployments.pool, exact=True).first).to_be_visible()
    assert (screenshots / "deployments.png").stat().st_size > 10_000


def test_blocks_of_the_deployments_are_saved(page: Any, ui_url: str,
                                             kubekeep_deployments: KubekeepDeployments) -> None:
    # the blocks the deployments name exist in the server (saved while the browser's event loop runs),
    # and each opens on its own page in the UI (the Blocks list pages by 10, and the session's other
    # tests save more blocks than that, so the list's first page cannot show them all)
    names = list(kubekeep_deployments.blocks().values())
    with api_client(kubekeep_deployments.api) as client:
        found = client.post("/block_documents/filter",
                            json={"block_documents": {"name": {"any_": names}}}).json()
    ids = {document["name"]: document["id"] for document in found}
    assert sorted(ids) == sorted(names)
    for name in names:
        page.goto(f"{ui_url}/v2/blocks/block/{ids[name]}")
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
