"""check, repair_index and prune (docs/repository-format.md: invariants, concurrency)."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .crypto import BlobType
from .errors import IntegrityError, LockedError, RepositoryError, SnapshotNotFoundError
from .format import (
    DATA_PREFIX,
    INDEX_PREFIX,
    PACK_MAGIC,
    PACK_TRAILER,
    PRUNE_PREFIX,
    SNAPSHOTS_PREFIX,
    BlobEntry,
    decode_pack_header,
    id_from_key,
    pack_id_from_key,
    pack_key,
)
from .index import Index
from .locks import LockInfo, RepositoryLock, read_locks, remove_locks
from .repository import Repository
from .storage import ObjectInfo, ObjectLockedError, ObjectNotFoundError, StorageError

REPAIR_BATCH_PACKS = 1000


# -- pack reading ------------------------------------------------------------------------------


def read_pack_header(repo: Repository, pack_id: bytes, size: int | None = None) -> list[BlobEntry]:
    """The blobs a pack says it holds. IntegrityError when the pack is truncated or damaged."""
    key = pack_key(pack_id)
    what = f"pack {pack_id.hex()}"
    if size is None:
        size = repo.storage.stat(key).size
    if size < PACK_TRAILER.size:
        raise IntegrityError(f"{what}: truncated ({size} bytes)")
    header_len, magic = PACK_TRAILER.unpack(repo.storage.get_range(key, size - PACK_TRAILER.size, PACK_TRAILER.size))
    if magic != PACK_MAGIC or header_len > size - PACK_TRAILER.size:
        raise IntegrityError(f"{what}: truncated or not a pack (bad trailer)")
    start = size - PACK_TRAILER.size - header_len
    raw = repo.storage.get_range(key, start, header_len)
    payload = repo.open_object(BlobType.PACK_HEADER, pack_id, raw, what=f"{what} header")
    entries = decode_pack_header(payload, what=what)
    if entries and entries[-1].offset + entries[-1].length != start:
        raise IntegrityError(f"{what}: header does not match the pack's length")
    return entries


def list_packs(repo: Repository) -> dict[bytes, ObjectInfo]:
    packs = {}
    for info in repo.storage.list(DATA_PREFIX):
        pack_id = pack_id_from_key(info.key)
        if pack_id is not None:
            packs[pack_id] = info
    return packs


# -- check -------------------------------------------------------------------------------------


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


def _walk_snapshot(repo: Repository, doc: dict[str, Any], index: Index, visit: Callable[[bytes, int], None],
                   seen_trees: set[bytes], errors: list[str]) -> None:
    """Call ``visit(blob_id, type)`` for every blob a snapshot references."""
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


def check(repo: Repository, *, read_data: bool = False) -> CheckResult:
    from .recover import find_hidden

    result = CheckResult()
    try:
        # versioned locations: delete markers and newer versions hide what Kubekeep wrote
        result.errors.extend(hidden.describe() for hidden in find_hidden(repo.storage))
        _check(repo, read_data, result)
    except StorageError as exc:
        result.errors.append(f"storage error: {exc}")
    return result


def _check(repo: Repository, read_data: bool, result: CheckResult) -> None:
    index = Index()
    for info in repo.storage.list(INDEX_PREFIX):
        ident = id_from_key(info.key, INDEX_PREFIX)
        if ident is None:
            result.warnings.append(f"unexpected object {info.key}")
            continue
        try:
            repo._read_index_object(info.key, ident, index)
        except (RepositoryError, ObjectNotFoundError) as exc:
            result.errors.append(f"index object {info.key}: {exc}")
    packs = list_packs(repo)
    result.packs = len(packs)
    index_lost = not list(repo.storage.list(INDEX_PREFIX)) and bool(packs)
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

    missing: set[bytes] = set()

    def visit(blob_id: bytes, blob_type: int) -> None:
        if blob_id not in index:
            missing.add(blob_id)

    seen_trees: set[bytes] = set()
    for sid in repo.snapshot_ids():
        try:
            doc = repo.load_snapshot(sid)
        except SnapshotNotFoundError:
            continue
        except RepositoryError as exc:
            result.errors.append(f"snapshot {sid}: {exc}")
            continue
        result.snapshots += 1
        before = len(missing)
        _walk_snapshot(repo, doc, index, visit, seen_trees, result.errors)
        if len(missing) > before:
            result.errors.append(f"snapshot {sid[:12]}: {len(missing) - before} referenced blob(s) "
                                 "are not in the index")
    if index_lost and result.snapshots:
        result.errors.append("the index is missing (packs exist but no index object); run repair-index")
    elif missing:
        result.errors.append(f"{len(missing)} referenced blob(s) are not in the index; run repair-index")
    if read_data:
        _read_all(repo, index, packs, result)


def _read_all(repo: Repository, index: Index, packs: dict[bytes, ObjectInfo], result: CheckResult) -> None:
    by_pack: dict[bytes, list[BlobEntry]] = {}
    for loc in index:
        by_pack.setdefault(loc.pack_id, []).append(loc.entry)
    comp = repo.compressor
    for pack_id, entries in by_pack.items():
        if pack_id not in packs:
            continue
        try:
            data = repo.storage.get(pack_key(pack_id))
        except ObjectNotFoundError:
            continue
        try:
            header = read_pack_header(repo, pack_id, len(data))
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
                flag, payload = repo.envelope.open(entry.blob_type, entry.blob_id, raw, what=what)
                plain = comp.unpack(flag, payload, raw_length=entry.raw_length, what=what)
                if repo.blob_id(plain) != entry.blob_id:
                    raise IntegrityError(f"{what}: content does not match its id")
                result.blobs_read += 1
            except RepositoryError as exc:
                result.errors.append(str(exc))
                result.damaged.append((pack_id.hex(), entry.blob_id.hex()))


# -- repair_index ------------------------------------------------------------------------------


@dataclass
class RepairResult:
    packs_indexed: int = 0
    blobs_indexed: int = 0
    index_objects_written: int = 0
    index_objects_removed: int = 0
    unreadable_packs: list[str] = field(default_factory=list)


def repair_index(repo: Repository) -> RepairResult:
    """Rebuild the index from the pack headers, then drop the old index objects."""
    result = RepairResult()
    lock = repo.lock("repair")
    try:
        others, _ = read_locks(repo.storage, repo.envelope)
        running = [lk for lk in others if lk.owner != lock.owner and lk.kind == "prune" and lk.live()]
        if running:  # indexing a pack a running prune is about to delete would lose data
            raise LockedError(f"a prune is running ({running[0].describe()}); try again later")
        old_keys = [i.key for i in repo.storage.list(INDEX_PREFIX)]
        batch: dict[bytes, list[BlobEntry]] = {}
        for pack_id, info in list_packs(repo).items():
            try:
                entries = read_pack_header(repo, pack_id, info.size)
            except (RepositoryError, StorageError) as exc:
                result.unreadable_packs.append(f"{pack_id.hex()}: {exc}")
                continue
            batch[pack_id] = entries
            result.packs_indexed += 1
            result.blobs_indexed += len(entries)
            if len(batch) >= REPAIR_BATCH_PACKS:
                repo.write_index_object(batch)
                result.index_objects_written += 1
                batch = {}
        if batch:
            repo.write_index_object(batch)
            result.index_objects_written += 1
        for key in old_keys:
            try:
                repo.storage.delete(key)
                result.index_objects_removed += 1
            except ObjectLockedError:
                pass
        repo.load_index(reload=True)
    except StorageError as exc:
        raise repo.storage_error(exc) from exc
    finally:
        lock.release()
    return result


# -- prune -------------------------------------------------------------------------------------

#: a prune deletes the old index objects within this window after recording the packs it deindexes
#: (it stops deleting when the window has passed); the record's deadline bounds when they were
#: last named by an index, which the age rule below relies on
DEINDEX_WINDOW = timedelta(minutes=10)
DEFAULT_LEFTOVER_AGE = 3600.0


@dataclass
class PruneResult:
    snapshots_removed: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_freed: int = 0
    #: objects prune wanted to delete but the storage holds under retention
    locked_skipped: list[str] = field(default_factory=list)
    #: deletion candidates kept because a concurrent backup turned out to need them
    rescued_packs: int = 0
    #: candidates left for a later prune because other operations did not finish in time
    deferred_packs: int = 0
    #: snapshots whose manifest could not be read (prune then deletes no data)
    damaged_snapshots: list[str] = field(default_factory=list)
    #: temporary files / unfinished uploads of interrupted writers that were removed
    temp_files_removed: int = 0
    temp_bytes_freed: int = 0
    #: locks of operations that are gone (dead process on this host, or expired), removed
    stale_locks_removed: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PruneRecord:
    """Packs a prune took out of the index, and the deadline by which it stopped doing so."""

    key: str
    owner: str
    deadline: datetime
    packs: frozenset[bytes]


def read_prune_records(repo: Repository) -> tuple[list[PruneRecord], list[str]]:
    records: list[PruneRecord] = []
    bad: list[str] = []
    for info in repo.storage.list(PRUNE_PREFIX):
        ident = id_from_key(info.key, PRUNE_PREFIX)
        if ident is None:
            bad.append(info.key)
            continue
        try:
            doc = json.loads(repo.open_object(BlobType.PRUNE_RECORD, ident, repo.storage.get(info.key),
                                              what=f"prune record {info.key}"))
            records.append(PruneRecord(info.key, str(doc["owner"]), datetime.fromisoformat(doc["deadline"]),
                                       frozenset(bytes.fromhex(p) for p in doc["packs"])))
        except ObjectNotFoundError:
            continue
        except (RepositoryError, ValueError, KeyError, TypeError):
            bad.append(info.key)
    return records, bad


def _write_prune_record(repo: Repository, owner: str, deadline: datetime, packs: Iterable[bytes]) -> str:
    ident = secrets.token_bytes(32)
    key = PRUNE_PREFIX + ident.hex()
    doc = {"version": 1, "owner": owner, "written": datetime.now(UTC).isoformat(),
           "deadline": deadline.isoformat(), "packs": sorted(p.hex() for p in packs)}
    repo.storage.put(key, repo.seal_object(BlobType.PRUNE_RECORD, ident, json.dumps(doc).encode()))
    return key


def prune(repo: Repository, drop: list[str], *, repack_threshold: float, wait_timeout: float,
          poll: float, leftover_age: float = DEFAULT_LEFTOVER_AGE) -> PruneResult:
    result = PruneResult()
    lock = repo.lock("prune")
    try:
        stale = remove_locks(repo.storage, repo.envelope, keep_owner=lock.owner)
        result.stale_locks_removed = stale.removed
        if stale.removed:
            result.messages.append(f"removed {len(stale.removed)} stale lock(s): " + "; ".join(stale.removed))
        others, _ = read_locks(repo.storage, repo.envelope)
        exclusive = [lk for lk in others if lk.owner != lock.owner and lk.kind in ("prune", "repair") and lk.live()]
        if exclusive:
            raise LockedError(f"another operation that excludes prune is running ({exclusive[0].describe()}); "
                              "try again later")
        older_than = datetime.now(UTC) - timedelta(seconds=leftover_age)
        result.temp_files_removed, result.temp_bytes_freed = repo.storage.remove_leftovers(older_than)
        if result.temp_files_removed:
            result.messages.append(f"removed {result.temp_files_removed} temporary file(s) of interrupted "
                                   f"writers ({result.temp_bytes_freed} bytes)")
        _prune(repo, drop, repack_threshold, wait_timeout, poll, leftover_age, lock, result)
    except StorageError as exc:
        raise repo.storage_error(exc) from exc
    finally:
        lock.release()
    return result


def _prune(repo: Repository, drop: list[str], repack_threshold: float, wait_timeout: float, poll: float,
           leftover_age: float, lock: RepositoryLock, result: PruneResult) -> None:
    storage = repo.storage
    owner = lock.owner
    drop_ids = [repo.resolve_snapshot(s) for s in drop]
    # 1. drop snapshots (first: a crash later only leaves garbage)
    for sid in drop_ids:
        try:
            storage.delete(SNAPSHOTS_PREFIX + sid)
            result.snapshots_removed.append(sid)
        except ObjectLockedError:
            result.locked_skipped.append(SNAPSHOTS_PREFIX + sid)
            result.messages.append(f"snapshot {sid[:12]} is under retention; kept")

    # 2. mark: what is used, where it lives
    records, _bad_records = read_prune_records(repo)
    old_index_keys = [i.key for i in storage.list(INDEX_PREFIX)]
    index = Index()
    for key in old_index_keys:
        ident = id_from_key(key, INDEX_PREFIX)
        if ident is not None:
            try:
                repo._read_index_object(key, ident, index)
            except ObjectNotFoundError:
                continue
    packs = list_packs(repo)
    orphan_entries: dict[bytes, list[BlobEntry]] = {}
    for pack_id, info in packs.items():
        if not index.has_pack(pack_id):
            try:
                orphan_entries[pack_id] = read_pack_header(repo, pack_id, info.size)
            except (RepositoryError, StorageError):
                orphan_entries[pack_id] = []  # unreadable: garbage
    orphan_index = Index()
    for pack_id, entries in orphan_entries.items():
        orphan_index.add_pack(pack_id, entries)

    used: set[bytes] = set()
    errors: list[str] = []

    def visit(blob_id: bytes, blob_type: int) -> None:
        used.add(blob_id)

    seen_snapshots = set(repo.snapshot_ids())
    seen_trees: set[bytes] = set()
    combined = _Combined(index, orphan_index)
    for sid in seen_snapshots:
        try:
            doc = repo.load_snapshot(sid)
        except SnapshotNotFoundError:
            continue
        except RepositoryError as exc:
            result.damaged_snapshots.append(sid)
            result.messages.append(f"snapshot {sid[:12]} is unreadable ({exc})")
            continue
        _walk_snapshot(repo, doc, combined, visit, seen_trees, errors)  # type: ignore[arg-type]
    if result.damaged_snapshots:
        # An unreadable manifest may reference any blob: deleting or repacking anything
        # could destroy the data it names. Keep all data until it is repaired or dropped.
        result.messages.append(
            f"{len(result.damaged_snapshots)} unreadable snapshot(s): no data was deleted or repacked while "
            "they exist; `kubekeep repo check` names them, `kubekeep repo prune <id>` drops one")
        return
    if errors:
        raise RepositoryError("prune stopped, the repository has errors (run check): " + "; ".join(errors[:5]))

    # per pack: used and total bytes; orphans holding used blobs are rescued as live packs
    pack_entries: dict[bytes, list[BlobEntry]] = {}
    for loc in index:
        pack_entries.setdefault(loc.pack_id, []).append(loc.entry)
    for pack_id, entries in orphan_entries.items():
        if any(e.blob_id in used and e.blob_id not in index for e in entries):
            pack_entries[pack_id] = entries
            result.rescued_packs += 1
    keep: dict[bytes, list[BlobEntry]] = {}
    repack: list[bytes] = []
    candidates: set[bytes] = set()
    for pack_id, entries in pack_entries.items():
        if pack_id not in packs:
            continue  # named by the index but gone: nothing to keep
        total = sum(e.length for e in entries) or 1
        live = sum(e.length for e in entries if e.blob_id in used)
        if live == 0:
            candidates.add(pack_id)
        elif live / total < repack_threshold:
            repack.append(pack_id)
        else:
            keep[pack_id] = entries
    candidates.update(p for p in orphan_entries if p not in pack_entries)

    # repack: copy live envelopes verbatim (aad binds blob id, not pack) into new packs
    _repack(repo, repack, pack_entries, used, keep)
    result.packs_repacked = len(repack)
    candidates.update(repack)

    # a new full index: every blob of every kept pack (each blob once); then the packs about to
    # leave the index are recorded before the old index objects go (moment M)
    written = _write_full_index(repo, keep)
    deindexed = {p for p in candidates if index.has_pack(p)}
    deadline = datetime.now(UTC) + DEINDEX_WINDOW
    own_record = _write_prune_record(repo, owner, deadline, deindexed) if deindexed else None
    for key in old_index_keys:
        if key in written:
            continue
        if datetime.now(UTC) >= deadline or not lock.valid():
            result.messages.append("stopped deleting old index objects (the deindexing window passed); "
                                   "a later prune finishes")
            break
        try:
            storage.delete(key)
        except ObjectLockedError:
            result.locked_skipped.append(key)

    # 3. wait for every operation that may have seen the old index (moment M)
    locks, _ = read_locks(storage, repo.envelope)
    waiting = {lk.owner for lk in locks if lk.owner != owner and lk.live()}
    deadline_wait = time.monotonic() + wait_timeout
    while waiting and time.monotonic() < deadline_wait:
        time.sleep(poll)
        locks, _ = read_locks(storage, repo.envelope)
        now = datetime.now(UTC)
        waiting = {lk.owner for lk in locks if lk.owner in waiting and lk.live(now)}

    deletable = candidates
    if waiting:
        # 3b. the age rule: operations still running started at S or later. A pack not in any
        # index that was last named by an index (or written) before S - leftover_age belongs to
        # none of them and is in no index any of them loaded, so it can go now.
        still = [lk for lk in locks if lk.owner in waiting]
        deletable = _old_enough(candidates, still, packs, [*records], deindexed, leftover_age)
        kept = len(candidates) - len(deletable)
        result.deferred_packs = kept
        result.messages.append(f"{len(waiting)} other operation(s) still running; {kept} pack(s) left for a later "
                               f"prune, {len(deletable)} unindexed pack(s) older than them reclaimed")
        if not deletable:
            return

    # 4. sweep: keep candidates that others indexed or that new snapshots need
    if not _sweep_and_delete(repo, deletable, written, seen_snapshots, pack_entries, orphan_entries, packs,
                             result):
        return
    if not waiting:
        # every operation that could have seen an index naming a recorded pack is gone
        for key in [r.key for r in records] + ([own_record] if own_record else []):
            with contextlib.suppress(ObjectNotFoundError, ObjectLockedError):
                storage.delete(key)
    if result.locked_skipped:
        result.messages.append(f"{len(result.locked_skipped)} object(s) under retention were kept")
    repo.load_index(reload=True)


def _old_enough(candidates: set[bytes], running: list[LockInfo], packs: dict[bytes, ObjectInfo],
                records: list[PruneRecord], deindexed_now: set[bytes], leftover_age: float) -> set[bytes]:
    """Candidates no running operation can have written or found in an index it loaded."""
    if not running or any(lk.kind != "backup" or lk.started is None for lk in running):
        return set()  # only backups follow the rule (they never index packs they did not write)
    limit = min(lk.started for lk in running if lk.started is not None) - timedelta(seconds=leftover_age)
    out = set()
    for pack_id in candidates - deindexed_now:
        modified = packs[pack_id].modified if pack_id in packs else None
        if modified is None or modified >= limit:
            continue
        if any(pack_id in r.packs and r.deadline >= limit for r in records):
            continue  # an index named it until recently
        out.add(pack_id)
    return out


def _sweep_and_delete(repo: Repository, candidates: set[bytes], written: set[str], seen_snapshots: set[str],
                      pack_entries: dict[bytes, list[BlobEntry]], orphan_entries: dict[bytes, list[BlobEntry]],
                      packs: dict[bytes, ObjectInfo], result: PruneResult) -> bool:
    """Delete the candidates nobody indexed or needs meanwhile; False when a new snapshot is unreadable."""
    storage = repo.storage
    candidates = set(candidates)
    new_index = Index()
    for info in storage.list(INDEX_PREFIX):
        ident = id_from_key(info.key, INDEX_PREFIX)
        if ident is None or info.key in written:
            continue
        try:
            repo._read_index_object(info.key, ident, new_index)
        except ObjectNotFoundError:
            continue
    candidates -= set(new_index.pack_ids())
    full = Index()
    for key in written:
        repo._read_index_object(key, bytes.fromhex(key[len(INDEX_PREFIX):]), full)
    cand_index = Index()
    for pack_id in candidates:
        cand_index.add_pack(pack_id, pack_entries.get(pack_id) or orphan_entries.get(pack_id) or [])
    needed: set[bytes] = set()

    def need(blob_id: bytes, blob_type: int) -> None:
        if blob_id not in full and blob_id not in new_index:
            loc = cand_index.lookup(blob_id)
            if loc is not None:
                needed.add(loc.pack_id)

    late_errors: list[str] = []
    lookup = _Combined(_Combined(full, new_index), cand_index)
    for sid in repo.snapshot_ids():
        if sid in seen_snapshots:
            continue
        try:
            doc = repo.load_snapshot(sid)
        except SnapshotNotFoundError:
            continue
        except RepositoryError as exc:
            result.damaged_snapshots.append(sid)
            result.deferred_packs += len(candidates)
            result.messages.append(f"snapshot {sid[:12]} (written during the prune) is unreadable ({exc}); "
                                   f"{len(candidates)} pack(s) kept")
            return False
        _walk_snapshot(repo, doc, lookup, need, set(), late_errors)  # type: ignore[arg-type]
    if needed:
        repo.write_index_object({p: pack_entries.get(p) or orphan_entries[p] for p in needed})
        result.rescued_packs += len(needed)
        candidates -= needed
    for pack_id in candidates:
        try:
            storage.delete(pack_key(pack_id))
            result.packs_deleted += 1
            result.bytes_freed += packs[pack_id].size if pack_id in packs else 0
        except ObjectLockedError:
            result.locked_skipped.append(pack_key(pack_id))
    return True


class _Combined:
    """Looks a blob up in one index, then another (read-only, for tree walks)."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def lookup(self, blob_id: bytes) -> Any:
        return self.first.lookup(blob_id) or self.second.lookup(blob_id)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self.first or blob_id in self.second


