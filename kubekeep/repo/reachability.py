"""Reachability: which blobs, packs and objects does a set of snapshots need?

The public building block of everything that decides what to keep, copy or lock:
prune (what may go), check (what must be there), the Object Lock of a restore
point (what to lock), and later DR copy (what to copy), retention and lock renewal.
Documented in docs/repository-api.md.

``walk_snapshot`` visits every blob a snapshot references: the tree blobs, the
chunk lists and the data chunks of its files and streams. ``reachable`` runs it
over several snapshots (each tree read once) and answers with a ``Reachability``;
``object_keys`` turns that into the storage keys of every object a restore of
those snapshots reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .crypto import BlobType
from .errors import RepositoryError
from .format import CONFIG_KEY, KEYS_PREFIX, SNAPSHOTS_PREFIX, pack_key
from .protocols import BlobReader, IndexView, SnapshotReader

#: ``visit(blob_id, blob_type)``, called for every blob reference met by the walk
Visit = Callable[[bytes, int], None]


def walk_snapshot(repo: BlobReader, doc: dict[str, Any], index: IndexView, visit: Visit,
                  seen_trees: set[bytes], errors: list[str]) -> None:
    """Call ``visit(blob_id, type)`` for every blob the snapshot manifest ``doc`` references.

    Trees and chunk lists are read through ``index``. A tree already in ``seen_trees``
    is visited but not read again (pass one set across snapshots: unchanged
    subtrees are shared). A tree or chunk list that cannot be read adds a line to
    ``errors`` and the walk goes on with the rest.
    """
    sid = doc["id"][:12]

    def content(c: dict[str, Any], where: str) -> None:
        for hexid in c.get("chunks", ()):
            visit(bytes.fromhex(hexid), BlobType.DATA)
        for list_hex in c.get("lists", ()):
            list_id = bytes.fromhex(list_hex)
            visit(list_id, BlobType.CHUNK_LIST)
            try:
                raw = repo.read_blob(list_id, index=index)
            except RepositoryError as exc:
                errors.append(f"snapshot {sid} {where}: {exc}")
                continue
            for pos in range(0, len(raw), 32):
                visit(raw[pos:pos + 32], BlobType.DATA)

    stack = [(doc["tree"], "/")] if doc.get("tree") else []
    while stack:
        tree_hex, where = stack.pop()
        tree_id = bytes.fromhex(tree_hex)
        visit(tree_id, BlobType.TREE)
        if tree_id in seen_trees:
            continue
        seen_trees.add(tree_id)
        try:
            entries = json.loads(repo.read_blob(tree_id, index=index))["entries"]
        except (RepositoryError, ValueError, KeyError) as exc:
            errors.append(f"snapshot {sid} tree {where} ({tree_hex[:12]}): {exc}")
            continue
        for entry in entries:
            name = where.rstrip("/") + "/" + entry["name"]
            if entry.get("type") == "dir":
                stack.append((entry["subtree"], name))
            elif entry.get("type") == "file":
                content(entry["content"], name)
    for name, c in (doc.get("streams") or {}).items():
        content(c, f"stream {name}")


@dataclass
class Reachability:
    """What a set of snapshots needs."""

    #: every blob the snapshots reference: data chunks, chunk lists, trees
    blobs: set[bytes] = field(default_factory=set)
    #: the packs holding those blobs (by the index the walk used)
    packs: set[bytes] = field(default_factory=set)
    #: referenced blobs that no index names, and how many of them each snapshot referenced first
    missing: set[bytes] = field(default_factory=set)
    missing_per_snapshot: dict[str, int] = field(default_factory=dict)
    #: trees and chunk lists that could not be read, one line each (what they hold is not in ``blobs``)
    read_errors: list[str] = field(default_factory=list)
    #: full ids of the snapshots whose manifests were read
    snapshots: list[str] = field(default_factory=list)
    #: snapshots whose manifest could not be read (not found, damaged, tampered), by the id given
    unreadable: dict[str, RepositoryError] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Problems below the manifests, one line each: referenced blobs no index names (counted per
        snapshot), trees and chunk lists that cannot be read."""
        return [f"snapshot {sid[:12]}: {n} referenced blob(s) are not in the index"
                for sid, n in self.missing_per_snapshot.items()] + self.read_errors

    @property
    def ok(self) -> bool:
        """True when every snapshot was read and everything it references is indexed and readable."""
        return not self.missing and not self.read_errors and not self.unreadable

    def pack_keys(self) -> set[str]:
        """The storage keys of ``packs``."""
        return {pack_key(p) for p in self.packs}


def reachable(repo: SnapshotReader, snapshot_ids: Iterable[str], *, index: IndexView | None = None,
              on_pack: Callable[[bytes], None] | None = None) -> Reachability:
    """Walk the snapshots (full ids, unique prefixes or 'latest') and say what they need.

    ``index`` is where blobs are looked up and trees read from; by default the
    index is reloaded from storage first. Manifests are read from storage (never
    from the local cache). Nothing is raised for a damaged repository: problems
    are in ``errors`` and ``unreadable``; a storage failure raises StorageError.
    ``on_pack`` is called with each needed pack as the walk first meets it (a
    DR copy moves packs while the walk goes on).
    """
    view: IndexView = index if index is not None else repo.load_index(reload=True)
    result = Reachability()
    seen_trees: set[bytes] = set()
    missing_here: set[bytes] = set()

    def visit(blob_id: bytes, _blob_type: int) -> None:
        if blob_id in result.blobs:
            return
        result.blobs.add(blob_id)
        pack = view.pack_of(blob_id)
        if pack is None:
            missing_here.add(blob_id)
        elif pack not in result.packs:
            result.packs.add(pack)
            if on_pack is not None:
                on_pack(pack)

    for given in snapshot_ids:
        try:
            doc = repo.load_snapshot(given)
        except RepositoryError as exc:
            result.unreadable[given] = exc
            continue
        result.snapshots.append(doc["id"])
        walk_snapshot(repo, doc, view, visit, seen_trees, result.read_errors)
        if missing_here:
            result.missing_per_snapshot[doc["id"]] = len(missing_here)
            result.missing |= missing_here
            missing_here.clear()
    return result


def object_keys(repo: SnapshotReader, snapshot_ids: Iterable[str]) -> tuple[set[str], list[str]]:
    """Storage keys of every object a restore of the snapshots reads, and the problems met.

    The keys: the snapshot manifests, the packs holding every blob they reference,
    the index objects naming those packs, the config and every key slot (without
    them nothing can be decrypted). Locking these keys protects the snapshots.
    """
    index = repo.load_index(reload=True)
    reach = reachable(repo, snapshot_ids, index=index)
    keys: set[str] = {CONFIG_KEY, *(info.key for info in repo.storage.list(KEYS_PREFIX))}
    keys.update(SNAPSHOTS_PREFIX + sid for sid in reach.snapshots)
    keys.update(reach.pack_keys())
    for pack_id in reach.packs:
        keys.update(index.sources.get(pack_id, ()))
    errors = [f"snapshot {sid}: {exc}" for sid, exc in reach.unreadable.items()] + reach.errors
    return keys, errors
