"""The process's allocator, tuned for the data path's large buffers.

glibc serves blocks above its mmap threshold with mmap and returns them on free, but it raises that
threshold to the size of the largest block freed (up to 32 MiB on 64-bit). After the first pack buffer
(16.5 MiB) is freed, every later one comes from a thread's heap, and heaps keep what is freed: the peak of
a 1 GiB backup was 264-283 MiB, against 171-181 MiB with the threshold fixed at 1 MiB
(tests/unit/repo/test_allocator.py, docs/benchmarks.md). Setting the threshold once also turns off
glibc's adjustment of it. Blocks below 1 MiB (chunks are at most 512 KiB) are served as before.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

#: mallopt's parameter number for the mmap threshold (malloc.h)
M_MMAP_THRESHOLD = -3
#: blocks this big or bigger are mmap'd, and returned to the system when freed
MMAP_THRESHOLD = 1 << 20
#: a threshold the user set in the environment wins
ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"

_lock = threading.Lock()
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD`, once per process. Returns whether it is set
    (False: not glibc, or the environment sets it)."""
    global _tuned
    with _lock:
        if _tuned is None:
            _tuned = _mallopt()
        return _tuned


def _mallopt() -> bool:
    if not sys.platform.startswith("linux") or ENVIRONMENT in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
