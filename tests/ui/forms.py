"""Form helpers the browser tests share."""

from __future__ import annotations

import time
from typing import Any


def save_block(page: Any, attempts: int = 3) -> None:
    """Click a block form's Save and wait for the server's answer before the test looks for the block page.

    A 503 is SQLite's "database is locked" on a busy server (the worker is running the session's other
    runs): nothing was saved, the UI shows an error toast and stays on the form, so the test clicks Save
    again, as a user would."""
    for attempt in range(attempts):
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/block_documents/"),
                                  timeout=60_000) as answer:
            page.get_by_role("button", name="Save").click()
        if answer.value.status != 503 or attempt == attempts - 1:
            break
        time.sleep(2)
    assert answer.value.ok, f"{answer.value.status}: {answer.value.text()}"
