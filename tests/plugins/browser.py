"""A real browser for the UI tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's own browser download (``playwright install``) fails on machines without
general network access, so the browser is the distribution's package
(``apt-get install chromium``; ``.ci/run`` installs it) and Playwright only drives it
(``executable_path``). Chromium runs headless with a fresh profile and with its
background networking off: on a closed network its update, sync and safe-browsing
connections are refused at every start, many at a time.

Fixtures:

- ``browser`` (session): one Chromium for the session, stopped after the last test
  that uses it (tests/plugins/lifetime.py) and at session end.
- ``ui_url`` (session): the root URL of the harness Prefect server's UI.
- ``screenshots`` (session): a temporary directory the UI tests save screenshots in;
  its path is printed at the end of the session. Kept after the session (the
  screenshots are the test's artifacts); ``KUBEKEEP_UI_SCREENSHOTS=DIR`` chooses it.
- ``page`` (function): a new browser context and page per test (1280x900); when the
  test fails, a screenshot of the page is saved as ``FAILED-<test>.png``. Actions and
  ``expect`` assertions wait up to 30 s (Playwright's assertions default to 5 s): a UI
  page first loads and runs its scripts, which takes seconds on a loaded 2-core machine.

Playwright's sync API keeps an asyncio event loop in the main thread while the browser
runs: test code there must call Prefect's dual sync/async methods with ``_sync=True``
(``Block.save(..., _sync=True)``), never ``asyncio.run``.

Without Chromium or Playwright the UI tests are skipped with the reason, except in CI
(``CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.lifetime import release_after_last_use

CHROMIUM = os.environ.get("KUBEKEEP_CHROMIUM", "/usr/bin/chromium")

#: the flags that keep Chromium quiet and quick on a machine without general network access
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio",
]

#: how long an action or an assertion waits for the page
UI_TIMEOUT_MS = 30_000

_reports: dict[str, pytest.TestReport] = {}
_screenshot_dir: list[Path] = []


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"UI tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        _reports[item.nodeid] = report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshot_dir:
        terminalreporter.write_line(f"UI screenshots: {_screenshot_dir[0]}")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the UI tests save their screenshots (kept after the session)."""
    explicit = os.environ.get("KUBEKEEP_UI_SCREENSHOTS")
    directory = Path(explicit) if explicit else Path(tempfile.mkdtemp(prefix="kubekeep-ui-shots-"))
    directory.mkdir(parents=True, exist_ok=True)
    _screenshot_dir[:] = [directory]
    return directory


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, launched once per session through Playwright."""
    reason = _missing()
    if reason:
        _unavailable(reason)
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    browser = None
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        try:
            if browser is not None:
                browser.close()
        finally:
            manager.stop()

    try:
        # launch() gives Chromium a new empty --user-data-dir of its own, removed on close
        browser = manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except BaseException:
        stop()
        raise
    release_after_last_use("browser", stop)
    try:
        yield browser
    finally:
        stop()


@pytest.fixture(scope="session")
def ui_url(prefect_api: str) -> str:
    """The harness Prefect server's UI (its root; the API is under /api)."""
    return prefect_api.removesuffix("/api")


@pytest.fixture
def page(browser: Any, screenshots: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context and page; a screenshot of the page is saved when the test fails."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = _reports.get(request.node.nodeid)
        if report is not None and report.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]
            # a screenshot must never hide the test's own failure
            with contextlib.suppress(Exception):
                page.screenshot(path=str(screenshots / f"FAILED-{name}.png"), full_page=True)
        context.close()
