"""Walk two snapshot trees side by side and report every regular file that was added, changed or deleted.

Subtrees with the same id hold the same content (tree ids are keyed hashes of the
tree blob, which names its subtrees and chunks), so they are skipped without being
read: the cost of a diff follows what changed, not the size of the volume. Only
regular files count; symlinks, devices and metadata-only changes (mode, mtime,
a file rewritten with the same bytes) are not changes of content.

The walk keeps one explicit stack (no recursion limit on deep trees) and holds
at most one pair of directory listings per level.

Within a differing directory, entries whose serialized bytes are identical in both
listings are skipped without being parsed: a tree blob is compact JSON
(``{"version":1,"entries":[{"name":...},...]}``, see docs/repository-format.md),
every entry object starts with its ``"name"`` key, and the text ``},{"name":"``
can only occur between two entries (inside a JSON string a quote is always
escaped). Only the entries that differ are decoded, which is most of the saving
on a large directory with a few changed files. A listing in any other layout is
parsed whole, so the shortcut never changes the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class TreeReader(Protocol):
    """What a diff reads from a repository (kubekeep.repo.Repository satisfies it)."""

    def read_blob(self, blob_id: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class DirectoryVisit:
    """A directory whose listing differs between the two trees (or exists in only one)."""

    path: str
    existed: bool
    exists: bool


@dataclass(frozen=True, slots=True)
class FileChange:
    """A regular file added (``old`` is None), deleted (``new`` is None) or changed in content."""

    directory: str
    name: str
    #: the directory existed in the old tree (a file added to an existing directory)
    directory_existed: bool
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.name}" if self.directory else self.name


def _is_dir(node: Mapping[str, Any] | None) -> bool:
    return node is not None and node.get("type") == "dir" and bool(node.get("subtree"))



def _same_content(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    # the archiver reuses a file's content without reading it exactly when these are unchanged (ctime cannot
    # be set back), so equal values mean equal content; otherwise compare the chunk ids
    if (old.get("inode") is not None and old.get("inode") == new.get("inode")
            and old.get("ctime_ns") == new.get("ctime_ns") and old.get("mtime_ns") == new.get("mtime_ns")
            and old.get("size") == new.get("size")):
        return True
    return bool(old.get("content") == new.get("content"))


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _pairs(old: list[dict[str, Any]], new: list[dict[str, Any]]
           ) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Entries of two listings matched by name, in name order (merge join; trees are stored sorted)."""
    if not _sorted(old) or not _sorted(new):
        by_old = {e["name"]: e for e in old}
        by_new = {e["name"]: e for e in new}
        for name in sorted(by_old.keys() | by_new.keys()):
            yield by_old.get(name), by_new.get(name)
        return
    i = j = 0
    while i < len(old) and j < len(new):
        a, b = old[i]["name"], new[j]["name"]
        if a == b:
            yield old[i], new[j]
            i += 1
            j += 1
        elif a < b:
            yield old[i], None
            i += 1
        else:
            yield None, new[j]
            j += 1
    for e in old[i:]:
        yield e, None
    for e in new[j:]:
        yield None, e


_PREFIX = b'{"version":1,"entries":['
_SUFFIX = b"]}"
_ENTRY = b'{"name":"'
_BETWEEN = b'},{"name":"'


def _pieces(raw: bytes) -> list[bytes] | None:
    """Each entry's bytes (without its leading ``{"name":"`` and closing brace); None: another layout."""
    if not (raw.startswith(_PREFIX) and raw.endswith(_SUFFIX)):
        return None
    body = raw[len(_PREFIX):-len(_SUFFIX)]
    if not body:
        return []
    if not (body.startswith(_ENTRY) and body.endswith(b"}")):
        return None
    return body[len(_ENTRY):-1].split(_BETWEEN)


def _parse(raw: bytes, what: str) -> list[dict[str, Any]]:
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("entries"), list):
        raise ValueError(f"tree {what}: unsupported tree format")
    entries: list[dict[str, Any]] = doc["entries"]
    return entries


def _differing(repo: TreeReader, old_id: str | None, new_id: str | None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries of the two listings that are not byte-identical in the other one, parsed."""
    old_raw = repo.read_blob(bytes.fromhex(old_id)) if old_id else _PREFIX + _SUFFIX
    new_raw = repo.read_blob(bytes.fromhex(new_id)) if new_id else _PREFIX + _SUFFIX
    old_pieces, new_pieces = _pieces(old_raw), _pieces(new_raw)
    if not old_pieces or not new_pieces:  # another layout, or a directory on one side only: parse whole
        return _parse(old_raw, str(old_id)), _parse(new_raw, str(new_id))
    old_set, new_set = set(old_pieces), set(new_pieces)
    return (_parse_pieces([p for p in old_pieces if p not in new_set]),
            _parse_pieces([p for p in new_pieces if p not in old_set]))


def _parse_pieces(pieces: list[bytes]) -> list[dict[str, Any]]:
    """The entries ``pieces`` hold, decoded together (one parse, not one per entry)."""
    if not pieces:
        return []
    parsed: list[dict[str, Any]] = json.loads(b"[" + _ENTRY + (b"}," + _ENTRY).join(pieces) + b"}]")
    return parsed


def _sorted(entries: list[dict[str, Any]]) -> bool:
    return all(entries[k]["name"] < entries[k + 1]["name"] for k in range(len(entries) - 1))


def diff_trees(repo: TreeReader, old_tree: str | None, new_tree: str | None
               ) -> Iterator[DirectoryVisit | FileChange]:
    """Every differing directory (before its files) and every added, changed or deleted regular file.

    ``old_tree`` None: everything in ``new_tree`` is added (a first backup);
    ``new_tree`` None: everything in ``old_tree`` is deleted.
    """
    stack: list[tuple[str | None, str | None, str]] = [(old_tree, new_tree, "")]
    while stack:
        old_id, new_id, path = stack.pop()
        if old_id == new_id:
            continue  # identical content: nothing below differs
        old, new = _differing(repo, old_id, new_id)
        yield DirectoryVisit(path, old_id is not None, new_id is not None)
        existed = old_id is not None
        subdirs: list[tuple[str | None, str | None, str]] = []
        for o, n in _pairs(old, new):
            o_type = o.get("type") if o is not None else None
            n_type = n.get("type") if n is not None else None
            if o_type == "file" and n_type == "file":
                assert o is not None and n is not None
                if not _same_content(o, n):
                    yield FileChange(path, n["name"], existed, o, n)
                continue
            if _is_dir(o) or _is_dir(n):
                name = (n or o or {})["name"]
                subdirs.append((o["subtree"] if _is_dir(o) else None,  # type: ignore[index]
                                n["subtree"] if _is_dir(n) else None,  # type: ignore[index]
                                _join(path, name)))
            if o_type == "file":
                assert o is not None
                yield FileChange(path, o["name"], existed, o, None)
            elif n_type == "file":
                assert n is not None
                yield FileChange(path, n["name"], existed, None, n)
        stack.extend(reversed(subdirs))  # depth first, in name order
