"""The approval pause's key (flows.approval.pause_key): Prefect accepts only lowercase letters, digits, dashes."""

from __future__ import annotations

import re

from flows.approval import pause_key


def test_pause_keys_are_what_prefect_accepts() -> None:
    assert pause_key("approve-restore-r-20261130T005222Z-d236f5") == "approve-restore-r-20261130t005222z-d236f5"
    assert pause_key("approve-cutover-Shop.Prod_1") == "approve-cutover-shop-prod-1"
    assert pause_key("...") == "approval"
    assert re.fullmatch(r"[a-z0-9-]{1,80}", pause_key("x" * 200))
