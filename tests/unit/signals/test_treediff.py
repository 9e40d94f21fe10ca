"""The tree diff: what it reports, and that identical subtrees are never read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubekeep.signals.treediff import DirectoryVisit, FileChange, diff_trees


def tid(name: str) -> str:
    """Tree ids are hex; the tests name trees by words."""
    return name.encode().hex()


def f(name: str, chunks: list[str], *, inode: int | None = None, mtime: int = 1, ctime: int = 1) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "type": "file", "size": 10 * len(chunks), "mtime_ns": mtime,
                            "ctime_ns": ctime, "content": {"size": 10 * len(chunks), "chunks": chunks}}
    if inode is not None:
        node["inode"] = inode
    return node


def d(name: str, subtree: str) -> dict[str, Any]:
    return {"name": name, "type": "dir", "subtree": tid(subtree)}


class Trees:
    """Tree blobs serialized like the archiver does (compact JSON), or in another layout (``indent``)."""

    def __init__(self, trees: dict[str, list[dict[str, Any]]], *, indent: int | None = None) -> None:
        self.trees = trees
        self.indent = indent
        self.loaded: list[str] = []

    def read_blob(self, blob_id: bytes) -> bytes:
        name = bytes.fromhex(blob_id.hex()).decode()
        self.loaded.append(name)
        doc = {"version": 1, "entries": self.trees[name]}
        if self.indent is not None:
            return json.dumps(doc, indent=self.indent).encode()
        return json.dumps(doc, separators=(",", ":")).encode()


def changes(repo: Trees, old: str | None, new: str | None) -> list[tuple[str, str]]:
    out = []
    for e in diff_trees(repo, tid(old) if old else None, tid(new) if new else None):
        if isinstance(e, FileChange):
            kind = "added" if e.old is None else "deleted" if e.new is None else "changed"
            out.append((kind, e.path))
    return out


def test_identical_subtrees_are_not_read() -> None:
    repo = Trees({
        "old": [d("big", "same"), d("app", "a1"), f("top.txt", ["c1"])],
        "new": [d("big", "same"), d("app", "a2"), f("top.txt", ["c1"])],
        "a1": [f("x.js", ["x1"]), f("y.js", ["y1"])],
        "a2": [f("x.js", ["x2"]), f("z.js", ["z1"])],
        "same": [f("never-read", ["n"])],
    })
    assert changes(repo, "old", "new") == [("changed", "app/x.js"), ("deleted", "app/y.js"), ("added", "app/z.js")]
    assert "same" not in repo.loaded
    assert sorted(repo.loaded) == ["a1", "a2", "new", "old"]


def test_metadata_only_changes_are_not_changes() -> None:
    repo = Trees({
        "old": [f("touched", ["c"], inode=2, mtime=1, ctime=1), f("rewritten-same", ["s"], inode=3, ctime=5)],
        "new": [f("touched", ["c"], inode=2, mtime=9, ctime=9), f("rewritten-same", ["s"], inode=4, ctime=6)],
    })
    assert changes(repo, "old", "new") == []


def test_unchanged_stat_means_unchanged_content_without_comparing_chunks() -> None:
    # the archiver reuses content exactly when inode, size, mtime and ctime are unchanged
    repo = Trees({"old": [f("db", ["a"], inode=7, mtime=1, ctime=1)],
                  "new": [f("db", ["b"], inode=7, mtime=1, ctime=1)]})
    assert changes(repo, "old", "new") == []
    repo = Trees({"old": [f("db", ["a"], inode=7, mtime=1, ctime=1)],
                  "new": [f("db", ["b"], inode=7, mtime=1, ctime=2)]})
    assert changes(repo, "old", "new") == [("changed", "db")]


def test_first_snapshot_adds_everything_and_type_changes_count_both_ways() -> None:
    repo = Trees({
        "old": [f("a", ["1"]), d("b", "b1"), f("c", ["3"])],
        "new": [d("a", "a2"), f("b", ["2"]), {"name": "c", "type": "symlink", "target": "a"}],
        "b1": [f("inner", ["i"])],
        "a2": [f("inner", ["j"])],
    })
    assert changes(repo, None, "new") == [("added", "b"), ("added", "a/inner")]
    assert changes(repo, "old", "new") == [("deleted", "a"), ("added", "b"), ("deleted", "c"),
                                           ("added", "a/inner"), ("deleted", "b/inner")]


def test_directories_are_visited_before_their_files_and_know_whether_they_existed() -> None:
    repo = Trees({
        "old": [d("kept", "k1")],
        "new": [d("kept", "k2"), d("fresh", "f1")],
        "k1": [f("a", ["1"])], "k2": [f("a", ["1"]), f("note", ["n"])], "f1": [f("note", ["n"])],
    })
    events = list(diff_trees(repo, tid("old"), tid("new")))
    visits = [e for e in events if isinstance(e, DirectoryVisit)]
    assert [(v.path, v.existed) for v in visits] == [("", True), ("fresh", False), ("kept", True)]
    added = {e.path: e.directory_existed for e in events if isinstance(e, FileChange)}
    assert added == {"fresh/note": False, "kept/note": True}


def test_unsorted_listings_are_still_matched_by_name() -> None:
    repo = Trees({"old": [f("b", ["1"]), f("a", ["2"])], "new": [f("a", ["2"]), f("b", ["9"])]})
    assert changes(repo, "old", "new") == [("changed", "b")]


def test_deep_trees_do_not_recurse() -> None:
    trees: dict[str, list[dict[str, Any]]] = {}
    depth = 5000  # beyond Python's recursion limit
    for i in range(depth):
        trees[f"o{i}"] = [d("n", f"o{i + 1}")] if i + 1 < depth else [f("leaf", ["old"])]
        trees[f"n{i}"] = [d("n", f"n{i + 1}")] if i + 1 < depth else [f("leaf", ["new"])]
    result = changes(Trees(trees), "o0", "n0")
    assert len(result) == 1 and result[0][0] == "changed" and result[0][1].endswith("/leaf")


@pytest.mark.parametrize("indent", [None, 1])
def test_names_that_look_like_the_entry_separator_and_any_layout(indent: int | None) -> None:
    tricky = 'x"},{"name":"y'
    repo = Trees({
        "old": [f(tricky, ["1"]), f("plain", ["2"]), f("same", ["3"])],
        "new": [f(tricky, ["9"]), f("plain", ["2"]), f("same", ["3"]), f('q"uote', ["4"])],
    }, indent=indent)
    assert changes(repo, "old", "new") == [("added", 'q"uote'), ("changed", tricky)]


@pytest.mark.parametrize("indent", [None, 1])
def test_differing_entries_decoded_together_keep_every_entry_apart(indent: int | None) -> None:
    """Several differing entries (tricky names among them) parsed in one go, and a directory on one side only."""
    tricky = 'x"},{"name":"y'
    names = [tricky, 'a"b', "b}", "c,{", "d"]
    repo = Trees({
        "old": [f(n, ["1"]) for n in names] + [f("kept", ["k"])],
        "new": [f(n, ["2"]) for n in names[:3]] + [f("kept", ["k"])] + [f(n + "+", ["3"]) for n in names[3:]],
        "sub": [f(n, ["5"]) for n in names],
        "top": [d("sub", "sub"), f(tricky, ["6"])],
    }, indent=indent)
    assert sorted(changes(repo, "old", "new")) == sorted(
        [("changed", n) for n in names[:3]] + [("deleted", n) for n in names[3:]]
        + [("added", n + "+") for n in names[3:]])
    first = changes(repo, None, "top")
    assert sorted(first) == sorted([("added", tricky)] + [("added", "sub/" + n) for n in names])
    gone = changes(repo, "top", None)
    assert sorted(gone) == sorted([("deleted", tricky)] + [("deleted", "sub/" + n) for n in names])
