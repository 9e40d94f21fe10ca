"""Volume data on restore: fill a PVC's directory from its snapshot and prove the bytes are right.

Verification re-reads every restored file from disk, cuts it with the
repository's own chunker and keyed hash, and compares the chunk ids with the
ones the snapshot recorded; a file that differs in any byte is named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyfastcdc

from kubekeep.repo.repository import Repository


class VolumeVerificationError(Exception):
    def __init__(self, message: str, mismatches: list[str]) -> None:
        super().__init__(message)
        self.mismatches = mismatches


@dataclass
class VerifyResult:
    files: int = 0
    bytes: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _walk(repo: Repository, tree_id: str, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in repo.load_tree(tree_id):
        rel = f"{prefix}{entry['name']}"
        if entry.get("type") == "dir" and entry.get("subtree"):
            yield from _walk(repo, entry["subtree"], rel + "/")
        elif entry.get("type") == "file":
            yield rel, entry


def _chunk_ids(repo: Repository, path: Path) -> Iterator[bytes]:
    p = repo.chunker_params
    chunker = pyfastcdc.FastCDC(p["avg_size"], min_size=p["min_size"], max_size=p["max_size"],
                                normalized_chunking=cast(Any, p["normalization"]), seed=p["seed"])
    with open(path, "rb") as fh:
        for chunk in chunker.cut_stream(fh):
            yield repo.blob_id(chunk.data)


def verify_volume(repo: Repository, snapshot_id: str, target: Path, *, path: str | None = None) -> VerifyResult:
    """Compare every file under ``target`` with the snapshot (or with the subtree ``path`` of it)."""
    doc = repo.load_snapshot(repo.resolve_snapshot(snapshot_id))
    result = VerifyResult()
    want_prefix = (path or "").strip("/")
    for rel, entry in _walk(repo, doc["tree"], ""):
        if want_prefix and rel != want_prefix and not rel.startswith(want_prefix + "/"):
            continue
        local = target / rel  # restoring a file or subtree keeps its path under the target
        result.files += 1
        try:
            size = os.lstat(local).st_size
        except FileNotFoundError:
            result.mismatches.append(f"{rel}: missing after restore")
            continue
        content = entry["content"]
        if size != content["size"]:
            result.mismatches.append(f"{rel}: size {size}, snapshot has {content['size']}")
            continue
        expected = repo.content_chunks(content)
        for got in _chunk_ids(repo, local):
            if next(expected, None) != got:
                result.mismatches.append(f"{rel}: content differs from the snapshot")
                break
        else:
            if next(expected, None) is not None:
                result.mismatches.append(f"{rel}: shorter than the snapshot")
        result.bytes += size
    return result


def restore_volume(repo: Repository, snapshot_id: str, target: Path, *, path: str | None = None,
                   verify: bool = True) -> dict[str, Any]:
    """Restore a volume snapshot (or one file/subtree of it) under ``target``; verify it; return a summary."""
    target.mkdir(parents=True, exist_ok=True)
    restored = repo.restore(snapshot_id, target, path=path)
    summary: dict[str, Any] = {"snapshot_id": snapshot_id, "target": str(target), "path": path,
                               "files": restored.files, "bytes": restored.bytes,
                               "warnings": list(restored.warnings)[:20]}
    if verify:
        check = verify_volume(repo, snapshot_id, target, path=path)
        summary["verified_files"] = check.files
        if not check.ok:
            raise VolumeVerificationError(
                f"{len(check.mismatches)} restored file(s) differ from snapshot {snapshot_id[:12]}: "
                + "; ".join(check.mismatches[:5]), check.mismatches)
    return summary


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, sort_keys=True)
