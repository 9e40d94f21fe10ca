"""Backup: walk, chunk, dedup, compress, encrypt, pack, index, snapshot.

Threads: the caller's thread walks the tree, reads files and cuts chunks (FastCDC
releases the GIL); a pool of ``workers`` hashes, compresses and encrypts them
into pack buffers (BLAKE3 and zstd release the GIL; AES-GCM in ``cryptography``
does not), one job per read block or per batch of small files, not per chunk;
two upload threads write finished packs; one tree thread assembles chunk lists
and directory trees as their children complete. Everything in flight is
bounded (read blocks, small-file batches, worker jobs, pack buffers, queued
directories), so peak memory does not depend on the volume size."""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import pyfastcdc

from .crypto import BlobType
from .errors import RepositoryError
from .format import CHUNKS_PER_LIST, CONFIG_KEY, INLINE_CHUNKS, KEYS_PREFIX, BlobEntry, pack_key
from .protocols import BackupTarget, ProgressFn, Saver, StreamSource, ThrottledProgress
from .storage import Retention, StorageError

INDEX_FLUSH_PACKS = 64
READ_BLOCK = 4 * 1024 * 1024
READ_BLOCKS = 3
#: a chunk worker's own read block (see Archiver._store_file)
WORKER_BLOCK = 1024 * 1024
#: files up to this size are read whole by a worker together with their neighbours, up to
#: SMALL_BATCH_BYTES (at their stat) or SMALL_BATCH_FILES files per job and SMALL_BATCHES jobs at once (a job
#: per file cost more than the file)
SMALL_FILE = 256 * 1024
SMALL_BATCH_BYTES = 1024 * 1024
SMALL_BATCH_FILES = 256
SMALL_BATCHES = 3
#: a file above this is read and cut by the walk's thread, each block's chunks stored by a worker (both
#: workers on one file); up to it a worker reads, cuts and stores the file alone (files side by side)
HUGE_FILE = 16 * READ_BLOCK
#: directories waiting for the tree thread at most (see Archiver._tree_slots)
TREE_BACKLOG = 64


@dataclass
class BackupStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    unchanged_files: int = 0
    chunks: int = 0
    new_chunks: int = 0
    new_bytes: int = 0
    new_stored_bytes: int = 0
    packs: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class BackupResult:
    snapshot_id: str
    stats: BackupStats
    #: per-item problems (unreadable files, ...) that did not stop the backup
    errors: list[str] = field(default_factory=list)


def backup(target: BackupTarget, path: str | os.PathLike[str] | None = None, *,
           streams: Mapping[str, StreamSource] | None = None, parent: str | None = None,
           tags: Iterable[str] = (), metadata: Mapping[str, str] | None = None,
           retention: Retention | None = None, progress: ProgressFn | None = None) -> BackupResult:
    """Back up a directory tree and/or named byte streams into one new snapshot (see Repository.backup)."""
    if path is None and not streams:
        raise RepositoryError("nothing to back up: give a path and/or streams")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise RepositoryError("snapshot metadata must map strings to strings")
    if retention is not None and not target.storage.supports_retention:
        raise RepositoryError(f"{target.storage.url} cannot lock objects; retention is not available here")
    source = None
    if path is not None:
        source = Path(path)
        if not source.is_dir():
            raise RepositoryError(f"backup source {source} is not a directory")
    return Archiver(target, retention=retention, progress=progress).run(
        source, dict(streams or {}), parent=parent, tags=list(tags), metadata=dict(metadata or {}))


#: bytes a new pack buffer starts with; it doubles up to the pack's capacity as blobs arrive
FIRST_PACK_BUFFER = 1024 * 1024


class _PackBuffer:
    """A pack being filled: a reusable bytearray (``used`` bytes valid) and its header entries.

    Blobs are encrypted straight into ``data``; a buffer goes back to the saver's free
    list after its upload, so steady state allocates nothing per chunk or per pack. A new
    buffer starts at FIRST_PACK_BUFFER and doubles up to ``capacity`` as it fills: a backup of
    a small record (every backup writes a few) zeroed a whole pack per buffer before.
    """

    __slots__ = ("budgeted", "capacity", "data", "entries", "used")

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.data = bytearray(min(capacity, FIRST_PACK_BUFFER))
        self.entries: list[BlobEntry] = []
        self.used = 0
        #: ``data`` holds one of the saver's places for pack buffers (BlobSaver.max_buffers)
        self.budgeted = False

    def reserve(self, n: int) -> None:
        short = self.used + n - len(self.data)
        if short > 0:  # double up to the capacity; beyond it (a large tree blob, a partial-pack merge) a quarter
            grow = min(len(self.data), self.capacity - len(self.data)) if len(self.data) < self.capacity \
                else len(self.data) // 4
            self.data.extend(bytes(max(short, grow)))

    def append(self, data: bytes | bytearray | memoryview) -> None:
        self.reserve(len(data))
        self.data[self.used:self.used + len(data)] = data
        self.used += len(data)

    def view(self) -> memoryview:
        return memoryview(self.data)[:self.used]


