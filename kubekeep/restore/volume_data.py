"""Volume data on restore: fill a PVC's directory from its snapshot and prove the bytes are right.

Verification re-reads every restored file from disk, cuts it with the
repository's own chunker and keyed hash, and compares the chunk ids with the
ones the snapshot recorded; a file that differs in any byte is named.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import pyfastcdc

from kubekeep.repo.repository import Repository
from kubekeep.repo.targetfs import name_problem, open_file_below


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


def _walk(repo: Repository, tree_id: str, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for entry in repo.load_tree(tree_id):
        parts = (*prefix, entry["name"])
        if entry.get("type") == "dir" and entry.get("subtree"):
            yield from _walk(repo, entry["subtree"], parts)
        elif entry.get("type") == "file":
            yield parts, entry


def _chunk_ids(repo: Repository, fh: BinaryIO) -> Iterator[bytes]:
    p = repo.chunker_params
    chunker = pyfastcdc.FastCDC(p["avg_size"], min_size=p["min_size"], max_size=p["max_size"],
                                normalized_chunking=cast(Any, p["normalization"]), seed=p["seed"])
    for chunk in chunker.cut_stream(fh):
        yield repo.blob_id(chunk.data)


def verify_volume(repo: Repository, snapshot_id: str, target: Path, *, path: str | None = None,
                  only: Collection[str] | None = None) -> VerifyResult:
    """Compare every file under ``target`` with the snapshot (or with the subtree ``path`` of it; or
    only the files ``only`` names, paths relative to the target).

    Files are opened below ``target`` without following any link (as the restore created
    them), so a link in the target is a mismatch, never a detour to data elsewhere.
    """
    doc = repo.load_snapshot(repo.resolve_snapshot(snapshot_id))
    result = VerifyResult()
    want_prefix = (path or "").strip("/")
    for parts, entry in _walk(repo, doc["tree"], ()):
        rel = "/".join(map(str, parts))
        if want_prefix and rel != want_prefix and not rel.startswith(want_prefix + "/"):
            continue
        if only is not None and rel not in only:
            continue
        result.files += 1
        if any(name_problem(part) is not None for part in parts):
            result.mismatches.append(f"{rel!r}: invalid entry name in the snapshot")
            continue
        try:  # restoring a file or subtree keeps its path under the target
            fd = open_file_below(target, parts)
        except FileNotFoundError:
            result.mismatches.append(f"{rel}: missing after restore")
            continue
        except OSError as exc:
            result.mismatches.append(f"{rel}: cannot open: {exc.strerror}")
            continue
        with open(fd, "rb") as fh:
            st = os.fstat(fd)
            content = entry["content"]
            if not stat.S_ISREG(st.st_mode):
                result.mismatches.append(f"{rel}: not a regular file after restore")
                continue
            if st.st_size != content["size"]:
                result.mismatches.append(f"{rel}: size {st.st_size}, snapshot has {content['size']}")
                continue
            expected = repo.content_chunks(content)
            for got in _chunk_ids(repo, fh):
                if next(expected, None) != got:
                    result.mismatches.append(f"{rel}: content differs from the snapshot")
                    break
            else:
                if next(expected, None) is not None:
                    result.mismatches.append(f"{rel}: shorter than the snapshot")
        result.bytes += st.st_size
    return result


def restore_volume(repo: Repository, snapshot_id: str, target: Path, *, path: str | None = None,
                   verify: bool = True) -> dict[str, Any]:
    """Restore a volume snapshot (or one file/subtree of it) under ``target``; verify it; return a summary."""
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
