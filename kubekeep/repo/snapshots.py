"""Snapshots: listing, loading (with a local cache of manifests), resolving ids, writing, and reading the
trees and chunk lists they reference (docs/repository-format.md, "Snapshot manifest").

Thread-safe: manifests are immutable, and the cache is written to a temporary
name and renamed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .blobs import BlobStore
from .crypto import BlobType
from .errors import IntegrityError, RepositoryError, SnapshotNotFoundError, UnsupportedFormatError
from .format import SNAPSHOTS_PREFIX, id_from_key
from .keys import RepositoryKeys
from .storage import ObjectNotFoundError, Retention, Storage

_FULL_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    time: datetime
    hostname: str
    tags: tuple[str, ...]
    metadata: Mapping[str, str]
    parent: str | None
    source: str | None
    streams: tuple[str, ...]
    stats: Mapping[str, int]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> SnapshotInfo:
        try:
            return cls(id=doc["id"], time=datetime.fromisoformat(doc["time"]),
                       hostname=doc.get("hostname", ""), tags=tuple(doc.get("tags", ())),
                       metadata=dict(doc.get("metadata", {})), parent=doc.get("parent"),
                       source=doc.get("source"), streams=tuple(sorted(doc.get("streams", {}))),
                       stats=dict(doc.get("stats", {})))
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(f"snapshot {doc.get('id')}: malformed manifest ({exc!r})") from None


class SnapshotStore:
    def __init__(self, storage: Storage, keys: RepositoryKeys, blobs: BlobStore) -> None:
        self.storage = storage
        self.keys = keys
        self.blobs = blobs

    # -- manifests -------------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        ids = []
        for info in self.storage.list(SNAPSHOTS_PREFIX):
            ident = id_from_key(info.key, SNAPSHOTS_PREFIX)
            if ident is not None:
                ids.append(ident.hex())
        return ids

    def load(self, snapshot_id: str, *, listed: bool = False) -> dict[str, Any]:
        """A snapshot manifest by full id, unique prefix or 'latest'.

        ``listed=True`` says the id comes from a current listing: the manifest may
        then come from the local cache of (still encrypted, immutable) manifests,
        which saves one GET per snapshot when every snapshot is read. Only a
        manifest that opened and parsed is ever cached.
        """
        sid = snapshot_id if _FULL_ID.fullmatch(snapshot_id) else self.resolve(snapshot_id)
        raw = self._cache_get(sid) if listed else None
        if raw is not None:
            try:
                return self.decode(sid, raw, what=f"cached snapshot {sid}")
            except RepositoryError:
                pass  # a damaged cache entry: read the location's copy instead
        try:
            raw = self.storage.get(SNAPSHOTS_PREFIX + sid)
        except ObjectNotFoundError:
            raise SnapshotNotFoundError(f"snapshot {sid} not found") from None
        doc = self.decode(sid, raw, what=f"snapshot {sid}")
        if listed:
            self._cache_put(sid, raw)
        return doc

    def decode(self, sid: str, raw: bytes, *, what: str) -> dict[str, Any]:
        """The manifest sealed in ``raw``; IntegrityError/UnsupportedFormatError unless it is snapshot ``sid``."""
        try:
            doc = json.loads(self.keys.open_object(BlobType.SNAPSHOT, bytes.fromhex(sid), raw, what=what))
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(f"{what}: not a valid manifest") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise UnsupportedFormatError(f"{what}: unsupported manifest version")
        if doc.get("id") != sid:
            raise IntegrityError(f"{what}: the manifest names another id")
        return doc

    def write(self, doc: dict[str, Any], *, retention: Retention | None = None) -> str:
        sid = str(doc["id"])
        data = self.keys.seal_object(BlobType.SNAPSHOT, bytes.fromhex(sid), json.dumps(doc).encode())
        self.storage.put(SNAPSHOTS_PREFIX + sid, data, retention=retention)
        return sid

    def resolve(self, snapshot_id: str) -> str:
        """Accept a full id, a unique prefix (>= 4 hex digits) or 'latest'."""
        if snapshot_id == "latest":
            infos = self.infos()
            if not infos:
                raise SnapshotNotFoundError("the repository has no snapshots")
            return infos[-1].id
        ids = self.snapshot_ids()
        if snapshot_id in ids:
            return snapshot_id
        if len(snapshot_id) >= 4:
            matches = [i for i in ids if i.startswith(snapshot_id.lower())]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise SnapshotNotFoundError(f"snapshot id prefix {snapshot_id!r} is ambiguous")
        raise SnapshotNotFoundError(f"snapshot {snapshot_id!r} not found")

    def latest_of(self, source: str | os.PathLike[str]) -> str | None:
        """The newest snapshot of the directory ``source`` (paths compared absolute), or None: what 'latest'
        means as the parent of a directory backup. Stream snapshots (restore point records, DR copies) and
        other directories' snapshots are not parents of this one."""
        want = os.path.abspath(source)
        same = [i for i in self.infos() if i.source is not None and os.path.abspath(i.source) == want]
        return same[-1].id if same else None

    def infos(self, *, tags: Iterable[str] = (), problems: list[str] | None = None) -> list[SnapshotInfo]:
        """Every readable snapshot, oldest first; with ``tags``, those carrying all of them.

        A manifest that cannot be read (damaged, tampered, unknown version) is skipped,
        and a line naming it is appended to ``problems`` when given: one bad object
        must not hide every other restore point. ``check`` reports it as an error.
        """
        want = set(tags)
        infos = []
        for sid in self.snapshot_ids():
            try:
                info = SnapshotInfo.of(self.load(sid, listed=True))
            except SnapshotNotFoundError:
                continue  # pruned while listing
            except RepositoryError as exc:
                if problems is not None:
                    problems.append(f"snapshot {sid} is unreadable and was skipped: {exc}")
                continue
            if want <= set(info.tags):
                infos.append(info)
        infos.sort(key=lambda i: (i.time, i.id))
        return infos

    # -- the local cache of manifests ------------------------------------------------------

    def _cache_dir(self) -> Path:
        base = os.environ.get("KUBEKEEP_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubekeep")
        return Path(base) / "snapshots" / self.keys.repository_id.hex()

    def _cache_get(self, sid: str) -> bytes | None:
        try:
            return (self._cache_dir() / sid).read_bytes()
        except OSError:
            return None

    def _cache_put(self, sid: str, raw: bytes) -> None:
        """Best effort: a cache that cannot be written only costs GETs."""
        try:
            directory = self._cache_dir()
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = directory / f".tmp-{sid}-{secrets.token_hex(4)}"
            tmp.write_bytes(raw)
            os.replace(tmp, directory / sid)
        except OSError:
            pass

    # -- what a manifest references --------------------------------------------------------

    def load_tree(self, tree_id: str | bytes) -> list[dict[str, Any]]:
        return self.load_tree_blob(tree_id)[1]

    def load_tree_blob(self, tree_id: str | bytes) -> tuple[bytes, list[dict[str, Any]]]:
        """A tree's plaintext and its entries."""
        ident = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
        raw = self.blobs.read_blob(ident)
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise UnsupportedFormatError(f"tree {ident.hex()}: unsupported tree version")
        entries: list[dict[str, Any]] = doc["entries"]
        return raw, entries

    def content_chunks(self, content: Mapping[str, Any]) -> Iterator[bytes]:
        """The chunk ids of a file's or stream's content, expanding chunk lists lazily."""
        if "chunks" in content:
            for hexid in content["chunks"]:
                yield bytes.fromhex(hexid)
            return
        for list_id in content.get("lists", ()):
            raw = self.blobs.read_blob(bytes.fromhex(list_id))
            for pos in range(0, len(raw), 32):
                yield raw[pos:pos + 32]
