"""Session fixtures that stop as soon as no later test needs them.

Extra control planes and S3 sites are session-scoped (started once, on first
use), but idle servers cost CPU on a 2-core machine for the rest of a long
session. A fixture registers its stop function with :func:`release_after_last_use`;
after the teardown of the last collected test that uses the fixture, the stop
function runs. The fixture's own finalizer still runs at session end (stopping
twice is harmless), so a crash or ``-x`` never leaves anything running.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_last_user: dict[str, str] = {}  # fixture name -> nodeid of the last test that uses it
_release: dict[str, Callable[[], None]] = {}


def release_after_last_use(fixture: str, stop: Callable[[], None]) -> None:
    _release[fixture] = stop


def pytest_collection_finish(session: pytest.Session) -> None:
    _last_user.clear()
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            _last_user[name] = item.nodeid


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    for fixture, last in list(_last_user.items()):
        if last == item.nodeid and fixture in _release:
            _release.pop(fixture)()
