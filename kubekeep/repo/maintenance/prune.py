"""prune: drop snapshots and delete what no snapshot needs (docs/repository-format.md, "Concurrency").

Mark what the remaining snapshots reach (reachability.py), repack sparse packs,
write a full new index, record the packs leaving it, drop the old index objects,
wait for every operation that may have read them, then sweep: delete the
candidates no index names and no snapshot written meanwhile needs.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from ..crypto import BlobType
from ..errors import LockedError, RepositoryError, SnapshotNotFoundError
from ..format import INDEX_PREFIX, PRUNE_PREFIX, SNAPSHOTS_PREFIX, BlobEntry, id_from_key, pack_key
from ..index import Index, Location
from ..protocols import IndexView, PruneTarget
from ..reachability import reachable
from ..repository_lock import LockInfo, RepositoryLock, read_locks, remove_locks
from ..storage import ObjectInfo, ObjectLockedError, ObjectNotFoundError, StorageError
from .repair import IndexBatches

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


def read_prune_records(repo: PruneTarget) -> tuple[list[PruneRecord], list[str]]:
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


def _write_prune_record(repo: PruneTarget, owner: str, deadline: datetime, packs: Iterable[bytes]) -> str:
    ident = secrets.token_bytes(32)
    key = PRUNE_PREFIX + ident.hex()
    doc = {"version": 1, "owner": owner, "written": datetime.now(UTC).isoformat(),
           "deadline": deadline.isoformat(), "packs": sorted(p.hex() for p in packs)}
    repo.storage.put(key, repo.seal_object(BlobType.PRUNE_RECORD, ident, json.dumps(doc).encode()))
    return key


def prune(repo: PruneTarget, drop: list[str], *, repack_threshold: float, wait_timeout: float,
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


def _prune(repo: PruneTarget, drop: list[str], repack_threshold: float, wait_timeout: float, poll: float,
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
                repo.read_index_object(key, ident, index)
            except ObjectNotFoundError:
                continue
    packs = repo.list_packs()
    orphan_entries: dict[bytes, list[BlobEntry]] = {}
    for pack_id, info in packs.items():
        if not index.has_pack(pack_id):
            try:
                orphan_entries[pack_id] = repo.read_pack_header(pack_id, info.size)
            except (RepositoryError, StorageError):
                orphan_entries[pack_id] = []  # unreadable: garbage
    orphan_index = Index()
    for pack_id, entries in orphan_entries.items():
        orphan_index.add_pack(pack_id, entries)

    seen_snapshots = set(repo.snapshot_ids())
    reach = reachable(repo, sorted(seen_snapshots), index=_Combined(index, orphan_index))
    for sid, exc in reach.unreadable.items():
        if not isinstance(exc, SnapshotNotFoundError):
            result.damaged_snapshots.append(sid)
            result.messages.append(f"snapshot {sid[:12]} is unreadable ({exc})")
    if result.damaged_snapshots:
        # An unreadable manifest may reference any blob: deleting or repacking anything
        # could destroy the data it names. Keep all data until it is repaired or dropped.
        result.messages.append(
            f"{len(result.damaged_snapshots)} unreadable snapshot(s): no data was deleted or repacked while "
            "they exist; `kubekeep repo check` names them, `kubekeep repo prune <id>` drops one")
        return
    if reach.read_errors:
        raise RepositoryError("prune stopped, the repository has errors (run check): "
                              + "; ".join(reach.read_errors[:5]))
    used = reach.blobs

    # per pack: used and total bytes; orphans holding used blobs are rescued as live packs
    pack_entries: dict[bytes, list[BlobEntry]] = {}
    for loc in index:
        pack_entries.setdefault(loc.pack_id, []).append(loc.entry)
    for entries in pack_entries.values():  # the index iterates in id order; a repack copies in pack order
        entries.sort(key=attrgetter("offset"))
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
    _keep_locked(repo, repack, pack_entries, keep, result)

    # repack: copy live envelopes verbatim (aad binds blob id, not pack) into new packs
    _repack(repo, repack, pack_entries, used, keep)
    result.packs_repacked = len(repack)
    candidates.update(repack)

    # a new full index: every blob of every kept pack (each blob once); then the packs about to
    # leave the index are recorded before the old index objects go (moment M)
    batches = IndexBatches(repo, unique_blobs=True)
    for pack_id, entries in keep.items():
        batches.add(pack_id, entries)
    written = batches.finish()
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
                               f"prune, {len(deletable)} unindexed pack(s) older than them reclaimed (waited "
                               f"{wait_timeout:g} s for: " + "; ".join(lk.describe() for lk in still[:3]) + ")")
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


def _sweep_and_delete(repo: PruneTarget, candidates: set[bytes], written: set[str], seen_snapshots: set[str],
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
            repo.read_index_object(info.key, ident, new_index)
        except ObjectNotFoundError:
            continue
    candidates -= set(new_index.pack_ids())
    full = Index()
    for key in written:
        repo.read_index_object(key, bytes.fromhex(key[len(INDEX_PREFIX):]), full)
    cand_index = Index()
    for pack_id in candidates:
        cand_index.add_pack(pack_id, pack_entries.get(pack_id) or orphan_entries.get(pack_id) or [])
    # blobs found in the new indexes resolve there, so the candidates a new snapshot reaches are needed
    new_snapshots = [sid for sid in repo.snapshot_ids() if sid not in seen_snapshots]
    late = reachable(repo, new_snapshots, index=_Combined(_Combined(full, new_index), cand_index))
    for sid, exc in late.unreadable.items():
        if not isinstance(exc, SnapshotNotFoundError):
            result.damaged_snapshots.append(sid)
            result.deferred_packs += len(candidates)
            result.messages.append(f"snapshot {sid[:12]} (written during the prune) is unreadable ({exc}); "
                                   f"{len(candidates)} pack(s) kept")
            return False
    needed = late.packs & candidates
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

    def __init__(self, first: IndexView, second: IndexView) -> None:
        self.first, self.second = first, second

    def lookup(self, blob_id: bytes) -> Location | None:
        return self.first.lookup(blob_id) or self.second.lookup(blob_id)

    def pack_of(self, blob_id: bytes) -> bytes | None:
        return self.first.pack_of(blob_id) or self.second.pack_of(blob_id)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self.first or blob_id in self.second


def _keep_locked(repo: PruneTarget, repack: list[bytes], pack_entries: dict[bytes, list[BlobEntry]],
                 keep: dict[bytes, list[BlobEntry]], result: PruneResult) -> None:
    """Leave sparse packs under Object Lock as they are: the original could not be deleted, so a repacked
    copy would store their live blobs twice until the lock ends. A later prune repacks them."""
    if not repack or not repo.storage.supports_retention:
        return
    now = datetime.now(UTC)
    locked = []
    for pack_id in repack:
        try:
            until = repo.storage.stat(pack_key(pack_id)).retain_until
        except ObjectNotFoundError:
            continue
        if until is not None and until > now:
            locked.append(pack_id)
    for pack_id in locked:
        repack.remove(pack_id)
        keep[pack_id] = pack_entries[pack_id]
    if locked:
        result.messages.append(f"{len(locked)} sparse pack(s) under Object Lock left as they are (repacking them "
                               "would store their live blobs twice until the lock ends)")


def _repack(repo: PruneTarget, repack: Iterable[bytes], pack_entries: dict[bytes, list[BlobEntry]],
            used: set[bytes], keep: dict[bytes, list[BlobEntry]]) -> list[bytes]:
    """Copy the used blobs of sparse packs into new packs (added to ``keep``)."""
    new_packs: list[bytes] = []
    buf = bytearray()
    entries: list[BlobEntry] = []
    copied: set[bytes] = {e.blob_id for es in keep.values() for e in es}

    def flush() -> None:
        nonlocal buf, entries
        if not entries:
            return
        pack_id = secrets.token_bytes(32)
        buf += repo.pack_tail(pack_id, entries)
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
