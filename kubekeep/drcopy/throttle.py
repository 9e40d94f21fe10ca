"""An upload limit: callers report the bytes they wrote, and wait long enough to stay under the rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class UploadLimit:
    """At most ``bytes_per_second`` on average (over the whole copy, shared by every thread)."""

    def __init__(self, bytes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bytes_per_second <= 0:
            raise ValueError("the upload limit must be more than 0")
        self.rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._start = clock()
        self._sent = 0

    def __call__(self, n: int) -> None:
        with self._lock:
            self._sent += n
            due = self._start + self._sent / self.rate
        wait = due - self._clock()
        if wait > 0:
            self._sleep(wait)
