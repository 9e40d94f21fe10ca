"""The process's allocator, tuned for the data path's large buffers.

glibc serves blocks above its mmap threshold with mmap and returns them on free, but it raises that
threshold to the size of the largest block freed (up to 32 MiB on 64-bit). After the first pack buffer
(16.5 MiB) is freed, every later one comes from a thread's heap, and heaps keep what is freed: the peak of
a 1 GiB backup was 264-283 MiB, against 171-181 MiB with the threshold fixed at 1 MiB
(tests/unit/repo/test_allocator.py, docs/benchmarks.md). Setting the threshold once also turns off
glibc's adjustment of it. Blocks below 1 MiB (chunks are at most 512 KiB) are served as before.

That adjustment also raised the trim threshold, which a fixed mmap threshold leaves at glibc's 128 KiB: a
thread's heap then gives its free top back to the system as soon as it is freed, and the next chunks fault
the same pages in again. A restore (decoded chunks of up to 512 KiB, freed as they are written) took ~1
minor fault per 4 KiB restored, ~1 s of the kernel's time per GiB; :func:`keeping_freed_memory` keeps up
to 16 MiB per heap while it runs, and gives it back at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

#: mallopt's parameter number for the mmap threshold (malloc.h)
M_MMAP_THRESHOLD = -3
#: blocks this big or bigger are mmap'd, and returned to the system when freed
MMAP_THRESHOLD = 1 << 20
#: a threshold the user set in the environment wins
ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"

#: mallopt's parameter number for the trim threshold, glibc's default for it, and what a restore keeps
M_TRIM_THRESHOLD = -1
DEFAULT_TRIM_THRESHOLD = 128 * 1024
KEPT_TRIM_THRESHOLD = 16 << 20

_lock = threading.Lock()
_tuned: bool | None = None
_keeping = 0


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD`, once per process. Returns whether it is set
    (False: not glibc, or the environment sets it)."""
    global _tuned
    with _lock:
        if _tuned is None:
            _tuned = _mallopt()
        return _tuned


@contextlib.contextmanager
def keeping_freed_memory(when: bool = True) -> Iterator[None]:
    """While in this block (any thread; blocks may overlap), each glibc heap keeps up to
    :data:`KEPT_TRIM_THRESHOLD` of freed memory for the next allocations instead of giving it back at once;
    when the last block ends, the threshold is glibc's default again and the free memory goes back
    (``malloc_trim``). Nothing happens unless ``when``, where the environment sets the trim threshold, or
    without glibc."""
    global _keeping
    if not when:
        yield
        return
    with _lock:
        _keeping += 1
        if _keeping == 1:
            _set_trim(KEPT_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _keeping -= 1
            lib = _libc()
            if _keeping == 0 and _set_trim(DEFAULT_TRIM_THRESHOLD) and lib is not None:
                lib.malloc_trim(0)


def _set_trim(threshold: int) -> bool:
    lib = _libc()
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if lib is None or "MALLOC_TRIM_THRESHOLD_" in os.environ or "trim_threshold" in tunables:
        return False
    return bool(lib.mallopt(M_TRIM_THRESHOLD, threshold))


def _libc() -> ctypes.CDLL | None:
    """glibc, with mallopt and malloc_trim typed; None elsewhere (musl has no mallopt)."""
    if not _glibc:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(None)
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.mallopt.restype = ctypes.c_int
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                lib.malloc_trim.restype = ctypes.c_int
            except (OSError, AttributeError):
                lib = None
        _glibc.append(lib)
    return _glibc[0]


#: the C library, looked up once: [] until then
_glibc: list[ctypes.CDLL | None] = []


def _mallopt() -> bool:
    lib = _libc()
    if lib is None or ENVIRONMENT in os.environ:
        return False
    return bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