def _repack(repo: Repository, repack: Iterable[bytes], pack_entries: dict[bytes, list[BlobEntry]],
            used: set[bytes], keep: dict[bytes, list[BlobEntry]]) -> list[bytes]:
    """Copy the used blobs of sparse packs into new packs (added to ``keep``)."""
    import secrets

    from .crypto import FLAG_RAW
    from .format import PACK_MAGIC, encode_pack_header

    new_packs: list[bytes] = []
    buf = bytearray()
    entries: list[BlobEntry] = []
    copied: set[bytes] = set(b for es in keep.values() for e in es for b in (e.blob_id,))

    def flush() -> None:
        nonlocal buf, entries
        if not entries:
            return
        pack_id = secrets.token_bytes(32)
        header = repo.envelope.seal(BlobType.PACK_HEADER, pack_id, FLAG_RAW, encode_pack_header(entries))
        buf += header
        buf += PACK_TRAILER.pack(len(header), PACK_MAGIC)
        repo.storage.put(pack_key(pack_id), buf)
        keep[pack_id] = entries
        new_packs.append(pack_id)
        buf, entries = bytearray(), []

    for pack_id in repack:
        data = repo.storage.get(pack_key(pack_id))
        for e in pack_entries[pack_id]:
            if e.blob_id not in used or e.blob_id in copied:
                continue
            raw = data[e.offset:e.offset + e.length]
            what = f"pack {pack_id.hex()} blob {e.blob_id.hex()}"
            repo.envelope.open(e.blob_type, e.blob_id, raw, what=what)  # never copy damage
            entries.append(BlobEntry(e.blob_type, e.blob_id, len(buf), e.length, e.raw_length))
            buf += raw
            copied.add(e.blob_id)
            if len(buf) >= repo.pack_size:
                flush()
    flush()
    return new_packs


def _write_full_index(repo: Repository, keep: dict[bytes, list[BlobEntry]]) -> set[str]:
    written: set[str] = set()
    batch: dict[bytes, list[BlobEntry]] = {}
    seen: set[bytes] = set()
    for pack_id, entries in keep.items():
        unique = [e for e in entries if e.blob_id not in seen]
        seen.update(e.blob_id for e in unique)
        batch[pack_id] = unique
        if len(batch) >= REPAIR_BATCH_PACKS:
            written.add(repo.write_index_object(batch))
            batch = {}
    if batch:
        written.add(repo.write_index_object(batch))
    return written
