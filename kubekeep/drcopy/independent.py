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
from kubekeep.repo.errors import RepositoryError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention

#: source data chunks being read and re-encrypted at once, per file
WINDOW = 32


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
        # one pack filled and one uploaded at a time: the copy has a single reader, and memory stays at
        # about three packs (the backup's saver keeps one per worker)
        self.saver = BlobSaver(dst, retention=retention, stats=self.stats, fill_buffers=1, upload_slots=1)
        self.pool = ThreadPoolExecutor(max(2, dst.workers), thread_name_prefix="kubekeep-drcopy")
        self.progress = progress
        self.blobs_read = 0

    def close(self, ok: bool) -> None:
        self.pool.shutdown(wait=True, cancel_futures=not ok)
        if ok:
            self.saver.finish()
        else:
            self.saver.abort()

    def _copy_blob(self, src_id: bytes, blob_type: int) -> bytes:
        # authenticated (decrypted, decompressed, checked against its id): a damaged source pack fails here,
        # naming it; the stored payload is re-sealed as it is (no second compression)
        plain, flag, payload = self.src.read_blob_payload(src_id)
        self.blobs_read += 1
        new_id = self.saver.save_blob(blob_type, plain, packed=(flag, payload))
        if self.progress is not None:
            self.progress(len(plain))
        return new_id

    def _data(self, ids: Iterator[bytes]) -> Iterator[bytes]:
        """Destination ids of source data chunks, in order; unknown chunks copied WINDOW at a time."""
        pending: deque[tuple[bytes, Future[bytes] | None]] = deque()
        started: dict[bytes, Future[bytes]] = {}
        for src_id in ids:
            known = self.ids.get(src_id)
            if known is None and src_id not in started:
                started[src_id] = self.pool.submit(self._copy_blob, src_id, BlobType.DATA)
            pending.append((src_id, None if known is not None else started[src_id]))
            while len(started) >= WINDOW and pending:
                yield self._resolve(pending.popleft(), started)
        while pending:
            yield self._resolve(pending.popleft(), started)

    def _resolve(self, item: tuple[bytes, Future[bytes] | None], started: dict[bytes, Future[bytes]]) -> bytes:
        src_id, fut = item
        if fut is None:
            return self.ids[src_id]
        new_id = fut.result()
        self.ids[src_id] = new_id
        started.pop(src_id, None)
        return new_id

    def content(self, c: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in c.items() if k not in ("chunks", "lists")}
        if "chunks" in c:
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
            lists.append(known.hex())
        out["lists"] = lists
        return out

    def tree(self, tree_id: bytes) -> bytes:
        known = self.ids.get(tree_id)
        if known is not None:
            return known
        out = []
        for entry in self.src.load_tree(tree_id):
            item = dict(entry)
            if item.get("type") == "dir":
                item["subtree"] = self.tree(bytes.fromhex(item["subtree"])).hex()
            elif item.get("type") == "file":
                item["content"] = self.content(item["content"])
            out.append(item)
        doc = {"version": 1, "entries": out}
        new_id = self.saver.save_blob(BlobType.TREE, json.dumps(doc, separators=(",", ":")).encode())
        self.ids[tree_id] = new_id
        return new_id

    def snapshot(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest ``doc`` as the destination names it (same id; its blobs written through the saver)."""
        out = dict(doc)
        if doc.get("tree"):
            out["tree"] = self.tree(bytes.fromhex(doc["tree"])).hex()
        out["streams"] = {name: self.content(c) for name, c in (doc.get("streams") or {}).items()}
        return out
