"""Form helpers the browser tests share."""

from __future__ import annotations

import time
from typing import Any

#: as many tries as Prefect's own client makes on a 503 (PREFECT_CLIENT_MAX_RETRIES=5, plus the first)
ATTEMPTS = 6


def click_until_answered(page: Any, button: str, answered: str, attempts: int = ATTEMPTS) -> None:
    """Click ``button`` and wait for the server's answer to the POST whose URL contains ``answered``.

    A 503 is SQLite's "database is locked" on a busy server (the worker is running the session's other
    runs; SQLite answers a write that would deadlock at once, without its busy timeout): nothing was
    created and the request may be repeated, which Prefect's own client does with a growing pause
    (docs/api.md). The UI shows an error toast and stays on the form, so the test clicks again after
    the same kind of pause, as a user would."""
    for attempt in range(attempts):
        with page.expect_response(lambda r: r.request.method == "POST" and answered in r.url,
                                  timeout=60_000) as answer:
            page.get_by_role("button", name=button).click()
        if answer.value.status != 503 or attempt == attempts - 1:
            break
        time.sleep(2 * (attempt + 1))
    assert answer.value.ok, f"{answer.value.status}: {answer.value.text()}"


def save_block(page: Any) -> None:
    """Save a block form (POST /block_documents/) and wait for the server's answer."""
    click_until_answered(page, "Save", "/block_documents/")


def submit(page: Any) -> None:
    """Submit a run form (POST .../create_flow_run) and wait for the new run."""
    click_until_answered(page, "Submit", "/create_flow_run")
