"""Restore snapshots (or one file/subtree) to a directory, and read named streams back.

The caller's thread walks the trees and writes files in order; a pool of workers
fetches, decrypts, decompresses and verifies chunks ahead of the writer, within
a bounded window.

The restore distrusts both the snapshot and the target (docs/repository-format.md,
"Restore safety"): every entry name is checked (no '/', '.', '..', empty or NUL;
once per directory); everything is created relative to directory fds without
following links (targetfs.py); a file is written to an unnamed (O_TMPFILE) or
temporary file and put under its final name only once complete and verified, so
a link already in the target is replaced, never written through, and a failure
leaves the previous version in place. A bad chunk, chunk list or tree fails only
its file or directory: the failure is recorded and the rest is restored;
RestoreError at the end lists every failed path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from .errors import IntegrityError, MissingObjectError, RepositoryError, RestoreError
from .format import BlobEntry
from .memory import keeping_freed_memory
from .protocols import ProgressFn, RestoreSource, ThrottledProgress
from .storage import StorageError
from .storage.wrappers import BlockCachingReader
from .targetfs import (
    TargetError,
    create_temp_at,
    discard_at,
    make_dir_at,
    name_problem,
    new_file_at,
    open_dir_at,
    open_dir_below,
    open_target,
    place_file_at,
    replace_at,
    write_all,
)

#: plaintext bytes fetched ahead of the writer (bounds memory whatever the volume size). 32 MiB: the S3
#: restore of the 1 GiB benchmark volume peaked at 200-209 MiB with 48 MiB, 177-189 MiB with 32 MiB; a
#: local restore into tmpfs took 4.30-4.94 s against 4.48-4.75 s (docs/benchmarks.md, 2026-12-01)
WINDOW_BYTES = 32 * 1024 * 1024
#: one ranged read covers neighbouring blobs of a pack up to this size ...
MAX_RUN_BYTES = 8 * 1024 * 1024
#: ... skipping at most this many bytes between them (cheaper than another request)
MAX_GAP_BYTES = 256 * 1024
#: recently fetched blobs kept for repeats (deduplicated content); the cache holds whole
#: runs, so this is counted in runs of MAX_RUN_BYTES
CACHE_BYTES = 32 * 1024 * 1024
#: a named stream (manifests, reports) is read by a parser line by line: a small window is enough
STREAM_WINDOW_BYTES = 8 * 1024 * 1024
STREAM_CACHE_BYTES = 8 * 1024 * 1024
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
    #: regular files whose data was written (all of them without a baseline), and their bytes
    written: int = 0
    written_bytes: int = 0
    #: regular files kept as they were: the baseline vouched for their content
    kept: int = 0
    #: entries removed from the target because the snapshot does not hold them (``prune``)
    deleted: int = 0
    #: paths (below the target) of the regular files written, when the caller asks for them
    written_paths: list[str] | None = None


class Baseline(Protocol):
    """What a target already holds: kubekeep.migrate.seed.SeedCursor answers in walk order."""

    def may_keep(self, parts: tuple[str, ...], st: os.stat_result, content: Mapping[str, Any]) -> bool: ...


class FileRecord(Protocol):
    """Told of every regular file in place after the restore (kubekeep.migrate.seed.SeedWriter)."""

    def add(self, parts: tuple[str, ...], st: os.stat_result, content: Mapping[str, Any]) -> None: ...


# events the tree walk produces, consumed in order by the writer
_DIR, _DIR_DONE, _FILE, _CHUNK, _FILE_DONE, _LINK, _SPECIAL, _KEEP = range(8)


class Restorer:
    def __init__(self, repo: RestoreSource, *, progress: ProgressFn | None = None,
                 window_bytes: int = WINDOW_BYTES, cache_bytes: int = CACHE_BYTES) -> None:
        self.repo = repo
        self.progress = progress
        self.window_bytes = window_bytes
        self.cache_bytes = cache_bytes
        self.is_root = hasattr(os, "geteuid") and os.geteuid() == 0

    # -- chunk prefetch --------------------------------------------------------------------

    def _prefetch(self, events: Iterator[tuple[int, Any, Any]]
                  ) -> Iterator[tuple[int, Any, Any, _Chunk | _Missing | None]]:
        """Yield the events in order, each chunk with a handle to its data being fetched ahead.

        Consecutive chunks stored next to each other in a pack (the usual case: a
        backup writes a file's chunks, and small files, in order) are fetched with one
        ranged read; a chunk seen again recently (deduplicated content) reuses the
        fetch. Fetched-but-unwritten plaintext stays below ``window_bytes`` (plus one
        open run and ``cache_bytes`` of recent blobs), whatever the volume size.
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
                                while cached > self.cache_bytes and len(cache) > 1:
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
                    while window and (inflight > self.window_bytes or len(window) > MAX_EVENTS_AHEAD):
                        yield pop()
                for run in list(open_runs.values()):
                    submit(run)
                while window:
                    yield pop()
            finally:
                for run in submitted:
                    assert run.future is not None
                    run.future.cancel()

    # -- streams ---------------------------------------------------------------------------

    def _stream_content(self, snapshot_id: str, name: str) -> Any:
        doc = self.repo.load_snapshot(snapshot_id)
        streams = doc.get("streams") or {}
        if not isinstance(streams, dict) or name not in streams:
            known = ", ".join(sorted(streams)) if isinstance(streams, dict) and streams else "none"
            raise RepositoryError(f"snapshot {doc['id'][:12]} has no stream {name!r} (streams: {known})")
        return streams[name]

    def read_stream(self, snapshot_id: str, name: str) -> Iterator[bytes]:
        """The stream's bytes; the snapshot and the stream name are checked now, not at the first read."""
        return self._stream_parts(self._stream_content(snapshot_id, name))

    def _stream_parts(self, content: Any) -> Iterator[bytes]:
        events = ((_CHUNK, cid, None) for cid in self.repo.content_chunks(content))
        for _, _, _, fut in self._prefetch(events):
            assert fut is not None
            yield fut.result()

    def restore_stream(self, snapshot_id: str, name: str, target: Path) -> int:
        """Write a named stream to the file ``target``; returns its size.

        Everything is checked before the filesystem is touched; the bytes go to a
        temporary file next to ``target`` that replaces it only once complete, so a
        failure leaves an existing ``target`` as it was (and a link there is replaced,
        never written through).
        """
        content = self._stream_content(snapshot_id, name)
        if target.is_dir():
            raise RepositoryError(f"stream target {target} is a directory; give a file path")
        if name_problem(target.name) is not None:
            raise RepositoryError(f"stream target {target} is not a file path")
        parent = target.parent
        try:
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RepositoryError(f"cannot write {target}: directory {parent}: {exc.strerror}") from None
        fd, tmp = -1, None
        try:
            fd, tmp = new_file_at(dir_fd, 0o666)
            total = 0
            for part in self._stream_parts(content):
                write_all(fd, part)
                total += len(part)
            if isinstance(content, dict) and content.get("size", total) != total:
                raise IntegrityError(f"stream {name!r}: restored {total} bytes, the snapshot says {content['size']}")
            with contextlib.suppress(FileNotFoundError):  # replacing a file's content keeps its mode
                old = os.stat(target.name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(old.st_mode):
                    os.fchmod(fd, stat.S_IMODE(old.st_mode))
            # a directory that appeared at target meanwhile is an error, not something to remove
            place_file_at(dir_fd, fd, tmp, target.name, replace_dir=False)
            tmp = None
            return total
        except StorageError as exc:
            raise self.repo.storage_error(exc) from exc
        except OSError as exc:
            raise RepositoryError(f"cannot write {target}: {exc.strerror or exc}") from None
        finally:
            if fd >= 0:
                os.close(fd)
            if tmp is not None:
                discard_at(dir_fd, tmp)
            os.close(dir_fd)

    # -- restore: the tree walk ------------------------------------------------------------

    def _entries(self, tree_id: Any) -> list[Any]:
        """A tree's entries; RepositoryError (or a malformed-data error) if it cannot be read."""
        if not isinstance(tree_id, str):
            raise RepositoryError("the entry names no tree")
        entries = self.repo.load_tree(tree_id)
        if not isinstance(entries, list):
            raise RepositoryError(f"tree {tree_id}: entries are not a list")
        return entries

    def _find(self, tree_id: str, parts: list[str], path: str) -> dict[str, Any]:
        entries = self._entries(tree_id)
        node: dict[str, Any] | None = None
        for i, part in enumerate(parts):
            node = next((e for e in entries if isinstance(e, dict) and e.get("name") == part), None)
            if node is None:
                raise RepositoryError(f"path {path!r} is not in the snapshot")
            if i < len(parts) - 1:
                if node.get("type") != "dir":
                    raise RepositoryError(f"path {path!r} is not in the snapshot ({part!r} is not a directory)")
                entries = self._entries(node.get("subtree"))
        assert node is not None
        return node

    def _events(self, top: _Dir, entries: list[Any], result: RestoreResult,
                baseline: Baseline | None = None) -> Iterator[tuple[int, Any, Any]]:
        """Events for ``entries`` placed in ``top``, depth first, in tree order.

        Runs ahead of the writer (inside the prefetch window). Entries that cannot be
        restored — invalid or repeated names, unreadable trees or chunk lists — are
        reported here and skipped. Nothing here changes the filesystem; with a
        ``baseline`` the walk looks at what the target holds through its own read-only
        directory fds (``probe``, never following a link) and yields a file the baseline
        vouches for as _KEEP, without its chunks (they are never fetched).
        """
        links_seen: set[str] = set()
        # (directory, its entries still to walk, names seen in it)
        stack: list[tuple[_Dir, Iterator[Any], set[str]]] = [(top, iter(entries), set())]
        try:
            yield from self._walk(stack, top, result, baseline, links_seen)
        finally:  # a walk stopped early leaves no probe open
            for d, _, _ in stack:
                if d.probe >= 0 and d is not top:
                    os.close(d.probe)
                    d.probe = -1

    def _walk(self, stack: list[tuple[_Dir, Iterator[Any], set[str]]], top: _Dir, result: RestoreResult,
              baseline: Baseline | None, links_seen: set[str]) -> Iterator[tuple[int, Any, Any]]:
        while stack:
            parent, todo, seen = stack[-1]
            entry = next(todo, None)
            if entry is None:
                stack.pop()
                if parent.probe >= 0 and parent is not top:
                    os.close(parent.probe)
                    parent.probe = -1
                yield _DIR_DONE, parent, seen
                continue
            name = entry.get("name") if isinstance(entry, dict) else None
            problem = name_problem(name) if isinstance(entry, dict) else "not an entry"
            if problem is not None:
                result.failures[f"{parent.shown}/{name!r}"] = f"invalid entry name ({problem}); skipped"
                continue
            assert isinstance(name, str)
            shown = f"{parent.shown}/{name}"
            if name in seen:
                result.failures[shown] = "duplicate entry name in its directory; skipped"
                continue
            seen.add(name)
            kind = entry.get("type")
            if kind == "dir":
                try:
                    children = self._entries(entry.get("subtree"))
                except (RepositoryError, ValueError, TypeError, KeyError, RecursionError) as exc:
                    result.failures[shown] = f"cannot read its tree: {exc}; not restored"
                    continue
                sub = _Dir(parent, name, entry, shown)
                if parent.probe >= 0:
                    with contextlib.suppress(OSError):
                        sub.probe = open_dir_at(parent.probe, name)
                yield _DIR, sub, None
                stack.append((sub, iter(children), set()))
            elif kind == "file":
                item = _File(parent, name, entry, shown)
                link = entry.get("hardlink")
                if isinstance(link, str) and link in links_seen:
                    yield _LINK, item, link
                    continue
                if isinstance(link, str):
                    links_seen.add(link)
                    item.link = link
                elif baseline is not None and parent.probe >= 0:
                    kept = self._may_keep(baseline, parent, name, entry)
                    if kept is not None:
                        yield _KEEP, item, kept
                        continue
                yield _FILE, item, None
                chunks = self.repo.content_chunks(entry.get("content"))
                while item.error is None:
                    try:
                        cid = next(chunks)
                    except StopIteration:
                        break
                    except (RepositoryError, ValueError, TypeError, AttributeError) as exc:
                        item.error = f"cannot read its chunk list: {exc}"
                        break
                    yield _CHUNK, cid, item
                yield _FILE_DONE, item, None
            else:
                yield _SPECIAL, _File(parent, name, entry, shown), None

    @staticmethod
    def _may_keep(baseline: Baseline, parent: _Dir, name: str, entry: dict[str, Any]) -> os.stat_result | None:
        """The state of the target's file ``name`` if the baseline vouches that it holds the entry's content."""
        content = entry.get("content")
        if not isinstance(content, Mapping):
            return None
        try:
            st = os.stat(name, dir_fd=parent.probe, follow_symlinks=False)
        except OSError:
            return None
        try:
            return st if baseline.may_keep((*parent.parts, name), st, content) else None
        except Exception:  # noqa: BLE001 - a baseline that fails vouches for nothing: the file is written
            return None

    # -- restore ---------------------------------------------------------------------------

    def restore(self, snapshot_id: str, target: Path, path: str | None, *, baseline: Baseline | None = None,
                prune: bool = False, record: FileRecord | None = None,
                list_written: bool = False) -> RestoreResult:
        """Restore a snapshot (or the entry ``path`` of it) below ``target``.

        Everything is checked that can be before the target is touched. Only
        RestoreError (some entries failed; ``failures`` names them) or a
        RepositoryError that stopped the whole restore leaves here.

        Into a target that holds an earlier restore (a migration's pre-seed): ``baseline``
        vouches for files that already hold the snapshot's content (they are kept, their
        data is never fetched; their mode, owner and times are put right), ``prune``
        removes every entry the snapshot does not hold (a link is removed, never followed;
        no other file system is entered), ``record`` is told of every regular file in
        place. All three apply to whole-snapshot restores only. ``list_written``: the
        result names the files whose data was written.
        """
        if path is not None and (baseline is not None or prune or record is not None):
            raise RepositoryError("baseline, prune and record apply to restores of a whole snapshot, not of a path")
        doc = self.repo.load_snapshot(snapshot_id)
        if doc.get("tree") is None:
            raise RepositoryError(f"snapshot {doc['id'][:12]} holds no file tree (streams only)")
        parts: list[str] = []
        try:
            if path is None:
                entries = self._entries(doc["tree"])
            else:
                parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
                if not parts:
                    raise RepositoryError("empty path")
                if ".." in parts:
                    raise RepositoryError(f"path {path!r} must not contain '..'")
                for part in parts:
                    if name_problem(part) is not None:
                        raise RepositoryError(f"path {path!r}: {part!r} cannot be a file name ({name_problem(part)})")
                entries = [self._find(doc["tree"], parts, path)]
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise RepositoryError(f"snapshot {doc['id'][:12]}: its tree is malformed: {exc}") from None
        except StorageError as exc:
            raise self.repo.storage_error(exc) from exc
        try:
            root_fd = open_target(target)
        except TargetError as exc:
            raise RepositoryError(exc.strerror) from None
        result = RestoreResult(written_paths=[] if list_written else None)
        root = _Dir(None, "", (doc.get("root") or {}) if path is None else None, str(target))
        root.fd, root.keep_open = root_fd, True
        if baseline is not None:
            root.probe = os.dup(root_fd)
        top = root
        opened: list[int] = []
        try:
            for part in parts[:-1]:  # a single entry keeps its path below the target
                try:
                    fd, _ = make_dir_at(top.fd, part, 0o777)
                except OSError as exc:
                    raise RepositoryError(f"cannot create {top.shown}/{part}: {exc.strerror or exc}") from None
                opened.append(fd)
                top = _Dir(top, part, None, f"{top.shown}/{part}")
                top.fd, top.keep_open = fd, True
            writer = _Writer(self, root_fd, result, prune=prune, record=record)
            # decoded chunks reuse the pages freed by the ones written; not from remote storage, where the
            # restore's peak RSS is near its 200 MiB budget (its block cache) and the network sets the pace
            with keeping_freed_memory(when=not self.repo.storage.remote):
                self._write(writer, self._events(top, entries, result, baseline))
        except StorageError as exc:
            raise self.repo.storage_error(exc) from exc
        finally:
            for fd in opened:
                os.close(fd)
            if root.probe >= 0:
                os.close(root.probe)
            os.close(root_fd)
        if result.failures:
            listing = "; ".join(f"{p}: {r}" for p, r in sorted(result.failures.items()))
            raise RestoreError(f"{len(result.failures)} item(s) could not be restored: {listing}", result.failures,
                               result=result)
        return result

    # -- restore: the writer ---------------------------------------------------------------

    def _write(self, writer: _Writer, events: Iterator[tuple[int, Any, Any]]) -> None:
        """Apply the events in order (see _Writer)."""
        try:
            for kind, a, b, fut in self._prefetch(events):
                if kind == _CHUNK:
                    assert fut is not None
                    writer.chunk(b, fut)
                elif kind == _FILE:
                    writer.file(a)
                elif kind == _FILE_DONE:
                    writer.file_done(a)
                elif kind == _DIR:
                    writer.directory(a)
                elif kind == _DIR_DONE:
                    writer.directory_done(a, b)
                elif a.parent.fd < 0:
                    continue  # its directory failed (and is reported)
                elif kind == _KEEP:
                    writer.keep(a, b)
                elif kind == _LINK:
                    writer.link(a, b)
                elif kind == _SPECIAL:
                    writer.special(a)
            writer.report("", last=True)
        finally:
            writer.abandon()


class _Writer:
    """Creates what the walk describes, relative to directory fds, never following a link.

    A file is written to an unnamed O_TMPFILE inode (or a temporary name) in its
    directory and linked or renamed to its final name once every chunk is verified
    and its size and metadata are right; a failure discards it, so an earlier
    version stays as it was. Symlinks, fifos, devices and hard links are made under
    a temporary name and renamed into place. An entry whose directory failed is skipped silently (the
    directory's failure is reported).
    """

    def __init__(self, restorer: Restorer, root_fd: int, result: RestoreResult, *, prune: bool = False,
                 record: FileRecord | None = None) -> None:
        self.restorer = restorer
        self.prune = prune
        self.record = record
        self.root_dev = os.fstat(root_fd).st_dev
        self.progress = ThrottledProgress(restorer.progress)
        self.is_root = restorer.is_root
        self.root_fd = root_fd
        self.result = result
        #: hard-link key -> (path below the root, st_dev, st_ino) of the file this restore made for it
        self.links: dict[str, tuple[tuple[str, ...], int, int] | None] = {}
        self.current: _File | None = None  # the file being written
        self.out = -1
        self.tmp: str | None = None  # the file's temporary name (None: an unnamed O_TMPFILE inode)
        self.written = 0
        self.done = 0

    def fail(self, item: _Dir | _File, reason: str) -> None:
        self.result.failures[item.shown] = reason

    # -- files -----------------------------------------------------------------------------

    def file(self, item: _File) -> None:
        self.current, self.written, self.out = item, 0, -1
        dir_fd = item.parent.fd
        if dir_fd < 0:
            return
        try:
            self.out, self.tmp = new_file_at(dir_fd)
        except OSError as exc:
            item.error = f"cannot create: {exc.strerror}"

    def chunk(self, item: _File, handle: _Chunk | _Missing) -> None:
        if item is not self.current or self.out < 0 or item.error is not None:
            return
        try:
            data = handle.result()
            write_all(self.out, data)
        except RepositoryError as exc:
            item.error = str(exc)
            return
        except OSError as exc:
            item.error = f"cannot write: {exc.strerror}"
            return
        self.written += len(data)
        self.done += len(data)
        self.report(item.shown)

    def report(self, shown: str, *, last: bool = False) -> None:
        """Tell the progress callback how many bytes are written (throttled)."""
        self.progress(self.done, shown, last=last)

    def file_done(self, item: _File) -> None:
        fd, tmp = self.out, self.tmp
        self.out, self.tmp, self.current = -1, None, None
        if item.parent.fd < 0:
            return
        content = item.node.get("content")
        size = content.get("size") if isinstance(content, dict) else None
        if item.error is None and _is_int(size) and size != self.written:
            item.error = f"restored {self.written} bytes, the snapshot says {size}"
        try:
            if item.error is None:
                self._meta(item, fd=fd)
                st = os.fstat(fd) if item.link is not None else None
                place_file_at(item.parent.fd, fd, tmp, item.name)
                tmp = None
                self.result.files += 1
                self.result.bytes += self.written
                self._written(item)
                if item.link is not None and st is not None:
                    self.links[item.link] = ((*item.parent.parts, item.name), st.st_dev, st.st_ino)
                return
        except OSError as exc:
            item.error = f"cannot put in place: {exc.strerror or exc}"
        finally:
            if fd >= 0:
                os.close(fd)
            if tmp:
                discard_at(item.parent.fd, tmp)
        self.fail(item, str(item.error))
        if item.link is not None:
            self.links[item.link] = None

    def _written(self, item: _File) -> None:
        self.result.written += 1
        self.result.written_bytes += self.written
        if self.result.written_paths is not None:
            self.result.written_paths.append("/".join((*item.parent.parts, item.name)))
        if self.record is not None:
            content = item.node.get("content")
            try:
                st = os.stat(item.name, dir_fd=item.parent.fd, follow_symlinks=False)
            except OSError:
                return
            if isinstance(content, Mapping):
                self.record.add((*item.parent.parts, item.name), st, content)

    def keep(self, item: _File, walked: os.stat_result) -> None:
        """A file the baseline vouched for: still the very file the walk looked at? Then keep its data, put
        its metadata right, and record it; else write it after all."""
        dir_fd = item.parent.fd
        try:
            fd = os.open(item.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            fd = -1
        try:
            st = os.fstat(fd) if fd >= 0 else None
            if st is None or not stat.S_ISREG(st.st_mode) or _state(st) != _state(walked):
                self._write_now(item)
                return
            if _meta_differs(item.node, st, self.is_root):
                self._meta(item, fd=fd)
                st = os.fstat(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        self.result.kept += 1
        self.result.files += 1
        self.result.bytes += st.st_size
        content = item.node.get("content")
        if self.record is not None and isinstance(content, Mapping):
            self.record.add((*item.parent.parts, item.name), st, content)

    def _write_now(self, item: _File) -> None:
        """Write a file whose chunks were not fetched ahead (it changed after the walk vouched for it)."""
        self.file(item)
        if self.out >= 0 and item.error is None:
            try:
                for data in self.restorer._stream_parts(item.node.get("content")):
                    write_all(self.out, data)
                    self.written += len(data)
            except RepositoryError as exc:
                item.error = str(exc)
            except OSError as exc:
                item.error = f"cannot write: {exc.strerror}"
        self.file_done(item)

    def _prune(self, item: _Dir, names: set[str]) -> None:
        """Remove what directory ``item`` holds and the snapshot does not."""
        for name in sorted(os.listdir(item.fd)):
            if name in names:
                continue
            try:
                self._remove_at(item.fd, name)
                self.result.deleted += 1
            except OSError as exc:
                self.fail(item, f"cannot remove {name!r}, which the snapshot does not hold: {exc.strerror or exc}")

    def _remove_at(self, dir_fd: int, name: str) -> None:
        """Remove ``name`` of ``dir_fd``: a link itself (never what it points to), a directory depth first by
        fds, never entering another file system."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return
        if st.st_dev != self.root_dev:
            raise OSError(errno.EXDEV, "another file system is mounted there")
        fd = open_dir_at(dir_fd, name)
        try:
            if not self.is_root:
                self._make_writable(fd)
            for child in os.listdir(fd):
                self._remove_at(fd, child)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)

    def link(self, item: _File, key: str) -> None:
        """Hard-link ``item`` to the file this restore created for the same key, found again
        from the root without following links and checked to be that very inode."""
        source = self.links.get(key)
        if source is None:
            self.fail(item, "hard link to a file that could not be restored")
            return
        parts, dev, ino = source
        dir_fd = item.parent.fd
        tmp = ""
        try:
            src_dir = open_dir_below(self.root_fd, parts[:-1])
            try:
                tmp, _ = create_temp_at(dir_fd, lambda n: os.link(parts[-1], n, src_dir_fd=src_dir,
                                                                  dst_dir_fd=dir_fd, follow_symlinks=False))
            finally:
                os.close(src_dir)
            st = os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != (dev, ino) or not stat.S_ISREG(st.st_mode):
                self.fail(item, "the file it is a hard link of was replaced during the restore")
                return
            replace_at(dir_fd, tmp, item.name)
            tmp = ""
            self.result.files += 1
        except OSError as exc:
            self.fail(item, f"cannot hard-link: {exc.strerror or exc}")
        finally:
            if tmp:
                discard_at(dir_fd, tmp)

    def special(self, item: _File) -> None:
        """A symlink, fifo or device node (a symlink's target is stored as is and never followed)."""
        node, dir_fd = item.node, item.parent.fd
        kind = node.get("type")
        make: Callable[[str], None]
        if kind == "symlink":
            target = node.get("target")
            if not isinstance(target, str) or not target or "\0" in target:
                self.fail(item, "symlink without a valid target; skipped")
                return
            make = lambda n: os.symlink(target, n, dir_fd=dir_fd)  # noqa: E731
        elif kind == "fifo":
            make = lambda n: os.mkfifo(n, 0o600, dir_fd=dir_fd)  # noqa: E731
        elif kind in ("chardev", "blockdev"):
            flag = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
            rdev = node.get("rdev", 0)
            make = lambda n: os.mknod(n, flag | 0o600, rdev if _is_int(rdev) else 0, dir_fd=dir_fd)  # noqa: E731
        else:
            self.result.warnings.append(f"{item.shown}: unknown entry type {kind!r}; skipped")
            return
        tmp = ""
        try:
            tmp, _ = create_temp_at(dir_fd, make)
            self._meta(item, tmp=tmp)
            replace_at(dir_fd, tmp, item.name)
            tmp = ""
        except PermissionError as exc:
            if kind in ("chardev", "blockdev") and not tmp:
                self.result.warnings.append(f"{item.shown}: device node needs privileges; skipped")
            else:
                self.fail(item, f"cannot create {kind}: {exc.strerror}")
            return
        except (OSError, ValueError, OverflowError) as exc:
            self.fail(item, f"cannot create {kind}: {getattr(exc, 'strerror', None) or exc}")
            return
        finally:
            if tmp:
                discard_at(dir_fd, tmp)
        self.result.files += 1

    # -- directories -----------------------------------------------------------------------

    def directory(self, item: _Dir) -> None:
        if item.parent is None or item.parent.fd < 0:
            return
        try:
            item.fd, created = make_dir_at(item.parent.fd, item.name)
            if not created and not self.is_root:
                self._make_writable(item.fd)
        except OSError as exc:
            self.fail(item, f"cannot create directory: {exc.strerror or exc}; its contents were skipped")

    def directory_done(self, item: _Dir, names: set[str] | None = None) -> None:
        if item.fd < 0:
            return
        if self.prune and names is not None:
            self._prune(item, names)
        if item.node is not None:
            self.result.dirs += 1
            self._meta(item, fd=item.fd)
        if not item.keep_open:
            os.close(item.fd)
            item.fd = -1

    @staticmethod
    def _make_writable(fd: int) -> None:
        """An existing directory we own but cannot write into (e.g. 0555 from an earlier restore)
        gets u+rwx until its own metadata is applied when it is done."""
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | 0o700)

    def _meta(self, item: _Dir | _File, *, fd: int = -1, tmp: str = "") -> None:
        """Owner, mode and times of ``item``: through ``fd``, or on ``tmp`` in its directory without
        following a link (for a symlink its own owner and times; it has no mode of its own)."""
        node, result = item.node, self.result
        assert node is not None
        is_link = node.get("type") == "symlink"
        dir_fd = item.parent.fd if item.parent is not None else -1
        uid, gid = node.get("uid"), node.get("gid")
        if _is_int(uid) and _is_int(gid):
            try:
                if fd >= 0:
                    os.fchown(fd, uid, gid)
                else:
                    os.chown(tmp, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except PermissionError:
                if self.is_root:
                    result.warnings.append(f"{item.shown}: cannot set owner")
            except (OSError, OverflowError) as exc:
                result.warnings.append(f"{item.shown}: cannot set owner: {getattr(exc, 'strerror', None) or exc}")
        mode, mtime = node.get("mode"), node.get("mtime_ns")
        atime = node.get("atime_ns", mtime)
        try:
            if _is_int(mode) and not is_link:
                if fd >= 0:
                    os.fchmod(fd, stat.S_IMODE(mode))
                else:
                    os.chmod(tmp, stat.S_IMODE(mode), dir_fd=dir_fd, follow_symlinks=False)
            if _is_int(mtime) and _is_int(atime):
                if fd >= 0:
                    os.utime(fd, ns=(atime, mtime))
                else:
                    os.utime(tmp, ns=(atime, mtime), dir_fd=dir_fd, follow_symlinks=False)
        except (OSError, NotImplementedError, OverflowError, ValueError) as exc:
            result.warnings.append(f"{item.shown}: cannot set mode/times: {exc}")

    def abandon(self) -> None:
        """After a restore stopped early (a storage error): leave no temporary file behind."""
        if self.out >= 0:
            os.close(self.out)
            self.out = -1
            if self.tmp is not None and self.current is not None and self.current.parent.fd >= 0:
                discard_at(self.current.parent.fd, self.tmp)


def _state(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _meta_differs(node: Mapping[str, Any], st: os.stat_result, is_root: bool) -> bool:
    """Whether a kept file's mode, times or (as root) owner differ from the snapshot's."""
    mode, mtime = node.get("mode"), node.get("mtime_ns")
    if _is_int(mode) and stat.S_IMODE(mode) != stat.S_IMODE(st.st_mode):
        return True
    if _is_int(mtime) and mtime != st.st_mtime_ns:
        return True
    uid, gid = node.get("uid"), node.get("gid")
    return is_root and _is_int(uid) and _is_int(gid) and (uid, gid) != (st.st_uid, st.st_gid)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Dir:
    """A directory of the restore: created and opened (``fd``) by the writer at its _DIR event."""

    __slots__ = ("fd", "keep_open", "name", "node", "parent", "parts", "probe", "shown")

    def __init__(self, parent: _Dir | None, name: str, node: dict[str, Any] | None, shown: str) -> None:
        self.parent, self.name, self.node, self.shown = parent, name, node, shown
        #: path below the restore root, for re-opening it without following links (hard links)
        self.parts: tuple[str, ...] = (*parent.parts, name) if parent is not None else ()
        self.fd = -1
        self.keep_open = False
        #: the walk's own read-only fd of this directory in the target (with a baseline), else -1
        self.probe = -1


class _File:
    """A non-directory entry; ``error`` is set by the walk or the writer when it fails."""

    __slots__ = ("error", "link", "name", "node", "parent", "shown")

    def __init__(self, parent: _Dir, name: str, node: dict[str, Any], shown: str) -> None:
        self.parent, self.name, self.node, self.shown = parent, name, node, shown
        self.error: str | None = None
        self.link: str | None = None
