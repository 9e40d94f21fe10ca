"""Independent mode: blobs re-encrypted under the destination's own master key, deduplicated there.

Blob ids are keyed hashes, so the destination names every blob differently:
data chunks are read from the source (authenticated), stored through the
destination's BlobSaver (new id, own packs, dedup against what is there; the
compressed payload is sealed again as it is, not compressed a second time), and
the chunk lists and trees that name them are rewritten bottom-up; snapshot
manifests keep their ids and point at the new trees.

Incremental copies: the previous copy of the same app is walked side by side at
both sites (trees and chunk lists only, same shape) to learn which source blob is
which destination blob, so unchanged data is neither read nor written again.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kubekeep.repo.archiver import BackupStats, BlobSaver
from kubekeep.repo.crypto import BlobType
from kubekeep.repo.errors import MissingObjectError, RepositoryError
from kubekeep.repo.format import BlobEntry
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention

#: source data chunks taken at once: grouped by source pack, each group read with one ranged read per run
BATCH = 64
#: batches in flight (the next is read while the oldest is handed on)
BATCHES_IN_FLIGHT = 2
#: a run of one pack read at once: blobs closer than GAP, at most RUN_BYTES
GAP = 256 * 1024
RUN_BYTES = 4 * 2**20


def _runs(entries: list[BlobEntry]) -> Iterator[list[BlobEntry]]:
    """The entries of one pack by offset, cut where the gap exceeds GAP or a run would exceed RUN_BYTES."""
    run: list[BlobEntry] = []
    for e in sorted(entries, key=lambda e: e.offset):
        if run and (e.offset - (run[-1].offset + run[-1].length) > GAP
                    or e.offset + e.length - run[0].offset > RUN_BYTES):
            yield run
            run = []
        run.append(e)
    if run:
        yield run


class Translation:
    """Source blob id -> destination blob id, for blobs known to be at the destination."""

    def __init__(self) -> None:
        self.ids: dict[bytes, bytes] = {}

    def learn(self, src: Repository, dst: Repository, snapshot_id: str) -> None:
        """Pair a snapshot present at both sites (same id) by walking both manifests side by side."""
        try:
            a, b = src.load_snapshot(snapshot_id), dst.load_snapshot(snapshot_id)
        except RepositoryError:
            return  # pruned at the source since: nothing to learn from it
        if a.get("tree") and b.get("tree"):
            self._pair_tree(src, dst, bytes.fromhex(a["tree"]), bytes.fromhex(b["tree"]))
        for name, content in (a.get("streams") or {}).items():
            other = (b.get("streams") or {}).get(name)
            if other is not None:
                self._pair_content(src, dst, content, other)

    def _pair_tree(self, src: Repository, dst: Repository, a: bytes, b: bytes) -> None:
        if a in self.ids:
            return
        ea, eb = src.load_tree(a), dst.load_tree(b)
        if len(ea) != len(eb):
            return
        for x, y in zip(ea, eb, strict=True):
            if x.get("name") != y.get("name") or x.get("type") != y.get("type"):
                return
            if x.get("type") == "dir":
                self._pair_tree(src, dst, bytes.fromhex(x["subtree"]), bytes.fromhex(y["subtree"]))
            elif x.get("type") == "file":
                self._pair_content(src, dst, x["content"], y["content"])
        self.ids[a] = b

    def _pair_content(self, src: Repository, dst: Repository, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        if a.get("size") != b.get("size"):
            return
        for la, lb in zip(a.get("lists", ()), b.get("lists", ()), strict=False):
            self.ids[bytes.fromhex(la)] = bytes.fromhex(lb)
        for x, y in zip(src.content_chunks(a), dst.content_chunks(b), strict=False):
            self.ids[x] = y


class Rewriter:
    """Rewrites the snapshots of one restore point into the destination, under a BlobSaver."""

    def __init__(self, src: Repository, dst: Repository, translation: Translation, *,
                 retention: Retention | None, progress: Callable[[int], None] | None = None) -> None:
        self.src = src
        self.dst = dst
        self.ids = translation.ids
        self.stats = BackupStats()
        # one pack filled and two uploaded at a time: the copy has a single reader, and memory stays at
        # four packs (the backup's saver keeps one per worker); a second upload in flight keeps the
        # filler going while an S3 PUT waits on the server, and a full pack may wait for a slot meanwhile
        self.saver = BlobSaver(dst, retention=retention, stats=self.stats, fill_buffers=1, upload_slots=2,
                               max_buffers=4)
        self.pool = ThreadPoolExecutor(max(2, dst.workers), thread_name_prefix="kubekeep-drcopy")
        self.progress = progress
        self.blobs_read = 0
        #: source ids whose destination blobs an earlier copy wrote (the translation learned them)
        self.learned = frozenset(self.ids)
        #: destination ids of every blob the rewritten snapshots name directly
        self.named: set[bytes] = set()
        #: learned trees and chunk lists reused whole: what they name was not rewritten (see reused_below)
        self.reused_trees: set[bytes] = set()
        self.reused_lists: set[bytes] = set()

    def close(self, ok: bool) -> None:
        self.pool.shutdown(wait=True, cancel_futures=not ok)
        if ok:
            self.saver.finish()
        else:
            self.saver.abort()

    def _copy_run(self, pack_id: bytes, entries: list[BlobEntry]) -> dict[bytes, bytes]:
        """Copy blobs of one source pack read with one ranged read; source id -> destination id."""
        # authenticated (decrypted, decompressed, checked against its id): a damaged source pack fails here,
        # naming it; the stored payload is re-sealed as it is (no second compression)
        out: dict[bytes, bytes] = {}
        for entry, read in zip(entries, self.src.read_pack_payloads(pack_id, entries), strict=True):
            if isinstance(read, RepositoryError):
                raise read
            plain, flag, payload = read
            out[entry.blob_id] = self.saver.save_blob(BlobType.DATA, plain, packed=(flag, payload))
            if self.progress is not None:
                self.progress(len(plain))
        return out

    def _data(self, ids: Iterator[bytes]) -> Iterator[bytes]:
        """Destination ids of source data chunks, in order. Unknown chunks are copied BATCH at a time, grouped
        by source pack (one ranged read per run of a pack, not one per blob), BATCHES_IN_FLIGHT batches at once."""
        inflight: deque[tuple[list[bytes], list[Future[dict[bytes, bytes]]]]] = deque()
        queued: set[bytes] = set()
        batch: list[bytes] = []
        for src_id in ids:
            batch.append(src_id)
            if len(batch) >= BATCH:
                inflight.append((batch, self._start(batch, queued)))
                batch = []
                while len(inflight) > BATCHES_IN_FLIGHT:
                    yield from self._finish(*inflight.popleft(), queued)
        if batch:
            inflight.append((batch, self._start(batch, queued)))
        while inflight:
            yield from self._finish(*inflight.popleft(), queued)

    def _start(self, batch: list[bytes], queued: set[bytes]) -> list[Future[dict[bytes, bytes]]]:
        wanted = [i for i in dict.fromkeys(batch) if i not in self.ids and i not in queued]
        queued.update(wanted)
        by_pack: dict[bytes, list[BlobEntry]] = {}
        index = self.src.index
        for src_id in wanted:
            loc = index.lookup(src_id)
            if loc is None:
                raise MissingObjectError(f"blob {src_id.hex()} is not in the source's index")
            by_pack.setdefault(loc.pack_id, []).append(loc.entry)
        self.blobs_read += len(wanted)
        return [self.pool.submit(self._copy_run, pack_id, run)
                for pack_id, entries in by_pack.items() for run in _runs(entries)]

    def _finish(self, batch: list[bytes], futures: list[Future[dict[bytes, bytes]]], queued: set[bytes]
                ) -> Iterator[bytes]:
        for fut in futures:
            for src_id, new_id in fut.result().items():
                self.ids[src_id] = new_id
                queued.discard(src_id)
        named = self.named
        for src_id in batch:
            new_id = self.ids[src_id]
            named.add(new_id)
            yield new_id

    def content(self, c: Mapping[str, Any], mapped: Iterator[bytes] | None = None) -> dict[str, Any]:
        """A file's or stream's content as the destination names it; ``mapped``: the destination ids of its
        ``chunks``, in order, when the caller copied them already (a directory's files together)."""
        out = {k: v for k, v in c.items() if k not in ("chunks", "lists")}
        if "chunks" in c:
            if mapped is not None:
                out["chunks"] = [next(mapped).hex() for _ in c["chunks"]]
            else:
                out["chunks"] = [i.hex() for i in self._data(bytes.fromhex(h) for h in c["chunks"])]
            return out
        lists = []
        for list_hex in c.get("lists", ()):
            list_id = bytes.fromhex(list_hex)
            known = self.ids.get(list_id)
            if known is None:
                raw = self.src.read_blob(list_id)
                new = b"".join(self._data(raw[p:p + 32] for p in range(0, len(raw), 32)))
                known = self.saver.save_blob(BlobType.CHUNK_LIST, new)
                self.ids[list_id] = known
            elif list_id in self.learned:
                self.reused_lists.add(known)
            self.named.add(known)
            lists.append(known.hex())
        out["lists"] = lists
        return out

    def tree(self, tree_id: bytes) -> bytes:
        known = self.ids.get(tree_id)
        if known is not None:
            if tree_id in self.learned:
                self.reused_trees.add(known)
            self.named.add(known)
            return known
        out = []
        entries = self.src.load_tree(tree_id)
        # the chunks of all the directory's small files in one stream, so that batches (and the reads in
        # flight) span files: one file's chunk or two at a time left the copy waiting on every read
        flat = [bytes.fromhex(h) for e in entries if e.get("type") == "file"
                for h in (e.get("content") or {}).get("chunks", ())]
        mapped = iter(list(self._data(iter(flat))))  # consumed whole before a subtree starts its own
        for entry in entries:
            item = dict(entry)
            if item.get("type") == "dir":
                item["subtree"] = self.tree(bytes.fromhex(item["subtree"])).hex()
            elif item.get("type") == "file":
                item["content"] = self.content(item["content"], mapped)
            out.append(item)
        doc = {"version": 1, "entries": out}
        new_id = self.saver.save_blob(BlobType.TREE, json.dumps(doc, separators=(",", ":")).encode())
        self.ids[tree_id] = new_id
        self.named.add(new_id)
        return new_id

    def snapshot(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest ``doc`` as the destination names it (same id; its blobs written through the saver)."""
        out = dict(doc)
        if doc.get("tree"):
            out["tree"] = self.tree(bytes.fromhex(doc["tree"])).hex()
        out["streams"] = {name: self.content(c) for name, c in (doc.get("streams") or {}).items()}
        return out
