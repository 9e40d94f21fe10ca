"""Replica mode: packs copied byte for byte, only those the destination lacks.

Source and destination share the master key (Repository.init_replica), so a pack
is valid in both. Every pack is authenticated from the source's bytes before it
is written (a corrupted source pack fails here, naming it), read back from the
destination and compared with the bytes that were authenticated, and only then
named by a destination index object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass

import blake3

from kubekeep.repo.format import BlobEntry, pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import ObjectExistsError, ObjectNotFoundError, Retention

from .verify import PackVerificationError, verify_pack

#: packs per destination index object
INDEX_BATCH = 64
#: packs in flight at once (each is held in memory while it moves: 16 MiB by default)
PACKS_IN_FLIGHT = 3


@dataclass
class PackStats:
    packs_copied: int = 0
    packs_skipped: int = 0
    #: packs a killed run had written but not indexed: verified where they are, not transferred again
    packs_adopted: int = 0
    bytes_copied: int = 0


def _move_pack(src: Repository, dst: Repository, pack_id: bytes, retention: Retention | None
               ) -> tuple[list[BlobEntry], int, bool]:
    """(entries, bytes written, adopted): one pack copied, or adopted when the destination holds it."""
    key = pack_key(pack_id)
    try:
        held = dst.storage.get(key)
    except ObjectNotFoundError:
        held = None
    if held is not None:  # written by a killed run (put is all-or-nothing): verify it where it is
        return verify_pack(dst, pack_id, held, where=dst.storage.url), 0, True
    try:
        raw = src.storage.get(key)
    except ObjectNotFoundError:
        raise PackVerificationError(f"pack {pack_id.hex()} is missing at {src.storage.url}") from None
    entries = verify_pack(src, pack_id, raw, where=src.storage.url)
    digest = blake3.blake3(raw).digest()
    with suppress(ObjectExistsError):  # another run wrote it meanwhile: the read-back below decides
        dst.storage.put(key, raw, retention=retention)
    del raw
    back = dst.storage.get(key)
    if blake3.blake3(back).digest() != digest:
        verify_pack(dst, pack_id, back, where=dst.storage.url)  # names what differs, if it is damage
        raise PackVerificationError(f"pack {pack_id.hex()} read back from {dst.storage.url} differs from the "
                                    "source's authenticated bytes")
    return entries, len(back), False


def copy_packs(src: Repository, dst: Repository, pack_ids: Iterable[bytes], *, retention: Retention | None,
               stats: PackStats, progress: Callable[[int], None] | None = None) -> None:
    """Copy the packs the destination's index lacks; index them there in batches as they are verified.

    ``pack_ids`` is consumed as packs can be taken (it may be fed by a walk still going on).
    A failure stops the copy and raises; the packs verified before it are indexed (they are complete and
    authentic), so a re-run moves only the rest.
    """
    indexed = dst.load_index(reload=True)

    def missing() -> Iterator[bytes]:
        for pack_id in pack_ids:
            if indexed.has_pack(pack_id):
                stats.packs_skipped += 1
            else:
                yield pack_id

    batch: dict[bytes, list[BlobEntry]] = {}

    def flush() -> None:
        if batch:
            dst.write_index_object(dict(batch), retention=retention)
            batch.clear()

    error: BaseException | None = None
    with ThreadPoolExecutor(PACKS_IN_FLIGHT, thread_name_prefix="kubekeep-drcopy") as pool:
        running: dict[Future[tuple[list[BlobEntry], int, bool]], bytes] = {}
        queue = missing()

        def fill() -> None:
            while error is None and len(running) < PACKS_IN_FLIGHT:
                pack_id = next(queue, None)
                if pack_id is None:
                    return
                running[pool.submit(_move_pack, src, dst, pack_id, retention)] = pack_id

        fill()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                pack_id = running.pop(fut)
                try:
                    entries, written, adopted = fut.result()
                except BaseException as exc:  # noqa: BLE001 - the first failure is raised after the others end
                    error = error or exc
                    continue
                batch[pack_id] = entries
                if adopted:
                    stats.packs_adopted += 1
                else:
                    stats.packs_copied += 1
                    stats.bytes_copied += written
                if progress is not None:
                    progress(written)
            fill()  # the next packs move while this thread writes the index object
            if len(batch) >= INDEX_BATCH:
                flush()
    flush()
    if error is not None:
        raise error
