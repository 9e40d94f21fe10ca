"""Signals of one volume snapshot against the previous snapshot of the same PVC, read from the repository.

Computed after the snapshot is written, from what the repository already holds:

- the tree diff (kubekeep.signals.treediff) gives files added, changed and
  deleted, extension churn and identical new small files; identical subtrees
  are skipped, so the cost follows the change;
- the index gives every chunk's plaintext length and stored length, so the
  compressibility of new content is known without reading any data: a chunk
  stored raw (zstd saved less than 3 %, the repository's own rule) is
  high-entropy data;
- the snapshot's stats give the new unique bytes the backup added.

Definitions (docs/signals.md):

- *new content* of a file: its chunks that the previous version of the same path
  did not have (every chunk of an added file); ``bytes_changed`` is the plaintext
  size of the new content of changed files, ``new_chunk_bytes`` that of added and
  changed files;
- ``dedup_ratio``: bytes of added and changed files / new unique bytes stored
  for the snapshot: how much of what changed was already in the repository
  (encrypted data never deduplicates, so it drops towards 1);
- an extension is the last dot-separated part of a name, lower-cased, numeric
  rotation suffixes skipped (``app.log.3`` is ``log``); a file *changed its
  extension* when, in one directory, a name was deleted and a name with the same
  stem (``a.txt`` -> ``a.locked``) or with an extension appended
  (``a.txt`` -> ``a.txt.locked``) and a different extension was added;
- a *ransom-note pattern*: one small new file (1 B to 64 KiB) with identical
  bytes added to many directories that existed before.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from kubekeep.repo.crypto import ENVELOPE_OVERHEAD, MIN_SAVING

from .treediff import DirectoryVisit, FileChange, TreeReader, diff_trees

#: the largest file counted as a possible ransom note
RANSOM_NOTE_MAX_BYTES = 64 * 1024
#: chunks this small are always stored raw: they say nothing about entropy
MIN_ENTROPY_CHUNK = 64
#: a changed file is a high-entropy rewrite when its new content is at least this share of its size ...
REWRITTEN = 0.5
#: ... and the incompressible share of that new content is this much above that of the content it replaced
ENTROPY_RISE = 0.5
#: at most this many distinct extensions are tracked per volume (the rest count as "?")
MAX_EXTENSIONS = 4096
#: at most this many new extensions are listed by name
MAX_LISTED_EXTENSIONS = 20
OTHER_EXTENSION = "?"


class BlobLocator(Protocol):
    def sizes(self, blob_id: bytes) -> tuple[int, int] | None:
        """(stored length, plaintext length) of a blob, None if the index does not have it."""
        ...


class SnapshotSource(Protocol):
    """What volume signals read from a repository (kubekeep.repo.Repository satisfies it)."""

    def load_snapshot(self, snapshot_id: str) -> dict[str, Any]: ...

    def read_blob(self, blob_id: bytes, *, recent: bool = False) -> bytes:
        """``recent``: a tree the latest backup of this process changed may come from memory."""
        ...

    @property
    def index(self) -> BlobLocator: ...


@dataclass
class VolumeSignals:
    """What changed in one PVC's data since its previous restore point (counts are of regular files)."""

    namespace: str
    pvc: str
    snapshot_id: str
    #: None: the first snapshot of this PVC (nothing to compare with; not scored)
    previous_snapshot_id: str | None
    files: int = 0
    previous_files: int = 0
    directories: int = 0
    previous_directories: int = 0
    logical_bytes: int = 0
    files_added: int = 0
    files_changed: int = 0
    files_deleted: int = 0
    bytes_added: int = 0
    bytes_changed: int = 0
    #: size of the changed files (their new versions)
    changed_files_bytes: int = 0
    bytes_deleted: int = 0
    new_unique_bytes: int = 0
    new_stored_bytes: int = 0
    new_chunks: int = 0
    new_chunk_bytes: int = 0
    incompressible_chunks: int = 0
    incompressible_bytes: int = 0
    entropy_rise_files: int = 0
    #: added files whose bytes equal a deleted file's (moved or renamed; counted in added and deleted too)
    files_moved: int = 0
    bytes_moved: int = 0
    extensions_changed: int = 0
    new_extensions: list[str] = field(default_factory=list)
    new_extension_files: int = 0
    ransom_note_dirs: int = 0
    ransom_note_example: str | None = None
    dedup_ratio: float | None = None
    dedup_ratio_change: float | None = None
    #: extension -> regular files with it after this snapshot (the state the next point starts from)
    extensions: dict[str, int] = field(default_factory=dict)
    #: wall-clock seconds the computation took
    seconds: float = 0.0

    @property
    def subject(self) -> str:
        return f"{self.namespace}/{self.pvc}"

    @property
    def first(self) -> bool:
        return self.previous_snapshot_id is None

    def _of_previous(self, count: int) -> float:
        return count / self.previous_files if self.previous_files else (1.0 if count else 0.0)

    @property
    def added_ratio(self) -> float:
        return self._of_previous(self.files_added)

    @property
    def changed_ratio(self) -> float:
        return self._of_previous(self.files_changed)

    @property
    def deleted_ratio(self) -> float:
        return self._of_previous(self.files_deleted)

    @property
    def extension_changed_ratio(self) -> float:
        return self._of_previous(self.extensions_changed)

    @property
    def new_extension_ratio(self) -> float:
        return self._of_previous(self.new_extension_files)

    @property
    def entropy_rise_ratio(self) -> float:
        return self._of_previous(self.entropy_rise_files)

    @property
    def high_entropy_share(self) -> float:
        """Share (by bytes) of the new content that did not compress."""
        return self.incompressible_bytes / self.new_chunk_bytes if self.new_chunk_bytes else 0.0

    @property
    def new_bytes_ratio(self) -> float:
        """New unique bytes as a share of the volume's logical bytes (the change rate)."""
        return self.new_unique_bytes / self.logical_bytes if self.logical_bytes else 0.0

    @property
    def ransom_note_ratio(self) -> float:
        """Directories that received the same new small file, as a share of the directories before."""
        return self.ransom_note_dirs / (self.previous_directories + 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> VolumeSignals:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def extension(name: str) -> str:
    """The normalised extension of a file name ("" for none; see the module docstring)."""
    parts = name.lower().split(".")
    parts = parts[1:] if parts[0] else parts[2:]  # ".bashrc" has none, ".env.local" has "local"
    while parts and parts[-1].isdigit():
        parts.pop()  # rotation suffixes: app.log.1
    if not parts:
        return ""
    ext = parts[-1]
    if not ext or len(ext) > 16 or not ext.isalnum():
        return OTHER_EXTENSION
    return ext


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def _incompressible(length: int, raw_length: int) -> bool:
    """A blob of ``length`` stored bytes for ``raw_length`` plaintext bytes was stored raw (zstd saved less than
    the repository's MIN_SAVING)."""
    return length - ENVELOPE_OVERHEAD > raw_length * (1 - MIN_SAVING)


def _as_bytes(ids: set[str] | set[bytes]) -> set[bytes]:
    return {bytes.fromhex(i) if isinstance(i, str) else i for i in ids}


class _Directory:
    """The names added and deleted in one directory, paired up when the directory is complete."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.deleted: list[str] = []

    def changed_extensions(self) -> int:
        if not self.added or not self.deleted:
            return 0
        deleted = set(self.deleted)
        by_stem: dict[str, list[str]] = {}
        for name in self.deleted:
            by_stem.setdefault(_stem(name), []).append(name)
        pairs = 0
        for name in self.added:
            ext = extension(name)
            original = name.rsplit(".", 1)[0] if "." in name else None
            if original is not None and original in deleted and extension(original) != ext:
                deleted.discard(original)
                pairs += 1
                continue
            for candidate in by_stem.get(_stem(name), ()):
                if candidate in deleted and extension(candidate) != ext:
                    deleted.discard(candidate)
                    pairs += 1
                    break
        return pairs


@dataclass
class _NewContent:
    chunks: int = 0
    bytes: int = 0
    incompressible_chunks: int = 0
    incompressible_bytes: int = 0

    def add_to(self, out: VolumeSignals, sign: int) -> None:
        out.new_chunks += sign * self.chunks
        out.new_chunk_bytes += sign * self.bytes
        out.incompressible_chunks += sign * self.incompressible_chunks
        out.incompressible_bytes += sign * self.incompressible_bytes


def _content_digest(node: Mapping[str, Any]) -> bytes:
    content = node.get("content") or {}
    return hashlib.blake2b(repr((content.get("chunks"), content.get("lists"))).encode(), digest_size=16).digest()


class _Accumulator:
    def __init__(self, repo: SnapshotSource, out: VolumeSignals, index: BlobLocator, *, first: bool = False) -> None:
        self.repo = repo
        #: no previous tree: nothing was deleted or moved, and no directory existed (no content digests needed)
        self.first = first
        self.out = out
        self.index = index
        self.added_extensions: dict[str, int] = {}
        self.deleted_extensions: dict[str, int] = {}
        self.directory: _Directory | None = None
        #: identical new small files: content digest -> [directories, an example path]
        self.notes: dict[bytes, list[Any]] = {}
        self.notes_here: set[bytes] = set()
        #: added files by content (new content, size), and deleted contents: equal bytes were moved, not written
        self.added_contents: dict[bytes, list[tuple[_NewContent, int]]] = {}
        self.deleted_contents: dict[bytes, int] = {}

    # -- chunks ---------------------------------------------------------------------------

    def _chunk_ids(self, content: Mapping[str, Any], skip_lists: set[str]) -> set[str] | set[bytes]:
        """A content's chunk ids: hex strings as a tree lists them (converted only when compared with a
        chunk list's), or the 32-byte ids of its chunk lists."""
        if "chunks" in content:
            return set(content["chunks"])
        ids: set[bytes] = set()
        for list_id in content.get("lists", ()):
            if list_id in skip_lists:
                continue  # the same chunk list in both versions: same chunks
            raw = self.repo.read_blob(bytes.fromhex(list_id))
            ids.update(raw[pos:pos + 32] for pos in range(0, len(raw), 32))
        return ids

    def _compared(self, old_content: Mapping[str, Any], new_content: Mapping[str, Any]
                  ) -> tuple[set[bytes], set[bytes]]:
        """(chunks only the new version has, chunks only the old version has), as 32-byte ids."""
        common = set(old_content.get("lists", ())) & set(new_content.get("lists", ()))
        old_ids, new_ids = self._chunk_ids(old_content, common), self._chunk_ids(new_content, common)
        if ("chunks" in old_content or not old_content) and "chunks" in new_content:  # hex on both sides
            return ({bytes.fromhex(i) for i in new_ids - old_ids},  # type: ignore[arg-type]
                    {bytes.fromhex(i) for i in old_ids - new_ids})  # type: ignore[arg-type]
        old_bytes, new_bytes = _as_bytes(old_ids), _as_bytes(new_ids)  # a chunk list on one side
        return new_bytes - old_bytes, old_bytes - new_bytes

    def _content(self, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> _NewContent:
        """Account the new content of a file (chunks the old version lacks) and its compressibility.

        Only new chunks are looked up in the index; the replaced chunks only when the new
        content is a high-entropy rewrite of most of the file (to tell encryption in place
        from a file that was random data before too)."""
        out, sizes = self.out, self.index.sizes
        added = _NewContent()
        only_new, only_old = self._compared((old or {}).get("content") or {}, new.get("content") or {})
        entropic_raw = 0  # new content large enough to judge
        for blob_id in only_new:
            found = sizes(blob_id)
            if found is None:
                continue
            stored, raw = found
            added.chunks += 1
            added.bytes += raw
            if raw >= MIN_ENTROPY_CHUNK:
                entropic_raw += raw
                if _incompressible(stored, raw):
                    added.incompressible_chunks += 1
                    added.incompressible_bytes += raw
        added.add_to(out, 1)
        if old is None:
            return added
        out.bytes_changed += added.bytes
        size = int(new.get("size") or 0)
        new_share = added.incompressible_bytes / entropic_raw if entropic_raw else 0.0
        if size and added.bytes >= REWRITTEN * size and new_share >= ENTROPY_RISE:
            replaced = replaced_hard = 0
            for blob_id in only_old:
                found = sizes(blob_id)
                if found is not None and found[1] >= MIN_ENTROPY_CHUNK:
                    replaced += found[1]
                    replaced_hard += found[1] if _incompressible(*found) else 0
            if new_share - (replaced_hard / replaced if replaced else 0.0) >= ENTROPY_RISE:
                out.entropy_rise_files += 1
        return added

    # -- events ---------------------------------------------------------------------------

    def visit(self, event: DirectoryVisit | FileChange) -> None:
        if isinstance(event, DirectoryVisit):
            self._close_directory()
            self.directory = _Directory()
            self.notes_here = set()
            return
        out = self.out
        old, new = event.old, event.new
        if new is None:
            assert old is not None
            out.files_deleted += 1
            out.bytes_deleted += int(old.get("size") or 0)
            ext = extension(event.name)
            self.deleted_extensions[ext] = self.deleted_extensions.get(ext, 0) + 1
            if old.get("size"):
                digest = _content_digest(old)
                self.deleted_contents[digest] = self.deleted_contents.get(digest, 0) + 1
            if self.directory is not None:
                self.directory.deleted.append(event.name)
            return
        size = int(new.get("size") or 0)
        if old is None:
            out.files_added += 1
            out.bytes_added += size
            ext = extension(event.name)
            self.added_extensions[ext] = self.added_extensions.get(ext, 0) + 1
            if self.directory is not None:
                self.directory.added.append(event.name)
            if self.first:
                if size:
                    self._content(None, new)
                return
            digest = _content_digest(new)
            if event.directory_existed and 0 < size <= RANSOM_NOTE_MAX_BYTES:
                self._note(event, digest)
            if size:
                self.added_contents.setdefault(digest, []).append((self._content(None, new), size))
        else:
            out.files_changed += 1
            out.changed_files_bytes += size
            self._content(old, new)

    def _note(self, event: FileChange, digest: bytes) -> None:
        if digest in self.notes_here:
            return
        self.notes_here.add(digest)
        entry = self.notes.setdefault(digest, [0, event.path])
        entry[0] += 1

    def _close_directory(self) -> None:
        if self.directory is not None:
            self.out.extensions_changed += self.directory.changed_extensions()
            self.directory = None

    def finish(self) -> None:
        self._close_directory()
        for digest, deleted in self.deleted_contents.items():
            for new_content, size in self.added_contents.get(digest, [])[:deleted]:
                new_content.add_to(self.out, -1)  # moved or renamed: its bytes were in the volume already
                self.out.files_moved += 1
                self.out.bytes_moved += size
        if self.notes:
            dirs, example = max(self.notes.values(), key=lambda e: (e[0], e[1]))
            if dirs > 1:
                self.out.ransom_note_dirs = int(dirs)
                self.out.ransom_note_example = str(example)


class _RecentFirst:
    """Reads trees the backup that just ran left in memory (kubekeep.repo.recent) before the repository's."""

    def __init__(self, repo: SnapshotSource) -> None:
        self.repo = repo

    def read_blob(self, blob_id: bytes) -> bytes:
        return self.repo.read_blob(blob_id, recent=True)


def _extension_histogram(repo: TreeReader, tree: str | None) -> dict[str, int]:
    """Every regular file's extension in a tree (a full walk: only when no earlier histogram exists)."""
    counts: dict[str, int] = {}
    for event in diff_trees(repo, None, tree):
        if isinstance(event, FileChange):
            ext = extension(event.name)
            counts[ext] = counts.get(ext, 0) + 1
    return counts


def _capped(counts: dict[str, int]) -> dict[str, int]:
    if len(counts) <= MAX_EXTENSIONS:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:MAX_EXTENSIONS - 1])
    kept[OTHER_EXTENSION] = kept.get(OTHER_EXTENSION, 0) + sum(n for _, n in ranked[MAX_EXTENSIONS - 1:])
    return kept


