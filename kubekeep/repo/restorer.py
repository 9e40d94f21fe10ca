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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RepositoryError, RestoreError
from .repository import ProgressFn, Repository
from .storage import StorageError

WINDOW_PER_WORKER = 8


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
                  ) -> Iterator[tuple[int, Any, Any, Future[bytes] | None]]:
        workers = self.repo.workers
        with ThreadPoolExecutor(workers, thread_name_prefix="kubekeep-restore") as pool:
            window: deque[tuple[int, Any, Any, Future[bytes] | None]] = deque()
            pending = 0
            limit = WINDOW_PER_WORKER * workers
            try:
                for kind, a, b in events:
                    fut = pool.submit(self.repo.read_blob, a) if kind == _CHUNK else None
                    window.append((kind, a, b, fut))
                    if fut is not None:
                        pending += 1
                    while pending > limit:
                        item = window.popleft()
                        if item[3] is not None:
                            pending -= 1
                        yield item
                while window:
                    yield window.popleft()
            finally:
                for item in window:
                    if item[3] is not None:
                        item[3].cancel()

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
