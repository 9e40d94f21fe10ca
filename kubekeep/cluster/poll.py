"""Waiting for the cluster: polls that start fast and slow down.

A test bed's pods are Ready in a fraction of a second, a real cluster's in seconds or minutes. A fixed
interval costs either latency (half an interval on average, on every wait of a restore or a migration's
downtime path) or API load. :func:`pauses` starts at ``first`` and grows by ``factor`` up to ``most``:
a quick answer is seen at once, a slow one is polled no more often than ``most`` allows.
"""

from __future__ import annotations

from collections.abc import Iterator

FIRST = 0.05
FACTOR = 1.5


def pauses(most: float, *, first: float = FIRST, factor: float = FACTOR) -> Iterator[float]:
    """The pauses between polls: ``first``, then each ``factor`` times the last, never above ``most``."""
    pause = min(first, most)
    while True:
        yield pause
        pause = min(pause * factor, most)