class BlobSaver:
    """Deduplicates and stores blobs into packs; writes index objects as packs land."""

    def __init__(self, repo: Saver, *, retention: Retention | None, stats: BackupStats,
                 fill_buffers: int | None = None, upload_slots: int = 2, max_buffers: int | None = None) -> None:
        """``fill_buffers`` packs are filled at once (default: one per worker, plus one), ``upload_slots``
        uploaded at once; each holds up to a pack in memory (a DR copy, fed by one reader, uses one each).

        At most ``max_buffers`` pack buffers exist at once (default: one per filled pack and per upload;
        a full pack waiting for an upload slot takes the place of one being filled); a thread that needs
        another waits for an upload to end. Without the bound, a slow store (S3) had each worker hold a
        full pack waiting for a slot while the other fill buffers filled on, plus the spare: up to 8 packs
        (132 MiB) for 2 workers, where 5 keep both uploads busy (docs/benchmarks.md, issue 15)."""
        self.repo = repo
        #: what this backup deduplicates against: the index storage holds after the lock was taken
        self.index = repo.index_for_backup()
        self.retention = retention
        self.stats = stats
        self.workers = ThreadPoolExecutor(repo.workers, thread_name_prefix="kubekeep-chunk")
        self.uploads = ThreadPoolExecutor(upload_slots, thread_name_prefix="kubekeep-upload")
        self.upload_slots = threading.Semaphore(upload_slots)
        self.inflight = threading.Semaphore(8 * repo.workers)
        self.buffers: queue.Queue[_PackBuffer] = queue.Queue()
        #: room for a full pack plus the largest chunk's envelope, so filling never reallocates
        self.capacity = repo.pack_size + int(repo.chunker_params["max_size"]) + 4096
        self.free: list[_PackBuffer] = []
        self.free_lock = threading.Lock()
        fill = fill_buffers if fill_buffers is not None else repo.workers + 1
        for _ in range(fill):
            self.buffers.put(_PackBuffer())
        self.max_buffers = max_buffers if max_buffers is not None else fill + upload_slots
        if self.max_buffers <= fill:
            raise ValueError("max_buffers must exceed fill_buffers (a full pack needs a place to wait)")
        #: pack buffers that exist (filled, waiting, uploading or the spare); signalled when one is recycled
        self.live_buffers = 0
        self.recycled = threading.Condition(self.free_lock)
        self.claim_lock = threading.Lock()
        #: blobs this saver is storing, from the lookup that missed them until their pack is indexed and
        #: admitted to ``index`` (then the lookup finds them): at most the blobs in flight, whatever the size
        #: of the backup. One thread stores a blob; the others see it claimed, or in the index.
        self.claimed: set[bytes] = set()
        #: the packs this saver wrote and admitted to ``index`` (finding a blob there is no reuse)
        self.own_packs: set[bytes] = set()
        #: packs holding blobs this backup references without writing (for retention)
        self.reused_packs: set[bytes] = set()
        self.commit_lock = threading.Lock()
        self.pending_index: dict[bytes, list[BlobEntry]] = {}
        self.upload_futures: list[Future[None]] = []
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    # -- blobs -----------------------------------------------------------------------------

    def save_chunks_async(self, chunks: Sequence[bytes | memoryview]) -> Future[list[bytes]]:
        """Store a run of data chunks in one worker job (one hand-off per read block or batch of small
        files, not per chunk: per-chunk futures and GIL hand-offs cost more CPU than zstd did); the
        job's result is their ids, in order."""
        self.inflight.acquire()
        try:
            fut = self.workers.submit(self._save_chunks_job, chunks)
        except BaseException:
            self.inflight.release()
            raise
        return fut

    def _save_chunks_job(self, chunks: Sequence[bytes | memoryview]) -> list[bytes]:
        try:
            return self.save_blobs(BlobType.DATA, chunks)
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            self.inflight.release()

    def save_blob(self, blob_type: int, data: bytes | memoryview, *,
                  packed: tuple[int, bytes | memoryview] | None = None) -> bytes:
        """Store ``data`` unless it is there; ``packed``: its (flag, payload) already compressed (a copy)."""
        return self.save_blobs(blob_type, [data], packed=None if packed is None else [packed])[0]

    def save_blobs(self, blob_type: int, datas: Sequence[bytes | memoryview], *,
                   packed: Sequence[tuple[int, bytes | memoryview]] | None = None) -> list[bytes]:
        """Store each of ``datas`` unless it is there (or claimed by another thread); return their ids.

        A run's new blobs go into one pack buffer, taken once (a file's consecutive chunks share a
        pack), and the locks are taken once per run."""
        repo = self.repo
        ids = [repo.blob_id(data) for data in datas]
        new: list[int] = []
        with self.claim_lock:
            if blob_type == BlobType.DATA:
                self.stats.chunks += len(ids)
            for i, blob_id in enumerate(ids):
                if blob_id in self.claimed:
                    continue
                pack = self.index.pack_of(blob_id)
                if pack is not None:
                    if self.retention is not None and pack not in self.own_packs:
                        self.reused_packs.add(pack)
                    continue
                self.claimed.add(blob_id)
                new.append(i)
        if not new:
            return ids
        compressor, envelope = repo.compressor, repo.envelope
        new_bytes = stored = 0
        buf = self.buffers.get()
        try:
            for i in new:
                data = datas[i]
                flag, payload = packed[i] if packed is not None else compressor.pack(data)
                size = envelope.sealed_size(len(payload))
                if not buf.data:
                    fresh = self._new_buffer()
                    buf.data, buf.capacity, buf.budgeted = fresh.data, fresh.capacity, fresh.budgeted
                buf.reserve(size)
                envelope.seal_into(blob_type, ids[i], flag, payload, buf.data, buf.used)
                buf.entries.append(BlobEntry(blob_type, ids[i], buf.used, size, len(data)))
                buf.used += size
                new_bytes += len(data)
                stored += size
                if buf.used >= repo.pack_size:
                    full, buf = buf, _PackBuffer()
                    self._upload(full)  # waits for an upload slot; the fill goes on in a new buffer
        finally:
            self.buffers.put(buf)
        with self.claim_lock:
            if blob_type == BlobType.DATA:
                self.stats.new_chunks += len(new)
                self.stats.new_bytes += new_bytes
            self.stats.new_stored_bytes += stored
        return ids

    def _new_buffer(self) -> _PackBuffer:
        with self.recycled:
            # all places taken: wait for an upload to end (its buffer comes back as the spare)
            while not self.free and self.live_buffers >= self.max_buffers:
                self.raise_if_failed()
                self.recycled.wait(timeout=1.0)
            if self.free:
                return self.free.pop()
            self.live_buffers += 1
        buf = _PackBuffer(self.capacity)
        buf.budgeted = True
        return buf

    def _recycle(self, buf: _PackBuffer) -> None:
        buf.entries = []
        buf.used = 0
        if not buf.budgeted:
            return
        with self.recycled:
            # one spare: keeping every recycled buffer (fewer page faults) raised the 8 GiB backup's peak
            # by 10-30 MiB in A/B, though the buffers alive stay under max_buffers either way
            if not self.free:
                self.free.append(buf)
            else:
                buf.budgeted = False
                self.live_buffers -= 1
            self.recycled.notify()

    # -- packs and index -------------------------------------------------------------------

    def _upload(self, buf: _PackBuffer) -> None:
        self.upload_slots.acquire()
        try:
            self.upload_futures.append(self.uploads.submit(self._upload_job, buf))
        except BaseException:
            self.upload_slots.release()
            raise

    def _upload_job(self, buf: _PackBuffer) -> None:
        try:
            pack_id = secrets.token_bytes(32)
            buf.append(self.repo.pack_tail(pack_id, buf.entries))
            try:
                with buf.view() as view:
                    self.repo.storage.put(pack_key(pack_id), view, retention=self.retention)
                entries = buf.entries
            finally:
                self._recycle(buf)  # failed too: threads waiting for a buffer must not wait for this one
            flush: dict[bytes, list[BlobEntry]] | None = None
            with self.commit_lock:
                self.stats.packs += 1
                self.pending_index[pack_id] = entries
                if len(self.pending_index) >= INDEX_FLUSH_PACKS:
                    flush, self.pending_index = self.pending_index, {}
            if flush:
                self._write_index(flush)
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            self.upload_slots.release()

    def _write_index(self, packs: dict[bytes, list[BlobEntry]]) -> None:
        self.repo.write_index_object(packs, retention=self.retention)
        self._release_claims(packs)

    def _release_claims(self, packs: dict[bytes, list[BlobEntry]]) -> None:
        """The packs are indexed: admit them to ``index`` and end the claims on the blobs that the index
        now resolves to a pack this saver sees. Another claim stays: the shared Index is not ``index``'s any
        more (a reload replaced it), or it keeps the blob in an invisible pack (first entry wins: another
        backup of this process stored it too). The index resolves a blob once and for all, so the lookups
        happen before the lock; admitting and releasing under it keep every blob claimed or visible."""
        shared = self.index.index
        indexed = [p for p in packs if shared.has_pack(p)]
        visible = self.index.packs | frozenset(indexed)
        done = [e.blob_id for p in indexed for e in packs[p] if shared.pack_of(e.blob_id) in visible]
        with self.claim_lock:
            self.index.admit(indexed)
            self.own_packs.update(indexed)
            self.claimed.difference_update(done)

    def finish(self) -> None:
        """Upload partial packs, wait for every upload, write the last index object."""
        self.workers.shutdown(wait=True)
        self.raise_if_failed()
        merged = _PackBuffer()
        while True:
            try:
                buf = self.buffers.get_nowait()
            except queue.Empty:
                break
            # partial packs of all workers are merged, so a small backup makes one pack
            base = merged.used
            merged.entries.extend(BlobEntry(e.blob_type, e.blob_id, e.offset + base, e.length, e.raw_length)
                                  for e in buf.entries)
            with buf.view() as view:
                merged.append(view)
            if merged.used >= self.repo.pack_size:
                self._upload(merged)
                merged = _PackBuffer()
        if merged.entries:
            self._upload(merged)
        self.uploads.shutdown(wait=True)
        for fut in self.upload_futures:
            fut.result()
        self.raise_if_failed()
        if self.pending_index:
            self._write_index(self.pending_index)
            self.pending_index = {}

    def abort(self) -> None:
        self.workers.shutdown(wait=True, cancel_futures=True)
        self.uploads.shutdown(wait=True, cancel_futures=True)


