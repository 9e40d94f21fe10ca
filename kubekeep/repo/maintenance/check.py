"""check: is everything the snapshots need there, indexed and (with ``read_data``) intact?

Reports, never changes anything: hidden versions (versioned locations), index objects that
fail authentication, packs the index names that are missing or truncated, unindexed packs,
unreadable snapshots, blobs the snapshots reference that no index names, trees and chunk
lists that cannot be read, and with ``read_data`` every blob that fails verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto import BlobType
from ..errors import IntegrityError, RepositoryError, SnapshotNotFoundError
from ..format import INDEX_PREFIX, PACK_TRAILER, BlobEntry, id_from_key, pack_key
from ..index import Index
from ..protocols import CheckTarget
from ..reachability import reachable
from ..storage import ObjectInfo, ObjectNotFoundError, StorageError
from .recover import find_hidden


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    blobs_read: int = 0
    #: (pack id hex, blob id hex) of every damaged blob found with read_data
    damaged: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(repo: CheckTarget, *, read_data: bool = False) -> CheckResult:
    result = CheckResult()
    try:
        # versioned locations: delete markers and newer versions hide what Kubekeep wrote
        result.errors.extend(hidden.describe() for hidden in find_hidden(repo.storage))
        _check(repo, read_data, result)
    except StorageError as exc:
        result.errors.append(f"storage error: {exc}")
    return result


def _check(repo: CheckTarget, read_data: bool, result: CheckResult) -> None:
    index = Index()
    index_keys = 0
    for info in repo.storage.list(INDEX_PREFIX):
        index_keys += 1
        ident = id_from_key(info.key, INDEX_PREFIX)
        if ident is None:
            result.warnings.append(f"unexpected object {info.key}")
            continue
        try:
            repo.read_index_object(info.key, ident, index)
        except (RepositoryError, ObjectNotFoundError) as exc:
            result.errors.append(f"index object {info.key}: {exc}")
    packs = repo.list_packs()
    result.packs = len(packs)
    index_lost = not index_keys and bool(packs)
    extent: dict[bytes, int] = {}
    for loc in index:
        end = loc.entry.offset + loc.entry.length
        if end > extent.get(loc.pack_id, 0):
            extent[loc.pack_id] = end
    for pack_id in index.pack_ids():
        if pack_id not in packs:
            result.errors.append(f"pack {pack_id.hex()} is named by the index but missing")
        elif packs[pack_id].size < extent.get(pack_id, 0) + PACK_TRAILER.size:
            result.errors.append(f"pack {pack_id.hex()} is truncated ({packs[pack_id].size} bytes)")
    for pack_id in packs:
        if not index.has_pack(pack_id):
            result.warnings.append(f"pack {pack_id.hex()} is not indexed (left by an interrupted operation, "
                                   "or a backup in progress); prune removes it, repair-index re-indexes it")

    reach = reachable(repo, repo.snapshot_ids(), index=index)
    for sid, problem in reach.unreadable.items():
        if not isinstance(problem, SnapshotNotFoundError):  # a snapshot pruned meanwhile is no error
            result.errors.append(f"snapshot {sid}: {problem}")
    result.snapshots = len(reach.snapshots)
    result.errors.extend(reach.errors)
    if index_lost and result.snapshots:
        result.errors.append("the index is missing (packs exist but no index object); run repair-index")
    elif reach.missing:
        result.errors.append(f"{len(reach.missing)} referenced blob(s) are not in the index; run repair-index")
    if read_data:
        _read_all(repo, index, packs, result)


def _read_all(repo: CheckTarget, index: Index, packs: dict[bytes, ObjectInfo], result: CheckResult) -> None:
    by_pack: dict[bytes, list[BlobEntry]] = {}
    for loc in index:
        by_pack.setdefault(loc.pack_id, []).append(loc.entry)
    for pack_id, entries in by_pack.items():
        if pack_id not in packs:
            continue
        try:
            data = repo.storage.get(pack_key(pack_id))
        except ObjectNotFoundError:
            continue
        try:
            header = repo.read_pack_header(pack_id, len(data))
            if {(e.blob_id, e.offset, e.length) for e in header} < {(e.blob_id, e.offset, e.length)
                                                                     for e in entries}:
                result.errors.append(f"pack {pack_id.hex()}: header and index disagree")
        except (RepositoryError, StorageError) as exc:
            result.errors.append(str(exc))
        for entry in sorted(entries, key=lambda e: e.offset):
            what = (f"pack {pack_id.hex()} blob {entry.blob_id.hex()} "
                    f"({BlobType.NAMES.get(entry.blob_type, '?')}, offset {entry.offset})")
            raw = data[entry.offset:entry.offset + entry.length]
            try:
                if len(raw) != entry.length:
                    raise IntegrityError(f"{what}: pack is truncated")
                repo.decode_blob(entry, raw, what=what)
                result.blobs_read += 1
            except RepositoryError as exc:
                result.errors.append(str(exc))
                result.damaged.append((pack_id.hex(), entry.blob_id.hex()))