def volume_signals(repo: SnapshotSource, snapshot_id: str, previous_snapshot_id: str | None, *,
                   namespace: str, pvc: str, previous_extensions: Mapping[str, int] | None = None,
                   previous_dedup_ratio: float | None = None) -> VolumeSignals:
    """The signals of ``snapshot_id`` against ``previous_snapshot_id`` (the PVC's previous restore point).

    ``previous_extensions`` is the previous point's extension histogram
    (``VolumeSignals.extensions``); without it the previous tree is walked once
    to build it. With no previous snapshot every file counts as added and only
    the histogram matters (a first point is not scored).
    """
    started = time.perf_counter()
    reader = _RecentFirst(repo)
    doc = repo.load_snapshot(snapshot_id)
    stats = doc.get("stats") or {}
    out = VolumeSignals(namespace=namespace, pvc=pvc, snapshot_id=snapshot_id,
                        previous_snapshot_id=previous_snapshot_id, files=int(stats.get("files", 0)),
                        directories=int(stats.get("dirs", 0)), logical_bytes=int(stats.get("bytes", 0)),
                        new_unique_bytes=int(stats.get("new_bytes", 0)),
                        new_stored_bytes=int(stats.get("new_stored_bytes", 0)))
    previous_tree: str | None = None
    if previous_snapshot_id is not None:
        previous = repo.load_snapshot(previous_snapshot_id)
        previous_stats = previous.get("stats") or {}
        out.previous_files = int(previous_stats.get("files", 0))
        out.previous_directories = int(previous_stats.get("dirs", 0))
        previous_tree = previous.get("tree")
    before: dict[str, int]
    if previous_snapshot_id is None:
        before = {}
    elif previous_extensions is not None:
        before = dict(previous_extensions)
    else:
        before = _extension_histogram(reader, previous_tree)
    acc = _Accumulator(repo, out, repo.index, first=previous_tree is None)
    for event in diff_trees(reader, previous_tree, doc.get("tree")):
        acc.visit(event)
    acc.finish()
    after = dict(before)
    for ext, n in acc.deleted_extensions.items():
        left = after.get(ext, 0) - n
        if left > 0:
            after[ext] = left
        else:
            after.pop(ext, None)
    new_exts = sorted(ext for ext in acc.added_extensions if before.get(ext, 0) == 0)
    for ext, n in acc.added_extensions.items():
        after[ext] = after.get(ext, 0) + n
    out.extensions = _capped(after)
    if previous_snapshot_id is not None:
        out.new_extensions = new_exts[:MAX_LISTED_EXTENSIONS]
        out.new_extension_files = sum(acc.added_extensions[e] for e in new_exts)
        touched = out.bytes_added - out.bytes_moved + out.changed_files_bytes
        if out.new_unique_bytes > 0 and touched > 0:
            out.dedup_ratio = touched / out.new_unique_bytes
            if previous_dedup_ratio is not None:
                out.dedup_ratio_change = out.dedup_ratio - previous_dedup_ratio
    out.seconds = time.perf_counter() - started
    return out
