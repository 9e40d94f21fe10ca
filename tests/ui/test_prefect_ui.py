"""What docs/ui.md says about the Prefect UI, checked in a real browser.

Probe flows (tests/ui/probe/probe_flows.py) are deployed into the harness server and run
by the harness worker; the blocks are Kubekeep's own. These tests pin the Prefect
behaviour Kubekeep's typed parameters, blocks and pauses depend on, so a Prefect
upgrade that changes it fails here first.
"""

from __future__ import annotations

import contextvars
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import expect

from tests.plugins.deployments import KubekeepDeployments
from tests.plugins.prefect import api_client
from tests.ui.forms import save_block, submit

PROBES = Path(__file__).resolve().parent / "probe"
T = TypeVar("T")


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a Prefect sync/async method in a thread without an event loop (Playwright's runs in this one),
    in a copy of this context: Prefect's settings (the harness API URL) are context variables."""
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, fn, *args, **kwargs).result()


def field(page: Any, label: str) -> Any:
    """The innermost form group holding the field labelled ``label``."""
    return page.locator("div.group", has=page.get_by_text(label, exact=True)).last


def final_run(api: str, *, deployment: str | None = None, run_id: str | None = None,
              want: tuple[str, ...] = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"),
              timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with api_client(api) as client:
        while True:
            if run_id:
                runs = [client.get(f"/flow_runs/{run_id}").json()]
            else:
                runs = client.post("/flow_runs/filter", json={
                    "deployments": {"id": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_DESC",
                    "limit": 1}).json()
            if runs and runs[0]["state_type"] in want:
                return dict(runs[0])
            if time.monotonic() > deadline:
                pytest.fail(f"no run reached {want} in {timeout:.0f}s: {runs}", pytrace=False)
            time.sleep(1)


@pytest.fixture(scope="session")
def probes(kubekeep_deployments: KubekeepDeployments) -> dict[str, str]:
    """The probe flows deployed to the harness pool: name -> deployment id."""
    from prefect import flow

    def deploy(name: str, entrypoint: str) -> str:
        source = flow.from_source(source=str(PROBES), entrypoint=f"probe_flows.py:{entrypoint}")
        return str(source.deploy(name=name, work_pool_name=kubekeep_deployments.pool, print_next_steps=False,
                                 ignore_warnings=True))

    return {name: off_loop(deploy, name, entry) for name, entry in (("form-probe", "form_probe"),
                                                                      ("pause-probe", "pause_probe"))}


def test_run_form_renders_literals_models_and_docstrings(page: Any, ui_url: str, prefect_api: str,
                                                         probes: dict[str, str], kubekeep_worker: str,
                                                         screenshots: Path) -> None:
    deployment = probes["form-probe"]
    page.goto(f"{ui_url}/v2/deployments/deployment/{deployment}/run")
    # descriptions come from the Google-style Args: section
    expect(page.get_by_text("What to do with objects that exist.", exact=True)).to_be_visible()
    page.get_by_label("app", exact=True).fill("shop")
    # a Literal is a select of its values
    page.get_by_role("button", name="Select existing").click()
    expect(page.get_by_role("option")).to_have_count(3)
    page.get_by_role("option", name="update", exact=True).click()
    # list[Model] with an empty default: Add item gives the model's form, with its field descriptions
    field(page, "mappings (Optional)").get_by_role("button", name="Add item").click()
    expect(page.get_by_text("Namespace to restore into.", exact=True)).to_be_visible()
    page.get_by_label("Source", exact=True).fill("shop")
    page.get_by_label("Target", exact=True).fill("shop-copy")
    page.screenshot(path=str(screenshots / "probe-run-form.png"), full_page=True)
    submit(page)

    run = final_run(prefect_api, deployment=deployment)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["parameters"]["existing"] == "update"
    assert run["parameters"]["mappings"] == [{"source": "shop", "target": "shop-copy"}]
    # the flow's flow_run_name replaced the random name the form gave the run
    assert run["name"] == "probe shop→shop-copy"
    page.goto(f"{ui_url}/v2/runs/flow-run/{run['id']}")
    expect(page.get_by_text("probe shop→shop-copy", exact=True).first).to_be_visible()


def test_pause_offers_the_ids_as_a_select(page: Any, ui_url: str, prefect_api: str, probes: dict[str, str],
                                          kubekeep_worker: str, screenshots: Path) -> None:
    ids = [f"shop-2026112{i}T020000Z-abc12{i}" for i in (9, 8, 7)]
    with api_client(prefect_api) as client:
        created = client.post(f"/deployments/{probes['pause-probe']}/create_flow_run",
                              json={"parameters": {"ids": ids}})
        created.raise_for_status()
    run_id = created.json()["id"]
    final_run(prefect_api, run_id=run_id, want=("PAUSED", "FAILED", "CRASHED"))

    page.goto(f"{ui_url}/v2/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Pick one of the newest restore points")).to_be_visible()
    dialog.get_by_role("button", name="Select Restore Point").click()
    expect(page.get_by_role("option")).to_have_count(3)
    page.screenshot(path=str(screenshots / "probe-resume.png"))
    page.get_by_role("option", name=ids[1], exact=True).click()
    dialog.get_by_role("button", name="Resume", exact=True).click()

    run = final_run(prefect_api, run_id=run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    # the run's process sends its logs in batches, the last ones after its final state: poll for the line
    picked, deadline = False, time.monotonic() + 60
    with api_client(prefect_api) as client:
        while not picked and time.monotonic() < deadline:
            logs = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}).json()
            picked = any(f"pause-probe picked {ids[1]}" in line["message"] for line in logs)
            time.sleep(0 if picked else 1)
    assert picked, [line["message"] for line in logs]


def test_secret_block_fields_are_masked(page: Any, ui_url: str, kubekeep_deployments: KubekeepDeployments) -> None:
    page.goto(f"{ui_url}/v2/blocks/catalog/kubekeep-encryption-key/create")
    passphrase = field(page, "Passphrase (Optional)")
    passphrase.get_by_role("tab", name="password").click()
    box = passphrase.locator("input").first
    box.fill("typed secret")
    assert box.get_attribute("type") == "password"


def test_prefect_v2_saves_a_block_its_validators_refuse(page: Any, ui_url: str,
                                                        kubekeep_deployments: KubekeepDeployments) -> None:
    """Characterisation of Prefect 3.9's v2 UI (docs/ui.md, Blocks): an EncryptionKey with neither
    passphrase, key file nor key variable is saved; its model validator runs only when it is loaded."""
    from blocks import EncryptionKey

    name = f"empty-{uuid.uuid4().hex[:6]}"
    page.goto(f"{ui_url}/v2/blocks/catalog/kubekeep-encryption-key/create")
    page.get_by_label("Name", exact=True).fill(name)
    save_block(page)
    expect(page).to_have_url(re.compile(r"/v2/blocks/block/[0-9a-f-]+$"))
    # ... and the run that loads it fails with Prefect's "validate=False" advice around the real reason
    with pytest.raises(RuntimeError, match="failed validation.*validate=False") as failed:
        off_loop(EncryptionKey.load, name, _sync=True)
    assert "needs a passphrase, a key_file or a key_env" in str(failed.value.__cause__)
