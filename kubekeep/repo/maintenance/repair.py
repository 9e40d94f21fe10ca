"""repair-index: rebuild the index from the pack headers, then drop the old index objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LockedError, RepositoryError
from ..format import INDEX_PREFIX, BlobEntry
from ..protocols import IndexObjects, RepairTarget
from ..repository_lock import read_locks
from ..storage import ObjectLockedError, StorageError

#: packs per index object written by repair-index and prune
INDEX_BATCH_PACKS = 1000


@dataclass
class RepairResult:
    packs_indexed: int = 0
    blobs_indexed: int = 0
    index_objects_written: int = 0
    index_objects_removed: int = 0
    unreadable_packs: list[str] = field(default_factory=list)


def repair_index(repo: RepairTarget) -> RepairResult:
    """Index every readable pack anew (excluded while a prune runs: it may be deleting them)."""
    result = RepairResult()
    lock = repo.lock("repair")
    try:
        others, _ = read_locks(repo.storage, repo.envelope)
        running = [lk for lk in others if lk.owner != lock.owner and lk.kind == "prune" and lk.live()]
        if running:  # indexing a pack a running prune is about to delete would lose data
            raise LockedError(f"a prune is running ({running[0].describe()}); try again later")
        old_keys = [i.key for i in repo.storage.list(INDEX_PREFIX)]
        batches = IndexBatches(repo)
        for pack_id, info in repo.list_packs().items():
            try:
                entries = repo.read_pack_header(pack_id, info.size)
            except (RepositoryError, StorageError) as exc:
                result.unreadable_packs.append(f"{pack_id.hex()}: {exc}")
                continue
            batches.add(pack_id, entries)
            result.packs_indexed += 1
            result.blobs_indexed += len(entries)
        result.index_objects_written = len(batches.finish())
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


class IndexBatches:
    """Writes the index objects of a new index as its packs come: INDEX_BATCH_PACKS packs per object.

    ``unique_blobs``: a blob stored in several packs is indexed in the first one only
    (prune's full index; it remembers every blob id until ``finish``)."""

    def __init__(self, repo: IndexObjects, *, unique_blobs: bool = False) -> None:
        self.repo = repo
        self.written: set[str] = set()
        self._batch: dict[bytes, list[BlobEntry]] = {}
        self._seen: set[bytes] | None = set() if unique_blobs else None

    def add(self, pack_id: bytes, entries: list[BlobEntry]) -> None:
        if self._seen is not None:
            entries = [e for e in entries if e.blob_id not in self._seen]
            self._seen.update(e.blob_id for e in entries)
        self._batch[pack_id] = entries
        if len(self._batch) >= INDEX_BATCH_PACKS:
            self._flush()

    def finish(self) -> set[str]:
        """Write the last batch; the keys of every index object written."""
        self._flush()
        return self.written

    def _flush(self) -> None:
        if self._batch:
            self.written.add(self.repo.write_index_object(self._batch))
            self._batch = {}
