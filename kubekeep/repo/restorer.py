"""Restore snapshots (or one file/subtree) to a directory, and read named streams back.

The caller's thread walks the trees and writes files in order; a pool of workers
fetches, decrypts, decompresses and verifies chunks ahead of the writer, within
a bounded window. A chunk that fails verification fails only its file: the
partial file is removed, the failure is recorded, and the rest is restored;
RestoreError at the end lists every failed path.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MissingObjectError, RepositoryError, RestoreError
from .format import BlobEntry
from .repository import ProgressFn, Repository
from .storage import StorageError
from .storage.wrappers import BlockCachingReader

#: plaintext bytes fetched ahead of the writer (bounds memory whatever the volume size)
WINDOW_BYTES = 48 * 1024 * 1024
#: one ranged read covers neighbouring blobs of a pack up to this size ...
MAX_RUN_BYTES = 8 * 1024 * 1024
#: ... skipping at most this many bytes between them (cheaper than another request)
MAX_GAP_BYTES = 256 * 1024
#: recently fetched blobs kept for repeats (deduplicated content); the cache holds whole
#: runs, so this is counted in runs of MAX_RUN_BYTES
CACHE_BYTES = 32 * 1024 * 1024
#: fetch threads per repository worker: reads wait on storage, decoding releases the GIL
THREADS_PER_WORKER = 2
#: a run is fetched once this many chunks have followed its first one
RUN_LOOKAHEAD_CHUNKS = 64
#: events (chunks, files, directories) queued ahead of the writer
MAX_EVENTS_AHEAD = 8192


class _Run:
    """Neighbouring blobs of one pack, fetched and decoded by one job."""

    __slots__ = ("cache_refs", "entries", "first_seq", "future", "pack_id", "raw_bytes", "span_end", "unconsumed")

    def __init__(self, pack_id: bytes, entry: BlobEntry, first_seq: int) -> None:
        self.pack_id = pack_id
        self.first_seq = first_seq
        self.entries = [entry]
        self.span_end = entry.offset + entry.length
        self.raw_bytes = entry.raw_length
        #: window events that own a place in this run and the writer has not taken yet
        self.unconsumed = 1
        #: cache entries pointing into this run (the cache keeps whole runs alive)
        self.cache_refs = 0
        self.future: Future[list[bytes | RepositoryError]] | None = None

    def takes(self, pack_id: bytes, entry: BlobEntry) -> bool:
        return (pack_id == self.pack_id and self.span_end <= entry.offset <= self.span_end + MAX_GAP_BYTES
                and entry.offset + entry.length - self.entries[0].offset <= MAX_RUN_BYTES)

    def add(self, entry: BlobEntry) -> int:
        self.entries.append(entry)
        self.span_end = entry.offset + entry.length
        self.raw_bytes += entry.raw_length
        self.unconsumed += 1
        return len(self.entries) - 1


class _Chunk:
    """One chunk's place in a run; ``result()`` waits for the run."""

    __slots__ = ("pos", "run")

    def __init__(self, run: _Run, pos: int) -> None:
        self.run, self.pos = run, pos

    def result(self) -> bytes:
        assert self.run.future is not None
        item = self.run.future.result()[self.pos]
        if isinstance(item, RepositoryError):
            raise item
        return item


class _Missing:
    def __init__(self, blob_id: bytes) -> None:
        self.error = MissingObjectError(f"blob {blob_id.hex()} is not in the index")

    def result(self) -> bytes:
        raise self.error


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    #: metadata that could not be applied (e.g. chown without privileges)
    warnings: list[str] = field(default_factory=list)


# events the tree walk produces, consumed in order by the writer
_DIR, _DIR_DONE, _FILE, _CHUNK, _FILE_DONE, _LINK, _SPECIAL = range(7)


