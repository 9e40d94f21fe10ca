"""Copying one restore point to a second site: data, then its snapshots, verify, lock, and the record last.

Write order at the destination (docs/dr-copy.md): packs (each verified, then
indexed) -> the manifest and volume snapshots -> verification that everything
they reference is indexed and authentic -> Object Lock of every object they
need -> the restore-point record (the commit point: from here on the point is
visible) -> its lock. A run killed anywhere leaves no visible, partial restore
point, and a re-run moves only what is missing. Nothing is ever deleted at the
destination, and nothing at the destination is read back to the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from queue import SimpleQueue

from kubekeep.repo.crypto import KdfParams, KeyWrapper
from kubekeep.repo.errors import RepositoryError
from kubekeep.repo.format import SNAPSHOTS_PREFIX, pack_key
from kubekeep.repo.memory import keeping_freed_memory
from kubekeep.repo.reachability import Reachability, reachable, walk_snapshot
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import ObjectExistsError, Retention, RetentionMode, Storage
from kubekeep.restorepoint import read_restore_point
from kubekeep.restorepoint.object_lock import apply_retention

from .independent import Rewriter, Translation
from .points import PointRef, point_snapshots, restore_points
from .replica import PackStats, copy_packs
from .verify import verify_pack, verify_stored_pack

#: the kind of the lock a copy holds at its source while it reads it: shared (copies, backups and forgets
#: run together); a prune there waits for it before deleting packs (docs/repository-format.md, Concurrency)
SOURCE_LOCK = "copy"


class CopyMode(StrEnum):
    """How the destination holds the copy (docs/dr-copy.md, "Two modes")."""

    #: same master key (through the destination's own key slot), packs copied byte for byte
    REPLICA = "replica"
    #: the destination's own master key: blobs re-encrypted and deduplicated there
    INDEPENDENT = "independent"


class CopyError(RepositoryError):
    """A restore point that could not be copied; the message says which and why (a damaged pack, ...)."""


class DestinationMismatchError(RepositoryError):
    """The destination repository does not fit the mode asked for (a replica of another key, ...)."""


@dataclass(frozen=True)
class DestinationLock:
    """The destination's Object Lock: its mode, and days from the copy (never before the source's date)."""

    mode: RetentionMode
    days: int

    def retention(self, source_until: str | None, now: datetime | None = None) -> Retention:
        until = (now or datetime.now(UTC)) + timedelta(days=self.days)
        if source_until:
            until = max(until, datetime.fromisoformat(source_until))
        return self.mode, until


@dataclass
class PointCopy:
    """What copying one restore point did."""

    restore_point: str
    app: str
    status: str  # copied | skipped | failed
    snapshot_id: str = ""
    packs_copied: int = 0
    packs_skipped: int = 0
    packs_adopted: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    verified: bool = False
    locked_until: str | None = None
    error: str | None = None
    seconds: float = 0.0


# -- the destination repository ------------------------------------------------------------------


def init_destination(source: Repository, storage: Storage, mode: CopyMode, *, passphrase: str | None,
                     key_wrapper: KeyWrapper | None, kdf: KdfParams | None = None, create_location: bool = True,
                     object_lock: bool = False) -> Repository:
    """Create the destination repository in an empty location, as ``mode`` wants it.

    Replica: the source's master key through the destination's own key slot, and its
    chunker, cipher, compression and pack size. Independent: a master key of its own,
    with the source's chunker sizes, cipher, compression level and pack size.
    """
    if mode is CopyMode.REPLICA:
        return Repository.init_replica(source, storage, passphrase=passphrase, key_wrapper=key_wrapper, kdf=kdf,
                                       create_location=create_location, object_lock=object_lock)
    chunker = {k: v for k, v in source.config["chunker"].items()}
    return Repository.init(storage, passphrase=passphrase, key_wrapper=key_wrapper, kdf=kdf,
                           cipher=str(source.config["cipher"]), compression_level=source.compression_level,
                           chunker=chunker, pack_size=source.pack_size, create_location=create_location,
                           object_lock=object_lock)


def check_destination(source: Repository, destination: Repository, mode: CopyMode) -> None:
    """DestinationMismatchError unless ``destination`` can take copies of ``source`` in ``mode``."""
    if source.repository_id == destination.repository_id:
        raise DestinationMismatchError("the source and the destination are the same repository")
    shared = source.shares_master_key(destination)
    if mode is CopyMode.REPLICA and not shared:
        raise DestinationMismatchError(
            f"{destination.storage.url} has its own master key, so it is not a replica of {source.storage.url}: "
            "copy in independent mode, or give an empty destination")
    if mode is CopyMode.INDEPENDENT and shared:
        raise DestinationMismatchError(
            f"{destination.storage.url} is a replica of {source.storage.url} (same master key): copy in replica "
            "mode, or give an empty destination for an independent copy")


# -- one restore point ---------------------------------------------------------------------------


def copy_point(source: Repository, destination: Repository, point: PointRef, mode: CopyMode, *,
               lock: DestinationLock | None = None, present: dict[str, str] | None = None,
               progress: Callable[[int], None] | None = None) -> PointCopy:
    """Copy one restore point (skipped when the destination holds it). CopyError when it cannot be."""
    started = time.monotonic()
    have = present if present is not None else {p.restore_point: p.snapshot_id for p in restore_points(destination)}
    result = PointCopy(point.restore_point, point.app, "skipped")
    if point.restore_point in have:
        result.snapshot_id = have[point.restore_point]
        return result
    # the source's shared lock, then its index: a prune there deletes nothing this copy can still read
    # until the lock is released (it waits for it), and packs it took out of the index before are not seen
    try:
        source_lock = source.lock(SOURCE_LOCK)
    except RepositoryError as exc:
        raise CopyError(f"restore point {point.restore_point}: cannot take the source's shared lock at "
                        f"{source.storage.url}: {exc}") from None
    try:
        source.load_index(reload=True)
        # the blobs read and re-sealed reuse the pages of those before them; not with a remote site, where the
        # network sets the pace and the peak RSS is the budget to keep (as the restore)
        with keeping_freed_memory(when=not (source.storage.remote or destination.storage.remote)):
            return _copy_point(source, destination, point, mode, lock, progress, result, started)
    finally:
        source_lock.release()


def _copy_point(source: Repository, destination: Repository, point: PointRef, mode: CopyMode,
                lock: DestinationLock | None, progress: Callable[[int], None] | None, result: PointCopy,
                started: float) -> PointCopy:
    try:
        record = read_restore_point(source, point.snapshot_id)
    except (RepositoryError, ValueError) as exc:
        raise CopyError(f"restore point {point.restore_point}: its record cannot be read at the source: {exc}") \
            from None
    retention = lock.retention(record.retain_until) if lock else None
    data_snapshots = point_snapshots(record)
    repo_lock = destination.lock("backup")
    try:
        # verified before visible: everything the point's snapshots reference is indexed and was authenticated
        if mode is CopyMode.REPLICA:
            # the source's walk named every blob; each pack holding them was authenticated and read back
            # when it was indexed here (this run or an earlier one), under the same ids: no second walk
            blobs = _replica_data(source, destination, point, data_snapshots, retention, result, progress)
        else:
            # every blob the rewritten snapshots name was written by this copy (read back and authenticated)
            # or reused from what the destination holds (its saver's dedup, the previous copy's blobs and
            # whatever the trees and chunk lists reused whole name): each must be indexed there; the copied
            # trees are not walked again
            record_doc, blobs = _independent_data(source, destination, point, data_snapshots, retention, result,
                                                  progress)
        index = destination.index
        missing = [b for b in blobs if b not in index]
        problems = [f"{len(missing)} blob(s) it references are not indexed (blob {missing[0].hex()}, ...)"
                    ] if missing else []
        if problems:
            raise CopyError(f"restore point {point.restore_point}: the copy at {destination.storage.url} is "
                            f"incomplete ({'; '.join(problems[:3])}); nothing was committed, run the copy again")
        if retention is not None:
            _lock(destination, data_snapshots, retention, point)
        if mode is CopyMode.REPLICA:
            _copy_manifest(source, destination, point.snapshot_id, retention)
        else:
            _write_manifest(destination, record_doc, retention)
        read_restore_point(destination, point.snapshot_id)  # the committed record reads back
        if retention is not None:
            _lock(destination, [point.snapshot_id], retention, point)
            result.locked_until = retention[1].isoformat()
        result.verified = True
    except CopyError:
        raise
    except (RepositoryError, ValueError) as exc:
        raise CopyError(f"restore point {point.restore_point}: {exc}") from None
    finally:
        repo_lock.release()
    result.status = "copied"
    result.snapshot_id = point.snapshot_id
    result.seconds = time.monotonic() - started
    return result


def _lock(repo: Repository, snapshot_ids: list[str], retention: Retention, point: PointRef) -> None:
    report = apply_retention(repo, snapshot_ids, retention)
    if report.errors:
        raise CopyError(f"restore point {point.restore_point}: {len(report.errors)} object(s) could not be locked "
                        f"at {repo.storage.url}: " + "; ".join(report.errors[:3]))


def _replica_data(source: Repository, destination: Repository, point: PointRef, data_snapshots: list[str],
                  retention: Retention | None, result: PointCopy, progress: Callable[[int], None] | None
                  ) -> set[bytes]:
    """Copy the packs the point needs and its data snapshots; every blob the point references.

    The walk of the point at the source runs on a thread of its own and hands each pack over as it meets
    it, so packs move (and the destination's index is read) while it goes on. A point found damaged at the
    source is not committed; the packs verified before that are indexed, as after a killed run."""
    found: SimpleQueue[bytes | None] = SimpleQueue()

    def walk() -> Reachability:
        try:
            return reachable(source, [*data_snapshots, point.snapshot_id], index=source.index, on_pack=found.put)
        finally:
            found.put(None)

    stats = PackStats()
    with ThreadPoolExecutor(1, thread_name_prefix="kubekeep-drcopy-walk") as pool:
        walking = pool.submit(walk)
        try:  # on a failure here the walk still ends on its own (the pool waits for it)
            copy_packs(source, destination, iter(found.get, None), retention=retention, stats=stats,
                       progress=progress)
        finally:
            result.packs_copied, result.packs_skipped = stats.packs_copied, stats.packs_skipped
            result.packs_adopted, result.bytes_copied = stats.packs_adopted, stats.bytes_copied
        reach = walking.result()
    if not reach.ok:
        problems = [f"{sid}: {e}" for sid, e in reach.unreadable.items()] + reach.errors
        raise CopyError(f"restore point {point.restore_point} is damaged at the source {source.storage.url}: "
                        + "; ".join(problems[:3]))
    for sid in data_snapshots:
        result.bytes_copied += _copy_manifest(source, destination, sid, retention)
    return reach.blobs


def _copy_manifest(source: Repository, destination: Repository, sid: str, retention: Retention | None) -> int:
    """Copy a snapshot manifest byte for byte (replica), authenticated first; the bytes written."""
    raw = source.storage.get(SNAPSHOTS_PREFIX + sid)
    source.decode_snapshot(sid, raw, what=f"snapshot {sid} at {source.storage.url}")
    written = len(raw)
    try:
        destination.storage.put(SNAPSHOTS_PREFIX + sid, raw, retention=retention)
    except ObjectExistsError:
        written = 0  # a killed run wrote it: read back like a new one
    destination.load_snapshot(sid)
    return written


def _write_manifest(destination: Repository, doc: dict[str, object], retention: Retention | None) -> None:
    with suppress(ObjectExistsError):  # a killed run wrote it (same id, same blobs): read back below
        destination.write_snapshot(dict(doc), retention=retention)
    destination.load_snapshot(str(doc["id"]))


def _adopt_unindexed(destination: Repository) -> int:
    """Index the complete packs a killed run left unindexed (verified first), so their blobs are reused."""
    index = destination.load_index(reload=True)
    packs = {}
    for pack_id in destination.list_packs():
        if not index.has_pack(pack_id):
            raw = destination.storage.get(pack_key(pack_id))
            packs[pack_id] = verify_pack(destination, pack_id, raw, where=destination.storage.url)
    if packs:
        destination.write_index_object(packs)
    return len(packs)


def _independent_data(source: Repository, destination: Repository, point: PointRef, data_snapshots: list[str],
                      retention: Retention | None, result: PointCopy, progress: Callable[[int], None] | None
                      ) -> tuple[dict[str, object], set[bytes]]:
    """Re-encrypt the point's snapshots into the destination; write the data snapshots; return the record's
    manifest (written last by the caller) and the destination ids of every blob the rewrite wrote or reused."""
    translation = Translation()
    previous = restore_points(destination, app=point.app)
    if previous:  # the newest copy of this app: what it shares with this point is not moved again
        last = previous[-1]
        try:
            prev_record = read_restore_point(destination, last.snapshot_id)
            for sid in point_snapshots(prev_record):
                translation.learn(source, destination, sid)
        except (RepositoryError, ValueError):
            pass  # an unreadable older copy only costs a full copy
    result.packs_adopted = _adopt_unindexed(destination)
    before = set(destination.load_index(reload=True).pack_ids())
    rewriter = Rewriter(source, destination, translation, retention=retention, progress=progress)
    ok = False
    try:
        docs = [rewriter.snapshot(source.load_snapshot(sid)) for sid in [*data_snapshots, point.snapshot_id]]
        ok = True
    finally:
        rewriter.close(ok)
    new_packs = sorted(set(destination.index.pack_ids()) - before)

    # every pack written is read back and each blob in it authenticated with the destination's key, a few
    # MiB at a time (not whole packs: memory)
    def read_back(pack_id: bytes) -> int:
        return verify_stored_pack(destination, pack_id, where=destination.storage.url)[1]

    with ThreadPoolExecutor(2, thread_name_prefix="kubekeep-drcopy-verify") as pool:
        result.bytes_copied = sum(pool.map(read_back, new_packs))
    result.packs_copied = len(new_packs)
    result.blobs_copied = rewriter.blobs_read
    for doc in docs[:-1]:
        _write_manifest(destination, doc, retention)
    return docs[-1], rewriter.named | _reused_below(destination, rewriter.reused_trees, rewriter.reused_lists)


def _reused_below(destination: Repository, trees: set[bytes], lists: set[bytes]) -> set[bytes]:
    """Every blob under the trees and chunk lists an independent copy reused whole from an earlier copy
    (read at the destination: they are its blobs); unreadable ones raise CopyError."""
    found: set[bytes] = set()
    errors: list[str] = []
    seen: set[bytes] = set()

    def visit(blob_id: bytes, _blob_type: int) -> None:
        found.add(blob_id)

    reused = {"lists": [b.hex() for b in sorted(lists)]}
    docs = [{"id": "reused", "tree": t.hex()} for t in sorted(trees)] + [{"id": "reused", "streams": {"": reused}}]
    for doc in docs:
        walk_snapshot(destination, doc, destination.index, visit, seen, errors)
    if errors:
        raise CopyError(f"what an earlier copy wrote at {destination.storage.url} cannot be read: "
                        + "; ".join(errors[:3]))
    return found