#: a chunk's id as a worker job computes it: (the job's future, the chunk's place in the job)
ChunkRef = tuple[Future[list[bytes]], int]


class _Content:
    """A file's or stream's chunk ids as they are being computed."""

    def __init__(self, archiver: Archiver) -> None:
        self.archiver = archiver
        self.size = 0
        self.refs: list[ChunkRef] = []
        self.lists: list[Future[bytes]] = []
        self._resolved: dict[str, Any] | None = None

    def add(self, job: Future[list[bytes]], index: int, length: int) -> None:
        self.size += length
        self.refs.append((job, index))
        if len(self.refs) == CHUNKS_PER_LIST:
            self.lists.append(self.archiver.trees.submit(self.archiver.save_list, self.refs))
            self.refs = []

    def close(self) -> None:
        if self.lists or len(self.refs) > INLINE_CHUNKS:
            if self.refs:
                self.lists.append(self.archiver.trees.submit(self.archiver.save_list, self.refs))
            self.refs = []

    def resolve(self) -> dict[str, Any]:
        """In the tree thread: wait for the chunk ids."""
        if self._resolved is None:
            if self.lists:
                self._resolved = {"size": self.size, "lists": [f.result().hex() for f in self.lists]}
            else:
                self._resolved = {"size": self.size, "chunks": [job.result()[i].hex() for job, i in self.refs]}
        return self._resolved


