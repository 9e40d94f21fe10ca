"""Trees a backup just changed, kept in memory for the diff that follows it (the backup flow's signals step)."""

from __future__ import annotations

import threading
from collections import OrderedDict

#: bytes of tree plaintext a :class:`RecentTrees` keeps at most
RECENT_TREES_BYTES = 4 * 1024 * 1024


class RecentTrees:
    """The trees of the directories the latest backup in this process changed, both versions, as plaintext.

    A diff right after a backup (the backup flow's signals step, kubekeep.signals.volume) reads exactly
    these, so it is served from memory instead of reading, decrypting and decompressing them again. Only
    blobs this process produced or authenticated go in (the archiver: each directory's new tree once it is
    stored, and the previous version it read), and a reader takes one only when the index names it (so a
    tree whose pack never reached storage is read, and missed, as before). Kept bytes are bounded: the
    oldest go first, so a run that backs up several volumes keeps each one's newest trees until the next
    ones push them out. Verification (check, verify) never reads through it.
    """

    def __init__(self, limit: int = RECENT_TREES_BYTES) -> None:
        self.limit = limit
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, blob_id: bytes, plaintext: bytes) -> None:
        if len(plaintext) > self.limit:
            return
        with self._lock:
            if blob_id in self._blobs:  # a tree a newer backup touched again (a change reverted): newest now
                self._blobs.move_to_end(blob_id)
                return
            self._blobs[blob_id] = plaintext
            self._bytes += len(plaintext)
            while self._bytes > self.limit:
                _, dropped = self._blobs.popitem(last=False)
                self._bytes -= len(dropped)

    def get(self, blob_id: bytes) -> bytes | None:
        with self._lock:
            return self._blobs.get(blob_id)

    @property
    def size(self) -> int:
        return self._bytes
