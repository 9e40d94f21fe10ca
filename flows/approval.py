"""Asking a person in the Prefect UI before a step that changes a cluster: the run pauses with a typed
input form (approve or abort, and why) and goes on with the answer (docs/ui.md, "Approvals").

The one home of that pause: the migrate flow asks before its cutover, the restore flow (``approval:
pause``) after its dry run and before it changes anything, the retention flow before it deletes more
than its approval share of an app's points. Resume from the UI (the paused run's page →
Resume shows the form) or through the API: ``POST /api/flow_runs/<id>/resume`` with
``{"run_input": {"approve": true, "reason": "..."}}`` (docs/api.md).
"""

from __future__ import annotations

import re
from typing import Literal

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

#: how often a paused run asks the API whether it was answered
APPROVAL_POLL_SECONDS = 3

#: the ``approval`` parameter of the flows that can ask (none: go on without asking)
ApprovalMode = Literal["none", "pause"]


class Approval(RunInput):
    """Approve the step this run waits for (its description above says what it will do), or abort it."""

    approve: bool = Field(default=False, description="Go on now (false: abort; nothing more is changed).")
    reason: str = Field(default="", description="Why (kept in the run's logs).")


def pause_key(text: str) -> str:
    """``approve-restore-r-20261130t005222z-d236f5``: Prefect keeps a pause's input under its key, which may hold
    only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:80] or "approval"


def ask_approval(what: str, description: str, *, key: str, timeout: int) -> Approval:
    """Pause the current flow run until someone answers the approval form for ``what`` (a short phrase:
    ``cutover of m-1``); ``description`` (Markdown) is shown above the form; ``key`` names this pause in the
    run (any text: it is made a valid key). Log and return the answer. A timeout fails the run (Prefect's own
    error) and approves nothing."""
    form = Approval.with_initial_data(description=description, approve=False)
    answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=APPROVAL_POLL_SECONDS,
                            key=pause_key(key))
    get_run_logger().info("%s: %s (%s)", what, "approved" if answer.approve else "not approved",
                          answer.reason or "no reason given")
    return answer
