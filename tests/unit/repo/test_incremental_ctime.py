"""Issue 14 item 6: an incremental backup compares ctime, so an in-place change with the mtime put back
is read again (size, inode and mtime all equal the parent's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kubekeep.repo.repository import Repository


def test_same_size_same_inode_change_with_mtime_restored_is_backed_up(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "vol"
    src.mkdir()
    target = src / "db.bin"
    target.write_bytes(b"A" * 50_000)
    st = target.stat()
    first = repo.backup(src)

    time.sleep(0.02)  # ctime has at least the filesystem's timestamp granularity
    with open(target, "r+b") as fh:  # same inode, same size
        fh.write(b"B" * 50_000)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime cannot be
    after = target.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert after.st_ctime_ns != st.st_ctime_ns

    second = repo.backup(src, parent=first.snapshot_id)
    assert second.stats.unchanged_files == 0
    out = tmp_path / "out"
    repo.restore(second.snapshot_id, out)
    assert (out / "db.bin").read_bytes() == b"B" * 50_000


def test_untouched_file_is_still_reused(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "vol"
    src.mkdir()
    (src / "same.bin").write_bytes(b"S" * 20_000)
    first = repo.backup(src)
    second = repo.backup(src, parent=first.snapshot_id)
    assert second.stats.unchanged_files == 1
