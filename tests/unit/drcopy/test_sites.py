"""The two sites of a copy are opened side by side (two Argon2id derivations at once, not one after the other)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from kubekeep.drcopy.sites import open_sites
from kubekeep.repo.errors import RepositoryError, RepositoryNotFoundError


def test_both_sites_are_opened_at_the_same_time() -> None:
    # each opening waits for the other to have started: opened one after the other, this times out
    started = [threading.Event(), threading.Event()]

    def opener(me: int, value: str) -> Callable[[], str]:
        def run() -> str:
            started[me].set()
            assert started[1 - me].wait(10), "the other site was not being opened meanwhile"
            return value
        return run

    assert open_sites(opener(0, "src"), opener(1, "dst")) == ("src", "dst")


def test_a_destination_without_a_repository_is_none_and_errors_name_their_site() -> None:
    def missing() -> str:
        raise RepositoryNotFoundError("no repository at file:///b")

    def broken() -> str:
        raise RepositoryError("wrong passphrase for file:///a")

    src, dst = open_sites(lambda: "src", missing)
    assert src == "src" and isinstance(dst, RepositoryNotFoundError) and "file:///b" in str(dst)
    with pytest.raises(RepositoryError, match="file:///a"):  # the source's error first
        open_sites(broken, lambda: "dst")
    with pytest.raises(RepositoryError, match="file:///a"):
        open_sites(broken, missing)
    with pytest.raises(RepositoryError, match="file:///b"):
        open_sites(lambda: "src", lambda: (_ for _ in ()).throw(RepositoryError("locked: file:///b")))