class Restorer:
    def __init__(self, repo: Repository, *, progress: ProgressFn | None = None) -> None:
        self.repo = repo
        self.progress = progress
        self.is_root = hasattr(os, "geteuid") and os.geteuid() == 0

    # -- chunk prefetch --------------------------------------------------------------------

    def _prefetch(self, events: Iterator[tuple[int, Any, Any]]
                  ) -> Iterator[tuple[int, Any, Any, _Chunk | _Missing | None]]:
        """Yield the events in order, each chunk with a handle to its data being fetched ahead.

        Consecutive chunks stored next to each other in a pack (the usual case: a
        backup writes a file's chunks, and small files, in order) are fetched with one
        ranged read; a chunk seen again recently (deduplicated content) reuses the
        fetch. Fetched-but-unwritten plaintext stays below WINDOW_BYTES (plus one
        open run and CACHE_BYTES of recent blobs), whatever the volume size.
        """
        index = self.repo.index
        threads = max(2, self.repo.workers * THREADS_PER_WORKER)
        # remote storage: small neighbouring reads are served from cached 4 MiB blocks (one request each)
        reader = BlockCachingReader(self.repo.storage) if self.repo.storage.remote else self.repo.storage
        with ThreadPoolExecutor(threads, thread_name_prefix="kubekeep-restore") as pool:
            # (kind, a, b, handle, run this event owns a place in, or None)
            window: deque[tuple[int, Any, Any, _Chunk | _Missing | None, _Run | None]] = deque()
            submitted: set[_Run] = set()  # runs in flight or not yet fully taken by the writer
            inflight = 0
            cache: OrderedDict[bytes, _Chunk] = OrderedDict()
            cached = 0
            # one open run per pack: a backup's workers fill packs side by side, so a
            # file's consecutive chunks alternate between a few packs
            open_runs: OrderedDict[bytes, _Run] = OrderedDict()
            seq = 0

            def submit(run: _Run) -> None:
                nonlocal inflight
                open_runs.pop(run.pack_id, None)
                run.future = pool.submit(self.repo.read_pack_blobs, run.pack_id, run.entries, storage=reader)
                submitted.add(run)
                inflight += run.raw_bytes

            def pop() -> tuple[int, Any, Any, _Chunk | _Missing | None]:
                nonlocal inflight
                kind, a, b, handle, owner = window.popleft()
                if isinstance(handle, _Chunk) and handle.run.future is None:
                    submit(handle.run)
                if owner is not None:
                    owner.unconsumed -= 1
                    if owner.unconsumed == 0:
                        inflight -= owner.raw_bytes
                        submitted.discard(owner)
                return kind, a, b, handle

            try:
                for kind, a, b in events:
                    handle: _Chunk | _Missing | None = None
                    owner: _Run | None = None
                    if kind == _CHUNK:
                        seq += 1
                        handle = cache.get(a)
                        if handle is not None:
                            cache.move_to_end(a)
                        else:
                            loc = index.lookup(a)
                            if loc is None:
                                handle = _Missing(a)
                            else:
                                run = open_runs.get(loc.pack_id)
                                if run is None or not run.takes(loc.pack_id, loc.entry):
                                    if run is not None:
                                        submit(run)
                                    run = _Run(loc.pack_id, loc.entry, seq)
                                    open_runs[loc.pack_id] = run
                                    handle = _Chunk(run, 0)
                                else:
                                    handle = _Chunk(run, run.add(loc.entry))
                                owner = run
                                cache[a] = handle
                                if run.cache_refs == 0:
                                    cached += MAX_RUN_BYTES  # the run may still grow to this
                                run.cache_refs += 1
                                while cached > CACHE_BYTES and len(cache) > 1:
                                    _, old = cache.popitem(last=False)
                                    old.run.cache_refs -= 1
                                    if old.run.cache_refs == 0:
                                        cached -= MAX_RUN_BYTES
                        # start fetching runs that stopped growing a while ago
                        while open_runs:
                            first = next(iter(open_runs.values()))
                            if first.first_seq > seq - RUN_LOOKAHEAD_CHUNKS:
                                break
                            submit(first)
                    window.append((kind, a, b, handle, owner))
                    while window and (inflight > WINDOW_BYTES or len(window) > MAX_EVENTS_AHEAD):
                        yield pop()
                for run in list(open_runs.values()):
                    submit(run)
                while window:
                    yield pop()
            finally:
                for run in submitted:
                    assert run.future is not None
                    run.future.cancel()

    def read_stream(self, snapshot_id: str, name: str) -> Iterator[bytes]:
        doc = self.repo.load_snapshot(snapshot_id)
        streams = doc.get("streams") or {}
        if name not in streams:
            known = ", ".join(sorted(streams)) or "none"
            raise RepositoryError(f"snapshot {doc['id'][:12]} has no stream {name!r} (streams: {known})")
        content = streams[name]
        events = ((_CHUNK, cid, None) for cid in self.repo.content_chunks(content))
        for _, _, _, fut in self._prefetch(events):
            assert fut is not None
            yield fut.result()

    # -- restore ---------------------------------------------------------------------------

    def _find(self, tree_id: str, path: str) -> tuple[list[str], dict[str, Any]]:
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        if not parts:
            raise RepositoryError("empty path")
        entries = self.repo.load_tree(tree_id)
        node: dict[str, Any] | None = None
        for i, part in enumerate(parts):
            node = next((e for e in entries if e["name"] == part), None)
            if node is None:
                raise RepositoryError(f"path {path!r} is not in the snapshot")
            if i < len(parts) - 1:
                if node.get("type") != "dir":
                    raise RepositoryError(f"path {path!r} is not in the snapshot ({part!r} is not a directory)")
                entries = self.repo.load_tree(node["subtree"])
        assert node is not None
        return parts, node

    def _events(self, node: dict[str, Any], dest: Path, links: dict[str, Path]
                ) -> Iterator[tuple[int, Any, Any]]:
        kind = node.get("type")
        if kind == "dir":
            yield _DIR, dest, node
            for child in self.repo.load_tree(node["subtree"]):
                yield from self._events(child, dest / os.fsencode(child["name"]).decode("utf-8", "surrogateescape"),
                                        links)
            yield _DIR_DONE, dest, node
        elif kind == "file":
            link = node.get("hardlink")
            if link is not None and link in links:
                yield _LINK, dest, links[link]
                return
            if link is not None:
                links[link] = dest
            yield _FILE, dest, node
            for cid in self.repo.content_chunks(node["content"]):
                yield _CHUNK, cid, dest
            yield _FILE_DONE, dest, node
        else:
            yield _SPECIAL, dest, node

    def restore(self, snapshot_id: str, target: Path, path: str | None) -> RestoreResult:
        doc = self.repo.load_snapshot(snapshot_id)
        if doc.get("tree") is None:
            raise RepositoryError(f"snapshot {doc['id'][:12]} holds no file tree (streams only)")
        target.mkdir(parents=True, exist_ok=True)
        links: dict[str, Path] = {}
        root_node = {"type": "dir", "subtree": doc["tree"], **(doc.get("root") or {})}
        if path is None:
            events = self._events(root_node, target, links)
        else:
            parts, node = self._find(doc["tree"], path)
            dest = target.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            events = self._events(node, dest, links)
        result = RestoreResult()
        try:
            self._write(events, result)
        except StorageError as exc:
            raise self.repo.storage_error(exc) from exc
        if result.failures:
            listing = "; ".join(f"{p}: {r}" for p, r in sorted(result.failures.items()))
            raise RestoreError(f"{len(result.failures)} item(s) could not be restored: {listing}", result.failures)
        return result

    def _write(self, events: Iterator[tuple[int, Any, Any]], result: RestoreResult) -> None:
        out: Any = None
        failed = False
        current: Path | None = None
        done = 0
        for kind, a, b, fut in self._prefetch(events):
            if kind == _CHUNK:
                if failed or out is None:
                    continue
                assert fut is not None
                try:
                    data = fut.result()
                except RepositoryError as exc:
                    failed = True
                    result.failures[str(current)] = str(exc)
                    continue
                out.write(data)
                done += len(data)
                result.bytes += len(data)
                if self.progress is not None:
                    self.progress(done, None, str(current))
            elif kind == _FILE:
                current, failed = a, False
                try:
                    if a.is_symlink() or a.is_dir():
                        _remove(a)
                    out = open(a, "wb")  # noqa: SIM115 - closed at _FILE_DONE
                except OSError as exc:
                    failed, out = True, None
                    result.failures[str(a)] = f"cannot create: {exc.strerror}"
            elif kind == _FILE_DONE:
                if out is not None:
                    out.close()
                    out = None
                if failed:
                    with contextlib.suppress(OSError):
                        os.unlink(a)
                else:
                    result.files += 1
                    self._apply_meta(a, b, result)
                failed = False
            elif kind == _DIR:
                try:
                    a.mkdir(exist_ok=True)
                except OSError as exc:
                    result.failures[str(a)] = f"cannot create directory: {exc.strerror}"
            elif kind == _DIR_DONE:
                result.dirs += 1
                self._apply_meta(a, b, result)
            elif kind == _LINK:
                try:
                    if os.path.lexists(a):
                        _remove(a)
                    os.link(b, a)
                    result.files += 1
                except OSError as exc:
                    result.failures[str(a)] = f"cannot hard-link to {b}: {exc.strerror}"
            elif kind == _SPECIAL:
                self._special(a, b, result)

    def _special(self, dest: Path, node: dict[str, Any], result: RestoreResult) -> None:
        kind = node.get("type")
        try:
            if os.path.lexists(dest):
                _remove(dest)
            if kind == "symlink":
                os.symlink(os.fsencode(node["target"]), dest)
            elif kind == "fifo":
                os.mkfifo(dest, node.get("mode", 0o600))
            elif kind in ("chardev", "blockdev"):
                flag = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
                try:
                    os.mknod(dest, flag | node.get("mode", 0o600), node.get("rdev", 0))
                except PermissionError:
                    result.warnings.append(f"{dest}: device node needs privileges; skipped")
                    return
            else:
                result.warnings.append(f"{dest}: unknown entry type {kind!r}; skipped")
                return
        except OSError as exc:
            result.failures[str(dest)] = f"cannot create {kind}: {exc.strerror}"
            return
        result.files += 1
        self._apply_meta(dest, node, result)

    def _apply_meta(self, dest: Path, node: dict[str, Any], result: RestoreResult) -> None:
        is_link = node.get("type") == "symlink"
        uid, gid = node.get("uid"), node.get("gid")
        if uid is not None and gid is not None:
            try:
                os.chown(dest, uid, gid, follow_symlinks=False)
            except PermissionError:
                if self.is_root:
                    result.warnings.append(f"{dest}: cannot set owner")
            except OSError as exc:
                result.warnings.append(f"{dest}: cannot set owner: {exc.strerror}")
        try:
            if not is_link and "mode" in node:
                os.chmod(dest, node["mode"])
            if "mtime_ns" in node:
                os.utime(dest, ns=(node.get("atime_ns", node["mtime_ns"]), node["mtime_ns"]),
                         follow_symlinks=not is_link)
        except (OSError, NotImplementedError) as exc:
            result.warnings.append(f"{dest}: cannot set mode/times: {exc}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
