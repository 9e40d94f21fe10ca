"""Seed records: what a restore left in a target volume, so that the next restore there moves only the delta.

A migration pre-seeds the target's volumes while the source keeps running and
restores the final snapshot into them at cutover. For the cutover to cost the
delta, not the volume, the restore must know which files of the target already
hold the snapshot's content - without reading them, and without trusting
anything an attacker (or the app) could have changed. docs/migration.md
("Pre-seed and incremental cutover") has the whole design; in short:

- after a restore into a target, the restorer records, per regular file it
  placed or kept, its path and :class:`FileState` (device, inode, size, mtime,
  **ctime**) as it was when the restore verified the file, and the id of the
  snapshot content it holds (:func:`content_id`); at commit the record waits
  :data:`RACY_NS`, looks at every file again and keeps only the unchanged ones;
- the record is a snapshot of the repository (tag ``kubekeep:seed``), sealed and
  authenticated by the repository's key: neither the storage provider nor the
  volume's users can forge or alter it. It is bound to the target (an id the
  caller gives, e.g. cluster/PV/uid, and the root directory's device and inode);
- the next restore into the same target keeps a file only when its state now is
  *identical* to the recorded one and the recorded content is the new snapshot's
  content for that path (:meth:`SeedCursor.may_keep`). ctime cannot be set from
  user space: any write, truncate, chmod, utime or rename-over changes it, and a
  replaced file has another inode. Entries whose ctime is within
  :data:`RACY_NS` of the record's own time are not trusted (a change within the
  file system's timestamp granularity would keep the same ctime);
- a replayed older record (genuine, from the same repository) can only keep files
  that did not change since it was made; a missing record means a full restore.

The record is streamed in the restore's walk order (depth first, names sorted:
the order of path-part tuples), so the lookup is a forward-only merge and memory
does not grow with the number of files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubekeep.repo.repository import Repository
from kubekeep.repo.targetfs import open_dir_below

SEED_TAG = "kubekeep:seed"
SEED_STREAM = "seed.jsonl"
SEED_FORMAT = 1
#: entries whose ctime is this close to the record's time are not trusted (file system timestamp granularity)
RACY_NS = 2_000_000_000
#: snapshot metadata key naming the target a seed record belongs to
TARGET_KEY = "seed_target"


@dataclass(frozen=True)
class FileState:
    """What the file system says of a file: equal states mean the file was not touched in between."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def content_id(content: Mapping[str, Any]) -> str:
    """An id of a snapshot entry's content (its size and chunk ids, themselves keyed hashes of the bytes):
    equal ids mean equal bytes. Another representation of the same bytes only costs a rewrite."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class SeedHeader:
    target_id: str
    #: (st_dev, st_ino) of the target's root directory when the record was made
    root: tuple[int, int]
    snapshot_id: str
    #: when the record's states were read (time.time_ns): every recorded ctime is RACY_NS older
    made_at_ns: int
    format: int = SEED_FORMAT

    def to_json(self) -> bytes:
        return json.dumps({"format": self.format, "target_id": self.target_id, "root": list(self.root),
                           "snapshot_id": self.snapshot_id, "made_at_ns": self.made_at_ns},
                          sort_keys=True).encode()


class SeedWriter:
    """Collects a restore's entries (in walk order) in a private spool file, then commits them to the
    repository as one seed record. Memory stays constant; the spool is removed in any case.

    :meth:`add` takes each file's state as the restore observed it when the file was verified (or kept).
    :meth:`commit` first waits until :data:`RACY_NS` has passed since the last entry, then looks at every
    file again (through directory fds, never following a link) and records only those whose state did not
    change: the record's time is then at least :data:`RACY_NS` after every recorded ctime, so any later
    change to a file shows in its ctime.
    """

    def __init__(self, target_id: str, root: Path, snapshot_id: str, *, spool_dir: str | None = None) -> None:
        self.root = root
        st = os.stat(root, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"seed target {root} is not a directory")
        self.target_id, self.snapshot_id, self.root_id = target_id, snapshot_id, (st.st_dev, st.st_ino)
        fd, name = tempfile.mkstemp(prefix="kubekeep-seed-", suffix=".jsonl", dir=spool_dir)
        self._path = name
        self._file = os.fdopen(fd, "wb")
        self._last: tuple[str, ...] | None = None
        self._last_add_ns = 0
        self.entries = 0
        #: entries left out at commit: the file changed after the restore looked at it
        self.dropped = 0

    def add(self, parts: tuple[str, ...], st: os.stat_result, content: Mapping[str, Any]) -> None:
        """Record a regular file at ``parts`` (below the root), verified to hold ``content`` while in state
        ``st``."""
        if not stat.S_ISREG(st.st_mode):
            return
        if self._last is not None and parts <= self._last:
            raise ValueError(f"seed entries must come in walk order: {'/'.join(parts)} after {'/'.join(self._last)}")
        self._last = parts
        state = FileState.of(st)
        self._file.write(_entry(parts, state, content_id(content)))
        self._last_add_ns = time.time_ns()
        self.entries += 1

    def _recorded(self, made_at_ns: int) -> Iterator[bytes]:
        """The spooled entries whose files are still as the restore saw them (read through directory fds)."""
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        dir_parts: tuple[str, ...] | None = None
        dir_fd = -1
        try:
            with open(self._path, "rb") as fh:
                for line in fh:
                    raw_parts, raw_state, cid = json.loads(line)
                    parts, state = tuple(raw_parts), FileState(*raw_state)
                    if parts[:-1] != dir_parts:
                        if dir_fd >= 0:
                            os.close(dir_fd)
                        dir_parts, dir_fd = parts[:-1], -1
                        with contextlib.suppress(OSError):
                            dir_fd = open_dir_below(root_fd, parts[:-1])
                    try:
                        now = FileState.of(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)) \
                            if dir_fd >= 0 else None
                    except OSError:
                        now = None
                    if now != state or state.ctime_ns + RACY_NS > made_at_ns:
                        self.dropped += 1
                        continue
                    yield _entry(parts, state, cid)
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
            os.close(root_fd)

    def _stream(self, header: SeedHeader) -> Iterator[bytes]:
        yield header.to_json() + b"\n"
        batch: list[bytes] = []
        for entry in self._recorded(header.made_at_ns):
            batch.append(entry)
            if len(batch) >= 4096:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)

    def commit(self, repo: Repository, *, settle: bool = True) -> str:
        """Store the record (after the restore and its verification); return its snapshot id.

        ``settle``: first wait until every entry is :data:`RACY_NS` old, so that all are recorded (a
        pre-seed: the next sync keeps them). False records at once and leaves out the entries that are not
        (a cutover: nothing waits on the downtime path; only a later re-sync would have used them).
        """
        self._file.close()
        try:
            wait = self._last_add_ns + RACY_NS - time.time_ns()
            if settle and wait > 0:
                time.sleep(wait / 1e9)
            header = SeedHeader(self.target_id, self.root_id, self.snapshot_id, time.time_ns())
            result = repo.backup(streams={SEED_STREAM: self._stream(header)}, tags=[SEED_TAG],
                                 metadata={TARGET_KEY: header.target_id, "snapshot": header.snapshot_id})
            return str(result.snapshot_id)
        finally:
            self.discard()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    def __enter__(self) -> SeedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _entry(parts: tuple[str, ...], state: FileState, cid: str) -> bytes:
    return json.dumps([list(parts), [state.dev, state.ino, state.size, state.mtime_ns, state.ctime_ns], cid],
                      separators=(",", ":")).encode() + b"\n"


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line)
    if pending:
        yield pending


class SeedCursor:
    """A seed record read forward: :meth:`may_keep` answers for paths asked in walk order."""

    def __init__(self, header: SeedHeader, lines: Iterator[bytes]) -> None:
        self.header = header
        self._lines = lines
        self._current: tuple[tuple[str, ...], FileState, str] | None = None
        self._last_asked: tuple[str, ...] | None = None
        self._done = False
        self._advance()

    def _advance(self) -> None:
        line = next(self._lines, None)
        if line is None:
            self._current, self._done = None, True
            return
        parts, state, cid = json.loads(line)
        self._current = (tuple(parts), FileState(*state), str(cid))

    def may_keep(self, parts: tuple[str, ...], st: os.stat_result, content: Mapping[str, Any]) -> bool:
        """Whether the regular file at ``parts``, whose state is ``st`` now, holds ``content`` for certain.

        Paths must be asked in walk order; a path asked out of order, a path the record
        does not hold, a changed state, another content or a racy entry answer False
        (the file is then written), so a wrong answer can only cost a rewrite.
        """
        if self._last_asked is not None and parts <= self._last_asked:
            return False
        self._last_asked = parts
        while self._current is not None and self._current[0] < parts:
            self._advance()
        if self._current is None or self._current[0] != parts:
            return False
        _, recorded, cid = self._current
        if not stat.S_ISREG(st.st_mode) or FileState.of(st) != recorded:
            return False
        if recorded.ctime_ns >= self.header.made_at_ns - RACY_NS:
            return False
        return cid == content_id(content)


def load_seed(repo: Repository, target_id: str, root: Path) -> SeedCursor | None:
    """The newest seed record of ``target_id`` if it applies to ``root`` as it is now, else None
    (no record, another directory, an unknown format: the restore writes every file)."""
    infos = [i for i in repo.snapshots(tags=[SEED_TAG]) if i.metadata.get(TARGET_KEY) == target_id]
    if not infos:
        return None
    newest = max(infos, key=lambda i: i.time)
    lines = _lines(repo.read_stream(newest.id, SEED_STREAM))
    first = next(lines, None)
    if first is None:
        return None
    doc = json.loads(first)
    if doc.get("format") != SEED_FORMAT or doc.get("target_id") != target_id:
        return None
    try:
        st = os.stat(root, follow_symlinks=False)
    except OSError:
        return None
    header = SeedHeader(target_id, (int(doc["root"][0]), int(doc["root"][1])), str(doc["snapshot_id"]),
                        int(doc["made_at_ns"]))
    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != header.root:
        return None
    return SeedCursor(header, lines)
