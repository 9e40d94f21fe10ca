"""Volume signals read from a real repository (filesystem storage, small chunks): exact counts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.signals.volume import VolumeSignals, _Directory, extension, volume_signals
from tests.unit.repo.conftest import make_repo

WORDS = [b"order", b"shipped", b"to", b"berlin", b"invoice", b"paid", b"in", b"EUR", b"customer", b"premium",
         b"returned", b"lisbon", b"credit", b"note", b"open", b"overdue"]


def text(n: int, seed: int = 0) -> bytes:
    """Compressible text that does not repeat with a short period.

    Periodic data defeats content-defined chunking: with a chunker seed that finds no cut point in the
    period, every chunk is cut at the maximum size, so an overwrite shifts the cut grid for the rest of the
    file and nothing after it deduplicates (1 run in ~60 failed that way).
    """
    rng = random.Random(seed * 1_000_003 + n)
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 12))) + b" %d\n" % rng.randrange(10**6)
    return bytes(out[:n])


@pytest.mark.parametrize(("name", "ext"), [
    ("a.txt", "txt"), ("A.TXT", "txt"), ("archive.tar.gz", "gz"), ("app.log.3", "log"), ("app.log", "log"),
    ("README", ""), (".bashrc", ""), (".env.local", "local"), ("x.txt.locked", "locked"), ("db.2025-01-01", "?"),
    ("file.", "?"), ("weird.ext-with-dash", "?"), ("long.abcdefghijklmnopq", "?"), ("123", ""),
])
def test_extension(name: str, ext: str) -> None:
    assert extension(name) == ext


def test_extension_pairs_in_one_directory() -> None:
    d = _Directory()
    d.deleted = ["a.txt", "b.docx", "c.log", "app.log", "keep.me"]
    d.added = ["a.txt.locked", "b.encrypted", "c.log.1", "app.log.1", "new.bin"]
    # a.txt -> a.txt.locked (appended), b.docx -> b.encrypted (same stem); rotations keep the extension
    assert d.changed_extensions() == 2


def _repo(tmp_path: Path) -> Repository:
    return make_repo(FilesystemStorage(tmp_path / "repo", create=True))


def _volume(root: Path) -> None:
    rng = random.Random(5)
    for sub in ("docs", "db", "media", "logs"):
        (root / sub).mkdir(parents=True)
    for i in range(20):
        (root / "docs" / f"report-{i:02d}.txt").write_bytes(text(rng.randrange(3000, 30000)))
    for i in range(4):
        (root / "db" / f"table-{i}.dat").write_bytes(text(200_000))
    for i in range(5):
        (root / "media" / f"photo-{i}.jpg").write_bytes(rng.randbytes(20_000))
    (root / "logs" / "app.log").write_bytes(text(50_000))


def test_first_snapshot_is_all_added_and_builds_the_extension_histogram(tmp_path: Path) -> None:
    repo, root = _repo(tmp_path), tmp_path / "vol"
    _volume(root)
    first = repo.backup(root)
    sig = volume_signals(repo, first.snapshot_id, None, namespace="ns", pvc="data")
    assert sig.first
    assert (sig.files, sig.files_added, sig.files_changed, sig.files_deleted) == (30, 30, 0, 0)
    assert sig.extensions == {"txt": 20, "dat": 4, "jpg": 5, "log": 1}
    assert sig.new_extensions == [] and sig.dedup_ratio is None


def test_benign_and_hostile_changes_are_counted_exactly(tmp_path: Path) -> None:
    repo, root = _repo(tmp_path), tmp_path / "vol"
    _volume(root)
    first = repo.backup(root)
    before = volume_signals(repo, first.snapshot_id, None, namespace="ns", pvc="data")
    rng = random.Random(9)
    with open(root / "logs" / "app.log", "ab") as fh:  # appended: changed, little new content
        fh.write(text(3000))
    for i in range(2):  # encrypted in place: changed, high-entropy rewrite
        path = root / "docs" / f"report-{i:02d}.txt"
        path.write_bytes(rng.randbytes(path.stat().st_size))
    (root / "media" / "photo-0.jpg").write_bytes(rng.randbytes(20_000))  # random before and after: no rise
    os.utime(root / "db" / "table-0.dat")  # touched: no change
    (root / "docs" / "report-05.txt").unlink()  # deleted
    (root / "docs" / "report-06.txt").rename(root / "docs" / "report-06.txt.locked")  # extension changed (moved)
    (root / "docs" / "report-07.txt").rename(root / "docs" / "report-07.pdf")  # extension changed (moved)
    for sub in ("docs", "db", "media"):  # one identical small note in three existing directories
        (root / sub / "READ-ME-NOW.txt").write_bytes(b"pay up\n" * 40)
    (root / "fresh").mkdir()  # a new directory: its note does not count
    (root / "fresh" / "READ-ME-NOW.txt").write_bytes(b"pay up\n" * 40)
    second = repo.backup(root, parent=first.snapshot_id)
    sig = volume_signals(repo, second.snapshot_id, first.snapshot_id, namespace="ns", pvc="data",
                         previous_extensions=before.extensions)
    assert (sig.files_changed, sig.files_deleted, sig.files_added) == (4, 3, 6)
    assert (sig.files_moved, sig.extensions_changed) == (2, 2)
    assert sig.entropy_rise_files == 2
    assert sig.ransom_note_dirs == 3 and sig.ransom_note_example is not None
    assert sig.new_extensions == ["locked", "pdf"] and sig.new_extension_files == 2
    assert sig.extensions == {"txt": 21, "dat": 4, "jpg": 5, "log": 1, "locked": 1, "pdf": 1}
    assert sig.previous_files == 30 and sig.files == 33
    # the moved files' bytes were in the volume already: not new content
    assert sig.new_chunk_bytes < sig.bytes_added + sig.changed_files_bytes - sig.bytes_moved + 1
    assert 0.5 < sig.high_entropy_share <= 1.0
    # the same numbers when the previous histogram is not given (the previous tree is walked)
    walked = volume_signals(repo, second.snapshot_id, first.snapshot_id, namespace="ns", pvc="data")
    assert walked.extensions == sig.extensions and walked.new_extensions == sig.new_extensions


def test_encryption_drops_the_dedup_ratio_towards_one(tmp_path: Path) -> None:
    repo, root = _repo(tmp_path), tmp_path / "vol"
    _volume(root)
    first = repo.backup(root)
    with open(root / "db" / "table-1.dat", "r+b") as fh:  # a page rewritten: most chunks deduplicate
        fh.seek(100_000)
        fh.write(b"X" * 8192)
    second = repo.backup(root, parent=first.snapshot_id)
    benign = volume_signals(repo, second.snapshot_id, first.snapshot_id, namespace="ns", pvc="data")
    rng = random.Random(3)
    for path in sorted(root.rglob("*.dat")):
        path.write_bytes(rng.randbytes(path.stat().st_size))
    third = repo.backup(root, parent=second.snapshot_id)
    attack = volume_signals(repo, third.snapshot_id, second.snapshot_id, namespace="ns", pvc="data",
                            previous_dedup_ratio=benign.dedup_ratio)
    assert benign.dedup_ratio is not None and benign.dedup_ratio > 5
    assert attack.dedup_ratio is not None and attack.dedup_ratio < 1.1
    assert attack.dedup_ratio_change is not None and attack.dedup_ratio_change < -4
    assert attack.entropy_rise_files == 4 and attack.high_entropy_share > 0.99


def test_record_round_trip() -> None:
    sig = VolumeSignals(namespace="ns", pvc="p", snapshot_id="s", previous_snapshot_id=None, files=3,
                        new_extensions=["x"], extensions={"x": 3})
    assert VolumeSignals.from_dict({**sig.to_dict(), "a_field_from_a_newer_writer": 1}) == sig


def test_right_after_the_backup_the_diff_reads_no_tree_from_storage(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup that just ran kept the trees of the directories it changed (new and previous versions), so
    the signals step of the same run reads none of them again; another process reads them, with the same
    numbers."""
    from kubekeep.repo.blobs import BlobStore
    from kubekeep.repo.crypto import BlobType
    from tests.unit.repo.conftest import open_repo

    repo, root = _repo(tmp_path), tmp_path / "vol"
    _volume(root)
    first = repo.backup(root)
    before = volume_signals(repo, first.snapshot_id, None, namespace="ns", pvc="data")
    (root / "docs" / "report-03.txt").write_bytes(text(9000, seed=3))
    (root / "media" / "photo-1.jpg").unlink()
    (root / "fresh").mkdir()
    (root / "fresh" / "new.txt").write_bytes(text(4000, seed=4))
    second = repo.backup(root, parent=first.snapshot_id)

    read_types: list[int] = []
    envelope = BlobStore._read_envelope

    def counting(self: BlobStore, blob_id: bytes, index: object) -> object:
        found = envelope(self, blob_id, index)  # type: ignore[arg-type]
        read_types.append(found[0].blob_type)
        return found

    monkeypatch.setattr(BlobStore, "_read_envelope", counting)
    # as the backup flow calls it: with the previous point's extension histogram (no walk of the old tree)
    here = volume_signals(repo, second.snapshot_id, first.snapshot_id, namespace="ns", pvc="data",
                          previous_extensions=before.extensions)
    assert BlobType.TREE not in read_types
    assert (here.files_changed, here.files_deleted, here.files_added) == (1, 1, 1)

    read_types.clear()
    elsewhere = volume_signals(open_repo(FilesystemStorage(tmp_path / "repo")), second.snapshot_id,
                               first.snapshot_id, namespace="ns", pvc="data", previous_extensions=before.extensions)
    assert read_types.count(BlobType.TREE) >= 4  # root and the three changed directories, in both versions
    assert {**elsewhere.to_dict(), "seconds": 0} == {**here.to_dict(), "seconds": 0}