class _FileContent:
    """A file read, cut and stored by a worker job (Archiver._file_job, or one of Archiver._small_job's
    files: ``index``); its content once the job ends."""

    __slots__ = ("index", "job")

    def __init__(self, job: Future[Any] | None = None) -> None:
        self.job = job
        #: the file's place in a job of small files (None: the job's whole result); set with ``job``
        self.index: int | None = None

    def resolve(self) -> dict[str, Any] | None:
        """In the tree thread: the content, or None when the file could not be read."""
        assert self.job is not None, "a small file's job is set before its directory's tree job"
        result = self.job.result()
        return cast("dict[str, Any] | None", result if self.index is None else result[self.index])


class _IterReader:
    """A read()-able view of an iterator of byte strings."""

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(parts)
        self._buf = b""

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            part = next(self._it, None)
            if part is None:
                break
            if not isinstance(part, bytes | bytearray | memoryview):
                raise RepositoryError(f"stream parts must be bytes, got {type(part).__name__}")
            self._buf += bytes(part)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _fill(reader: Any, view: memoryview, filled: int) -> tuple[int, bool]:
    """Read into ``view`` after its first ``filled`` bytes until it is full or ``reader`` ends: (the bytes
    in ``view``, whether the reader ended)."""
    while filled < len(view):
        got = reader.readinto(view[filled:])
        if not got:
            return filled, True
        filled += got
    return filled, False


def _stat_fields(st: os.stat_result) -> dict[str, Any]:
    return {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns, "atime_ns": st.st_atime_ns}


