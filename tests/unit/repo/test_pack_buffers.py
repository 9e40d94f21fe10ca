"""Pack buffers grow with what they hold: a small stream's backup does not allocate whole packs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from kubekeep.repo.repository import DEFAULT_PACK_SIZE
from kubekeep.repo.storage import FilesystemStorage
from tests.unit.repo.conftest import make_repo


def test_a_small_record_backup_does_not_allocate_a_whole_pack(tmp_path: Path) -> None:
    # every backup writes small records (the restore point record, signals); each of the saver's pack
    # buffers was a bytearray of the full pack size, zeroed (16 MiB of page faults per buffer touched)
    repo = make_repo(FilesystemStorage(tmp_path / "repo", create=True), pack_size=DEFAULT_PACK_SIZE)
    repo.backup(streams={"warm-up.json": [b"{}"]})
    tracemalloc.start()
    try:
        repo.backup(streams={"record.json": [b'{"id": "x"}' * 100]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert DEFAULT_PACK_SIZE >= 8 * 2**20
    assert peak < 4 * 2**20, f"a 1 KiB record's backup allocated {peak / 2**20:.1f} MiB at its peak"


def test_pack_buffers_still_fill_whole_packs(tmp_path: Path) -> None:
    repo = make_repo(FilesystemStorage(tmp_path / "repo", create=True), pack_size=2 * 2**20)
    root = tmp_path / "vol"
    root.mkdir()
    import random
    rng = random.Random(1)
    for i in range(6):
        (root / f"f{i}").write_bytes(rng.randbytes(1_000_000))
    repo.backup(root)
    sizes = sorted(p.stat().st_size for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    assert sizes[-1] >= 2 * 2**20 and len(sizes) <= 4, sizes  # ~6 MB of random data in packs of >= 2 MiB