class Archiver:
    def __init__(self, repo: BackupTarget, *, retention: Retention | None, progress: ProgressFn | None) -> None:
        self.repo = repo
        self.retention = retention
        self.stats = BackupStats()
        self.errors: list[str] = []
        self.trees = ThreadPoolExecutor(1, thread_name_prefix="kubekeep-tree")
        #: directories walked whose tree job has not run: the walk waits when TREE_BACKLOG are queued (an
        #: incremental walks unchanged files much faster than their trees are stored, and each queued
        #: directory holds its entries and its parent tree: the whole volume's metadata, unbounded)
        self._tree_slots = threading.BoundedSemaphore(TREE_BACKLOG)
        self.saver: BlobSaver
        self._hardlinks: dict[tuple[int, int], _FileContent | _Content] = {}
        self._done_bytes = 0
        #: workers add the bytes of the files they read (see _file_job)
        self._done_lock = threading.Lock()
        #: each chunk worker's read block for the files it reads whole (see _store_file)
        self._local = threading.local()
        #: sizes of files a worker could not read: the tree left them out, the stats drop them at the end
        self._dropped: list[int] = []
        #: the backup has a parent tree: its new directories' trees are kept for the diff after it
        self.incremental = False
        p = repo.chunker_params
        #: read blocks, each with the worker job of the chunks cut from it (see _chunk_blocks); allocated
        #: when a file first needs them: zeroing 12 MiB cost every small record's backup a few ms
        self._block_size = max(READ_BLOCK, 4 * p["max_size"])
        #: a worker's block for the files it reads whole: smaller (the worker stores each block's chunks before
        #: reading on, so it need only hold a chunk and the next; one per worker on top of the ring's blocks)
        self._worker_block_size = max(WORKER_BLOCK, 2 * p["max_size"])
        self._blocks: list[bytearray] = [bytearray() for _ in range(READ_BLOCKS)]
        self._block_jobs: list[Future[list[bytes]] | None] = [None] * READ_BLOCKS
        self._next_block = 0
        #: small files waiting to go to a worker together, each with its content (see _flush_small)
        self._small: list[tuple[str, int, _FileContent]] = []
        self._small_bytes = 0
        #: the small files' jobs in flight (at most SMALL_BATCHES, so the bytes they hold stay bounded)
        self._small_jobs: list[Future[list[dict[str, Any] | None]]] = []
        self._progress = ThrottledProgress(progress)
        self._min_chunk = int(p["min_size"])
        self.chunker = pyfastcdc.FastCDC(p["avg_size"], min_size=p["min_size"], max_size=p["max_size"],
                                         normalized_chunking=cast(Any, p["normalization"]), seed=p["seed"])

    # -- tree thread jobs ------------------------------------------------------------------

    def save_list(self, refs: list[ChunkRef]) -> bytes:
        return self.saver.save_blob(BlobType.CHUNK_LIST, b"".join(job.result()[i] for job, i in refs))

    def _save_tree(self, entries: list[dict[str, Any]], previous: tuple[bytes, bytes] | None = None) -> bytes:
        """Store a directory's tree; ``previous``: the (id, plaintext) of its tree in the parent snapshot.
        A directory whose tree changed leaves both versions in the repository's recent trees."""
        out = []
        for entry in entries:
            item = dict(entry)
            content = item.pop("_content", None)
            if content is not None:
                resolved = content.resolve()
                if resolved is None:  # a worker could not read it (recorded in errors): left out
                    self._dropped.append(int(item.get("size", 0)))
                    continue
                item["content"] = resolved
                if isinstance(content, _FileContent):  # read by a worker: the size it read
                    item["size"] = resolved["size"]
            subtree = item.pop("_subtree", None)
            if subtree is not None:
                item["subtree"] = subtree.result().hex()
            out.append(item)
        doc = {"version": 1, "entries": out}
        plain = json.dumps(doc, separators=(",", ":")).encode()
        tree_id = self.saver.save_blob(BlobType.TREE, plain)
        if previous is not None and previous[0] != tree_id:
            self.repo.recent_trees.add(previous[0], previous[1])
            self.repo.recent_trees.add(tree_id, plain)
        elif previous is None and self.incremental:  # a directory new since the parent snapshot
            self.repo.recent_trees.add(tree_id, plain)
        return tree_id

    # -- reading ---------------------------------------------------------------------------

    def _add_done(self, n: int) -> None:
        with self._done_lock:
            self._done_bytes += n

    def _report(self, label: str, *, last: bool = False) -> None:
        """Tell the progress callback how many bytes are read (throttled)."""
        self._progress(self._done_bytes, label, last=last)

    def _chunk_into(self, content: _Content, reader: Any, label: str) -> None:
        if hasattr(reader, "readinto"):
            self._chunk_blocks(content, reader, label)
            return
        saver = self.saver
        for chunk in self.chunker.cut_stream(reader):
            saver.raise_if_failed()
            data = bytes(chunk.data)
            content.add(saver.save_chunks_async([data]), 0, len(data))
            self._add_done(len(data))
            self._report(label)
        content.close()

    def _chunk_blocks(self, content: _Content, reader: Any, label: str) -> None:
        """Read into a ring of reused blocks and hand a worker each block's chunks as views (no copy).

        The chunk touching a block's end may be cut short by the block, so it is carried
        to the front of the next block and cut again: the boundaries are exactly those of
        chunking the whole file at once (a boundary depends only on the bytes from the
        chunk's start up to max_size after it), so deduplication is unaffected. A block
        is refilled only after the job of the chunks cut from it has ended.
        """
        saver = self.saver
        carry: memoryview | None = None
        eof = False
        while not eof:
            slot = self._next_block
            self._next_block = (slot + 1) % len(self._blocks)
            block = self._blocks[slot]
            if not block:
                block = self._blocks[slot] = bytearray(self._block_size)
            job = self._block_jobs[slot]
            if job is not None:
                wait([job])
                self._block_jobs[slot] = None
            view = memoryview(block)
            filled = 0
            if carry is not None:
                filled = len(carry)
                view[:filled] = carry
                carry.release()
                carry = None
            filled, eof = _fill(reader, view, filled)
            if filled == 0:
                break
            chunks = list(self.chunker.cut_buf(view[:filled]))
            if not eof:
                last = chunks.pop()
                carry = view[last.offset:filled]
            if not chunks:
                continue
            saver.raise_if_failed()
            job = self._block_jobs[slot] = saver.save_chunks_async([c.data for c in chunks])
            for i, chunk in enumerate(chunks):
                content.add(job, i, chunk.length)
            self._add_done(chunks[-1].offset + chunks[-1].length - chunks[0].offset)
            self._report(label)
        content.close()

    def _open(self, path: str) -> int | None:
        """A file opened for reading, without following a link (and without touching its atime where the
        owner allows it); None when it cannot be opened (recorded in errors)."""
        try:
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOATIME", 0))
        except PermissionError:
            try:
                return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError as exc:
                self.errors.append(f"{path}: cannot read: {exc.strerror}")
        except OSError as exc:
            self.errors.append(f"{path}: cannot read: {exc.strerror}")
        return None

    def _read_file(self, path: str, st: os.stat_result) -> _FileContent | _Content | None:
        """A file is read, cut and stored by a worker: small ones (up to SMALL_FILE at their stat) several
        to a job (see _small_job), a larger one alone, opened here first (see _file_job); a file above
        HUGE_FILE is read and cut here and its blocks go to the workers (one worker would take it alone)."""
        if st.st_size <= SMALL_FILE:
            content = _FileContent()
            self._small.append((path, st.st_size, content))
            self._small_bytes += st.st_size
            if self._small_bytes >= SMALL_BATCH_BYTES or len(self._small) >= SMALL_BATCH_FILES:
                self._flush_small()
            return content
        fd = self._open(path)
        if fd is None:
            return None
        if st.st_size > HUGE_FILE:  # read and cut here, its blocks stored by the workers side by side
            huge = _Content(self)
            try:
                with open(fd, "rb", buffering=0, closefd=True) as fh:
                    self._chunk_into(huge, fh, path)
            except OSError as exc:
                self.errors.append(f"{path}: read failed: {exc.strerror}")
                return None
            return huge
        saver = self.saver
        saver.raise_if_failed()
        saver.inflight.acquire()
        try:
            return _FileContent(saver.workers.submit(self._file_job, fd, path))
        except BaseException:
            saver.inflight.release()
            os.close(fd)
            raise

    def _flush_small(self) -> None:
        """Send the small files waiting to a worker (one job), keeping at most SMALL_BATCHES in flight."""
        if not self._small:
            return
        if len(self._small_jobs) >= SMALL_BATCHES:
            wait([self._small_jobs.pop(0)])
        saver = self.saver
        saver.raise_if_failed()
        files, self._small, self._small_bytes = self._small, [], 0
        saver.inflight.acquire()
        try:
            job = saver.workers.submit(self._small_job, [(path, size) for path, size, _ in files])
        except BaseException:
            saver.inflight.release()
            raise
        self._small_jobs.append(job)
        for i, (_, _, content) in enumerate(files):
            content.job, content.index = job, i

    def _small_job(self, files: list[tuple[str, int]]) -> list[dict[str, Any] | None]:
        """In a chunk worker: read each small file whole and cut it, store all their chunks at once (a job
        per file cost more than the file); each file's content, or None for one that could not be read."""
        saver = self.saver
        try:
            out: list[dict[str, Any] | None] = []
            chunks: list[bytes | memoryview] = []
            mine: list[tuple[int, int, int]] = []  # (place in out, first chunk, chunk count)
            for path, size in files:
                read = self._read_small(path, size)
                if isinstance(read, bytes):
                    n = len(read)
                    parts = [c.data for c in self.chunker.cut_buf(read)] if n > self._min_chunk else \
                        [read] if n else []
                    mine.append((len(out), len(chunks), len(parts)))
                    chunks.extend(parts)
                    out.append({"size": n})
                    self._add_done(n)
                else:
                    out.append(read)
            ids = saver.save_blobs(BlobType.DATA, chunks) if chunks else []
            for place, first, count in mine:
                cast(dict[str, Any], out[place])["chunks"] = [i.hex() for i in ids[first:first + count]]
            return out
        except BaseException as exc:
            saver.fail(exc)
            raise
        finally:
            saver.inflight.release()

    def _read_small(self, path: str, size: int) -> bytes | dict[str, Any] | None:
        """A small file's bytes; its stored content if it has grown past SMALL_FILE since its stat (read as a
        large file); None if it could not be read (recorded in errors)."""
        fd = self._open(path)
        if fd is None:
            return None
        try:
            parts: list[bytes] = []
            got = 0
            # its size at the stat and a byte to see it grew: a read allocates what it asks for, and asking
            # SMALL_FILE for each of 67k small files left the workers' heaps ~25 MiB larger (8 GiB volume)
            want = size + 1
            while True:
                part = os.read(fd, want)
                if not part:
                    return parts[0] if len(parts) == 1 else b"".join(parts)
                parts.append(part)
                got += len(part)
                want = SMALL_FILE + 1 - got
                if got > SMALL_FILE:
                    os.lseek(fd, 0, os.SEEK_SET)
                    with open(fd, "rb", buffering=0, closefd=False) as fh:
                        return self._store_file(fh)  # counts its bytes as it reads them
        except OSError as exc:
            self.errors.append(f"{path}: read failed: {exc.strerror}")
            return None
        finally:
            os.close(fd)

    def _file_job(self, fd: int, path: str) -> dict[str, Any] | None:
        """In a chunk worker: read the file, cut it and store its chunks (and chunk lists); its content as a
        tree names it, or None when it could not be read (the error is recorded; the tree drops it)."""
        try:
            with open(fd, "rb", buffering=0, closefd=True) as fh:
                return self._store_file(fh)
        except OSError as exc:
            self.errors.append(f"{path}: read failed: {exc.strerror}")
            return None
        except BaseException as exc:
            self.saver.fail(exc)
            raise
        finally:
            self.saver.inflight.release()

    def _store_file(self, reader: Any) -> dict[str, Any]:
        """Read ``reader`` block by block into this worker's block, cut each and store its chunks at once
        (the chunk touching the block's end is carried to the block's front, as _chunk_blocks does)."""
        saver = self.saver
        block: bytearray | None = getattr(self._local, "block", None)
        if block is None:
            block = self._local.block = bytearray(self._worker_block_size)
        view = memoryview(block)
        ids: list[bytes] = []
        lists: list[bytes] = []
        size = filled = 0
        eof = False
        try:
            while not eof:
                filled, eof = _fill(reader, view, filled)
                if filled == 0:
                    break
                chunks = list(self.chunker.cut_buf(view[:filled]))
                end = filled
                if not eof:
                    end = chunks.pop().offset
                saver.raise_if_failed()
                if chunks:
                    ids.extend(saver.save_blobs(BlobType.DATA, [c.data for c in chunks]))
                del chunks
                size += end
                self._add_done(end)
                while len(ids) >= CHUNKS_PER_LIST:
                    lists.append(saver.save_blob(BlobType.CHUNK_LIST, b"".join(ids[:CHUNKS_PER_LIST])))
                    del ids[:CHUNKS_PER_LIST]
                tail = bytes(view[end:filled])
                view[:len(tail)] = tail
                filled = len(tail)
        finally:
            view.release()
        if lists or len(ids) > INLINE_CHUNKS:
            if ids:
                lists.append(saver.save_blob(BlobType.CHUNK_LIST, b"".join(ids)))
            return {"size": size, "lists": [i.hex() for i in lists]}
        return {"size": size, "chunks": [i.hex() for i in ids]}

    def _walk(self, directory: str, parent_tree: str | None) -> Future[bytes]:
        parent_entries: dict[str, dict[str, Any]] = {}
        previous: tuple[bytes, bytes] | None = None
        if parent_tree is not None:
            try:
                plain, listing = self.repo.load_tree_blob(parent_tree)
                parent_entries = {e["name"]: e for e in listing}
                previous = (bytes.fromhex(parent_tree), plain)
            except RepositoryError as exc:
                self.errors.append(f"{directory}: parent tree unreadable, reading everything: {exc}")
        entries: list[dict[str, Any]] = []
        try:
            with os.scandir(directory) as it:
                dirents = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            self.errors.append(f"{directory}: cannot list: {exc.strerror}")
            dirents = []
        for dirent in dirents:
            path = dirent.path
            try:
                st = dirent.stat(follow_symlinks=False)
            except OSError as exc:
                self.errors.append(f"{path}: cannot stat: {exc.strerror}")
                continue
            node: dict[str, Any] = {"name": dirent.name, **_stat_fields(st)}
            old = parent_entries.get(dirent.name)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                node["type"] = "dir"
                self.stats.dirs += 1
                node["_subtree"] = self._walk(path, old.get("subtree") if old and old.get("type") == "dir" else None)
            elif stat.S_ISREG(mode):
                node.update(type="file", size=st.st_size, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
                            dev=st.st_dev, nlink=st.st_nlink)
                self.stats.files += 1
                self.stats.bytes += st.st_size
                link_key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    node["hardlink"] = f"{st.st_dev}:{st.st_ino}"
                if st.st_nlink > 1 and link_key in self._hardlinks:
                    node["_content"] = self._hardlinks[link_key]
                elif (old is not None and old.get("type") == "file" and old.get("size") == st.st_size
                      and old.get("mtime_ns") == st.st_mtime_ns and old.get("ctime_ns") == st.st_ctime_ns
                      and old.get("inode") == st.st_ino and "content" in old):
                    # ctime cannot be set back by a user (utime changes it), so an in-place
                    # rewrite with the mtime restored is still seen as changed
                    node["content"] = old["content"]
                    self.stats.unchanged_files += 1
                    self._add_done(st.st_size)
                    if self.retention is not None:
                        self._note_reused(old["content"])
                else:
                    content = self._read_file(path, st)
                    if content is None:
                        self.stats.files -= 1
                        self.stats.bytes -= st.st_size
                        continue
                    if isinstance(content, _Content):
                        node["size"] = content.size  # the bytes read
                    node["_content"] = content
                    if st.st_nlink > 1:
                        self._hardlinks[link_key] = content
                self._report(path)  # the bytes the workers have read so far (throttled)
            elif stat.S_ISLNK(mode):
                node["type"] = "symlink"
                try:
                    node["target"] = os.readlink(path)
                except OSError as exc:
                    self.errors.append(f"{path}: cannot read link: {exc.strerror}")
                    continue
            elif stat.S_ISFIFO(mode):
                node["type"] = "fifo"
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                node["type"] = "chardev" if stat.S_ISCHR(mode) else "blockdev"
                node["rdev"] = st.st_rdev
            else:
                continue  # sockets and unknown types are not restorable
            entries.append(node)
        self._flush_small()  # the tree job resolves this directory's small files
        while not self._tree_slots.acquire(timeout=1.0):
            self.saver.raise_if_failed()
        try:
            return self.trees.submit(self._tree_job, entries, previous)
        except BaseException:
            self._tree_slots.release()
            raise

    def _tree_job(self, entries: list[dict[str, Any]], previous: tuple[bytes, bytes] | None) -> bytes:
        try:
            return self._save_tree(entries, previous)
        finally:
            self._tree_slots.release()

    def _note_reused(self, content: dict[str, Any]) -> None:
        index = self.saver.index
        own = self.saver.own_packs
        for blob_id in self.repo.content_chunks(content):
            pack = index.pack_of(blob_id)
            if pack is not None and pack not in own:
                self.saver.reused_packs.add(pack)
        for list_id in content.get("lists", ()):
            pack = index.pack_of(bytes.fromhex(list_id))
            if pack is not None and pack not in own:
                self.saver.reused_packs.add(pack)

    # -- the whole backup ------------------------------------------------------------------

    def run(self, source: Path | None, streams: dict[str, StreamSource], *, parent: str | None,
            tags: list[str], metadata: dict[str, str]) -> BackupResult:
        repo = self.repo
        parent_doc: dict[str, Any] | None = None
        lock = repo.lock("backup")
        try:
            if parent is not None:
                parent_doc = repo.load_snapshot(parent)
            self.saver = BlobSaver(repo, retention=self.retention, stats=self.stats)
            try:
                root: Future[bytes] | None = None
                root_meta: dict[str, Any] | None = None
                if source is not None:
                    self.incremental = parent_doc is not None and parent_doc.get("tree") is not None
                    root_meta = _stat_fields(os.stat(source))
                    root = self._walk(str(source), parent_doc.get("tree") if parent_doc else None)
                stream_contents: dict[str, _Content] = {}
                for name, data in streams.items():
                    content = _Content(self)
                    reader = data if hasattr(data, "read") else _IterReader(data)
                    self._chunk_into(content, cast(IO[bytes], reader), f"stream {name}")
                    stream_contents[name] = content
                    self.stats.bytes += content.size
                self._flush_small()
                tree_id = root.result().hex() if root is not None else None
                self.stats.files -= len(self._dropped)
                self.stats.bytes -= sum(self._dropped)
                self._report("", last=True)  # the workers' files are read once the tree is stored
                streams_doc = {n: self.trees.submit(c.resolve).result() for n, c in stream_contents.items()}
                self.saver.finish()
            except BaseException:
                self.trees.shutdown(wait=False, cancel_futures=True)
                self.saver.abort()
                raise
            self.trees.shutdown(wait=True)
            if not lock.valid():
                raise RepositoryError("the backup's lock expired before the snapshot was written "
                                      "(a prune may have run); the data written is left for the next backup")
            sid = secrets.token_bytes(32).hex()
            doc = {"version": 1, "id": sid, "time": datetime.now(UTC).isoformat(),
                   "hostname": socket.gethostname(), "tags": tags, "metadata": metadata,
                   "parent": parent_doc["id"] if parent_doc else None,
                   "source": str(source) if source is not None else None,
                   "root": root_meta, "tree": tree_id, "streams": streams_doc,
                   "stats": self.stats.as_dict()}
            if self.retention is not None:
                self._extend_retention()
            repo.write_snapshot(doc, retention=self.retention)
        except StorageError as exc:
            raise repo.storage_error(exc) from exc
        finally:
            lock.release()
        return BackupResult(sid, self.stats, self.errors)

    def _extend_retention(self) -> None:
        assert self.retention is not None
        index = self.saver.index
        keys = {pack_key(p) for p in self.saver.reused_packs}
        for pack_id in self.saver.reused_packs:
            keys.update(index.sources.get(pack_id, ()))
        keys.add(CONFIG_KEY)
        keys.update(info.key for info in self.repo.storage.list(KEYS_PREFIX))
        self.repo.extend_retention(sorted(keys), self.retention)
