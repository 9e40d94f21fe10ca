"""DR copy core (kubekeep.drcopy) between two filesystem repositories: both modes, incremental,
verified before visible, resumable, one-way. S3 sites, Object Lock and the flow: tests/integration/test_dr_copy*.py."""

from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from kubekeep.drcopy import (
    CopyError,
    CopyMode,
    DestinationMismatchError,
    PointCopy,
    check_destination,
    choose_points,
    copy_point,
    init_destination,
    present_points,
    verify,
)
from kubekeep.drcopy.points import point_snapshots
from kubekeep.repo.crypto import BlobType, KdfParams
from kubekeep.repo.format import DATA_PREFIX, INDEX_PREFIX, BlobEntry, pack_key
from kubekeep.repo.reachability import reachable
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restorepoint import read_restore_point
from tests.unit.drcopy.helpers import dir_bytes, make_point, tree_digest
from tests.unit.repo.conftest import PASSWORD, fast_retry, make_repo, open_repo

OTHER_PASSWORD = "the destination's own passphrase"
MODES = [CopyMode.REPLICA, CopyMode.INDEPENDENT]


def volume(root: Path, seed: int = 1, size: int = 3 * 1024 * 1024) -> Path:
    rng = random.Random(seed)
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(rng.randbytes(size))
    (root / "sub" / "small.txt").write_text("hello\n" * 100)
    (root / "sub" / "dup.bin").write_bytes((root / "big.bin").read_bytes()[:200_000])
    return root


def change_one_percent(root: Path, seed: int = 2) -> int:
    """Overwrite 1 % of big.bin in place; the bytes changed."""
    data = bytearray((root / "big.bin").read_bytes())
    n = len(data) // 100
    at = len(data) // 2
    data[at:at + n] = random.Random(seed).randbytes(n)
    (root / "big.bin").write_bytes(bytes(data))
    return n


def open_dest(path: Path) -> Repository:
    return Repository.open(fast_retry(FilesystemStorage(path)), passphrase=OTHER_PASSWORD)


def new_dest(src: Repository, path: Path, mode: CopyMode) -> Repository:
    return init_destination(src, fast_retry(FilesystemStorage(path, create=True)), mode, passphrase=OTHER_PASSWORD,
                            key_wrapper=None, kdf=KdfParams.cheap())


def copy_all(src: Repository, dst: Repository, mode: CopyMode) -> list[str]:
    present = present_points(dst)
    return [copy_point(src, dst, p, mode, present=present).status for p in choose_points(src, all_points=True)]


@pytest.fixture
def src(tmp_path: Path) -> Repository:
    return make_repo(FilesystemStorage(tmp_path / "a", create=True))


@pytest.mark.parametrize("mode", MODES)
def test_copy_restores_from_the_destination_alone_and_skips_what_is_there(tmp_path: Path, src: Repository,
                                                                        mode: CopyMode) -> None:
    vol = volume(tmp_path / "vol")
    make_point(src, vol, "shop-1")
    dst = new_dest(src, tmp_path / "b", mode)
    assert dst.shares_master_key(src) is (mode is CopyMode.REPLICA)
    assert dst.chunker_params["avg_size"] == src.chunker_params["avg_size"]
    assert copy_all(src, dst, mode) == ["copied"]
    assert copy_all(src, dst, mode) == ["skipped"]
    dst.close()
    # site A gone entirely: the destination opens with its own passphrase and restores byte for byte
    shutil.rmtree(tmp_path / "a")
    dst = open_dest(tmp_path / "b")
    (sid,) = present_points(dst).values()
    record = read_restore_point(dst, sid)
    dst.restore(record.volumes[0].snapshot_id or "", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(vol)
    assert dst.check(read_data=True).ok


@pytest.mark.parametrize("mode", MODES)
def test_an_incremental_copy_moves_at_most_the_new_unique_bytes_plus_one_percent(tmp_path: Path, src: Repository,
                                                                                mode: CopyMode) -> None:
    vol = volume(tmp_path / "vol")
    make_point(src, vol, "shop-1")
    dst = new_dest(src, tmp_path / "b", mode)
    copy_all(src, dst, mode)
    change_one_percent(vol)
    before_src, before_dst = dir_bytes(tmp_path / "a" / "data"), dir_bytes(tmp_path / "b" / "data")
    make_point(src, vol, "shop-2")
    new_unique = dir_bytes(tmp_path / "a" / "data") - before_src  # the new packs the incremental backup wrote
    assert copy_all(src, dst, mode) == ["skipped", "copied"]
    moved = dir_bytes(tmp_path / "b" / "data") - before_dst
    print(f"{mode}: new unique bytes at the source {new_unique}, pack bytes written at the destination {moved}")
    assert 0 < moved <= new_unique * 1.01
    sid = present_points(dst)["shop-2"]
    dst.restore(read_restore_point(dst, sid).volumes[0].snapshot_id or "", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(vol)


@pytest.mark.parametrize("mode", MODES)
def test_a_corrupted_source_pack_fails_that_point_naming_the_pack_and_commits_nothing(
        tmp_path: Path, src: Repository, mode: CopyMode) -> None:
    vol = volume(tmp_path / "vol")
    make_point(src, vol, "shop-1")
    packs = sorted((tmp_path / "a" / "data").rglob("*"), key=lambda p: -p.stat().st_size if p.is_file() else 0)
    victim = packs[0]
    os.chmod(victim, 0o600)
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0x01
    victim.write_bytes(bytes(raw))
    dst = new_dest(src, tmp_path / "b", mode)
    (point,) = choose_points(src, all_points=True)
    with pytest.raises(CopyError) as err:
        copy_point(src, dst, point, mode)
    assert victim.name in str(err.value)
    assert present_points(dst) == {}
    assert dst.snapshot_ids() == [] or mode is CopyMode.INDEPENDENT and \
        point.snapshot_id not in dst.snapshot_ids()


class _DiesAfter(FilesystemStorage):
    """A destination that fails (like a killed process) after ``n`` packs were written."""

    def __init__(self, path: Path, n: int) -> None:
        super().__init__(path)
        self.left = n

    def put(self, key: str, data: bytes | bytearray | memoryview, **kw: object) -> None:  # type: ignore[override]
        if key.startswith(DATA_PREFIX):
            if self.left <= 0:
                raise KeyboardInterrupt("killed")
            self.left -= 1
        super().put(key, data, **kw)  # type: ignore[arg-type]


def _pack_count(path: Path) -> int:
    return sum(1 for p in (path / "data").rglob("*") if p.is_file())


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_copy_is_resumed_moving_only_the_rest_without_duplicates(tmp_path: Path, src: Repository,
                                                                          mode: CopyMode) -> None:
    vol = volume(tmp_path / "vol", size=6 * 1024 * 1024)
    make_point(src, vol, "shop-1")
    new_dest(src, tmp_path / "b", mode).close()
    (point,) = choose_points(src, all_points=True)
    for n in (3, 9):  # killed twice, later each time
        dst = Repository.open(_DiesAfter(tmp_path / "b", n), passphrase=OTHER_PASSWORD, retry=False)
        with pytest.raises(KeyboardInterrupt):
            copy_point(src, dst, point, mode)
        assert present_points(dst) == {}  # nothing visible
        dst.unlock(remove_all=True)
    written = _pack_count(tmp_path / "b")
    dst = open_dest(tmp_path / "b")
    result = copy_point(src, dst, point, mode)
    assert result.status == "copied" and result.verified
    assert result.packs_adopted > 0 or result.packs_skipped > 0
    if mode is CopyMode.REPLICA:  # the same pack ids: nothing moves twice, nothing is left over
        assert _pack_count(tmp_path / "b") == _pack_count(tmp_path / "a")
        assert result.packs_copied == _pack_count(tmp_path / "a") - written
    check = dst.check(read_data=True)
    assert check.ok, check
    dst.restore(read_restore_point(dst, result.snapshot_id).volumes[0].snapshot_id or "", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(vol)


def test_a_destination_of_the_other_mode_is_refused(tmp_path: Path, src: Repository) -> None:
    replica = new_dest(src, tmp_path / "r", CopyMode.REPLICA)
    independent = new_dest(src, tmp_path / "i", CopyMode.INDEPENDENT)
    check_destination(src, replica, CopyMode.REPLICA)
    check_destination(src, independent, CopyMode.INDEPENDENT)
    with pytest.raises(DestinationMismatchError, match="own master key"):
        check_destination(src, independent, CopyMode.REPLICA)
    with pytest.raises(DestinationMismatchError, match="replica"):
        check_destination(src, replica, CopyMode.INDEPENDENT)
    with pytest.raises(DestinationMismatchError, match="same repository"):
        check_destination(src, src, CopyMode.REPLICA)


def test_a_point_deleted_at_the_source_stays_at_the_destination(tmp_path: Path, src: Repository) -> None:
    vol = volume(tmp_path / "vol")
    make_point(src, vol, "shop-1")
    dst = new_dest(src, tmp_path / "b", CopyMode.REPLICA)
    copy_all(src, dst, CopyMode.REPLICA)
    src.prune(drop=list(src.snapshot_ids()), leftover_age=0)
    assert choose_points(src, all_points=True) == []
    assert list(present_points(dst)) == ["shop-1"]
    assert dst.check(read_data=True).ok




class _Gate(FilesystemStorage):
    """A source whose first pack read waits until the test opens the gate (a copy paused mid-way)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reading = threading.Event()
        self.go = threading.Event()

    def _pause(self, key: str) -> None:
        if key.startswith(DATA_PREFIX) and not self.go.is_set():
            self.reading.set()
            self.go.wait(60)

    def get(self, key: str) -> bytes:
        self._pause(key)
        return super().get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._pause(key)
        return super().get_range(key, offset, length)


@pytest.mark.parametrize("mode", MODES)
def test_a_prune_at_the_source_waits_for_a_running_copy_which_completes(tmp_path: Path, src: Repository,
                                                                         mode: CopyMode) -> None:
    """The copy holds the source's shared lock: a prune that repacks the packs the copy is about to read
    does not delete them until the copy is done (without the lock the copy fails, a pack gone)."""
    vol = volume(tmp_path / "vol")
    old_sid = make_point(src, vol, "shop-1")
    old = read_restore_point(src, old_sid)
    change_one_percent(vol)
    make_point(src, vol, "shop-2")
    dst = new_dest(src, tmp_path / "b", mode)
    gate = _Gate(tmp_path / "a")
    copier = Repository.open(fast_retry(gate), passphrase=PASSWORD)
    point = choose_points(copier, restore_point="shop-2")[0]
    copied: dict[str, object] = {}

    def run_copy() -> None:
        try:
            copied["result"] = copy_point(copier, dst, point, mode)
        except Exception as exc:  # noqa: BLE001 - asserted below
            copied["error"] = exc

    copy_thread = threading.Thread(target=run_copy)
    copy_thread.start()
    assert gate.reading.wait(30), "the copy never read a pack"
    pruner = Repository.open(fast_retry(FilesystemStorage(tmp_path / "a")), passphrase=PASSWORD)
    pruned: dict[str, object] = {}
    prune_done = threading.Event()

    def run_prune() -> None:
        # shop-1 dropped, every pack holding one of its blobs repacked: packs shop-2 needs are replaced
        pruned["result"] = pruner.prune([*point_snapshots(old), old_sid],
                                        repack_threshold=1.0, wait_timeout=60, poll=0.05, leftover_age=0)
        prune_done.set()

    prune_thread = threading.Thread(target=run_prune)
    prune_thread.start()
    waited = not prune_done.wait(1.5)
    gate.go.set()
    copy_thread.join(60)
    prune_thread.join(60)
    assert waited, "prune must wait while a copy holds the source's lock"
    assert "error" not in copied, copied.get("error")
    result = copied["result"]
    assert isinstance(result, PointCopy) and result.status == "copied" and result.verified
    assert prune_done.is_set()
    assert pruned["result"].packs_repacked >= 1  # type: ignore[attr-defined]
    assert [p.restore_point for p in choose_points(pruner, all_points=True)] == ["shop-2"]
    assert open_dest(tmp_path / "b").check(read_data=True).ok
    dst.restore(read_restore_point(dst, result.snapshot_id).volumes[0].snapshot_id or "", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(vol)


def test_a_stored_pack_is_verified_a_few_mib_at_a_time_and_damage_is_named(tmp_path: Path, src: Repository,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    vol = volume(tmp_path / "vol")
    make_point(src, vol, "shop-1")
    monkeypatch.setattr(verify, "READ_BACK_BYTES", 20_000)  # several reads per pack
    packs = sorted(p for p in (tmp_path / "a" / "data").rglob("*") if p.is_file())
    for path in packs:
        entries, size = verify.verify_stored_pack(src, bytes.fromhex(path.name), where="A")
        assert size == path.stat().st_size and entries
    victim = max(packs, key=lambda p: p.stat().st_size)
    os.chmod(victim, 0o600)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    with pytest.raises(verify.PackVerificationError, match=victim.name):
        verify.verify_stored_pack(src, bytes.fromhex(victim.name), where="A")


class _CountingStorage(FilesystemStorage):
    """A filesystem that counts the ranged reads of packs (how many requests an S3 source would get)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pack_reads = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if key.startswith(DATA_PREFIX):
            self.pack_reads += 1
        return super().get_range(key, offset, length)

    def get_range_into(self, key: str, offset: int, buffer: memoryview) -> int:
        if key.startswith(DATA_PREFIX):
            self.pack_reads += 1
        return super().get_range_into(key, offset, buffer)


def test_an_independent_copy_reads_source_packs_in_runs_not_blob_by_blob(tmp_path: Path, src: Repository) -> None:
    """One ranged read per blob is one GET per ~100 KiB against an S3 source; blobs are read in runs of a pack."""
    make_point(src, volume(tmp_path / "vol", size=4 * 1024 * 1024), "shop-1")
    src.close()
    counting = _CountingStorage(tmp_path / "a")
    source = open_repo(counting)
    dst = new_dest(source, tmp_path / "b", CopyMode.INDEPENDENT)
    (point,) = choose_points(source, all_points=True)
    result = copy_point(source, dst, point, CopyMode.INDEPENDENT, present=present_points(dst))
    assert result.status == "copied" and result.blobs_copied >= 20
    assert counting.pack_reads < result.blobs_copied / 2, (counting.pack_reads, result.blobs_copied)
    dst.restore(read_restore_point(dst, present_points(dst)["shop-1"]).volumes[0].snapshot_id or "", tmp_path / "o")
    assert tree_digest(tmp_path / "o") == tree_digest(tmp_path / "vol")


def test_an_independent_copy_checks_its_result_against_the_index_without_walking_it_again(
        tmp_path: Path, src: Repository) -> None:
    """Every blob the rewrite produced or reused is looked up in the destination's index (the read-back
    authenticated the new ones): the copied trees are not read back a second time by a walk."""
    make_point(src, volume(tmp_path / "vol"), "shop-1")
    dst = new_dest(src, tmp_path / "b", CopyMode.INDEPENDENT)
    reads: list[bytes] = []
    read_blob = dst.read_blob

    def counted(blob_id: bytes, **kwargs: Any) -> bytes:
        reads.append(blob_id)
        return read_blob(blob_id, **kwargs)

    dst.read_blob = counted  # type: ignore[method-assign]
    assert copy_all(src, dst, CopyMode.INDEPENDENT) == ["copied"]
    assert reads == []
    dst.close()
    dst = open_dest(tmp_path / "b")
    dst.restore(read_restore_point(dst, present_points(dst)["shop-1"]).volumes[0].snapshot_id or "", tmp_path / "o")
    assert tree_digest(tmp_path / "o") == tree_digest(tmp_path / "vol")


@pytest.mark.parametrize("added", ["keep/new.txt", "new.txt"])
def test_data_the_destination_lost_since_the_last_copy_fails_the_next_one_and_commits_nothing(
        tmp_path: Path, src: Repository, added: str) -> None:
    """The next independent copy reuses what the previous copy wrote (its chunks are not moved again, an
    unchanged directory's tree is reused whole); when the destination no longer indexes some of it, the point
    is not committed. keep/new.txt: every directory is rewritten; new.txt: keep/ is reused whole."""
    vol = tmp_path / "vol"
    (vol / "keep").mkdir(parents=True)
    (vol / "top.bin").write_bytes(random.Random(5).randbytes(1024 * 1024))
    (vol / "keep" / "inner.bin").write_bytes(random.Random(6).randbytes(1024 * 1024))
    make_point(src, vol, "shop-1")
    dst = new_dest(src, tmp_path / "b", CopyMode.INDEPENDENT)
    assert copy_all(src, dst, CopyMode.INDEPENDENT) == ["copied"]
    # the destination loses its data packs and their index entries (its trees stay readable)
    packs: dict[bytes, list[BlobEntry]] = {}
    for loc in dst.load_index(reload=True):
        packs.setdefault(loc.pack_id, []).append(loc.entry)
    # keep/inner.bin's chunks only: not the packs of the point's record and manifests (the next copy reads
    # them to find what it can reuse), nor those holding top.bin's chunks
    record_sid = present_points(dst)["shop-1"]
    record = read_restore_point(dst, record_sid)
    kept = set(reachable(dst, [record_sid, record.manifest_snapshot]).packs)
    root = dst.load_tree(bytes.fromhex(dst.load_snapshot(record.volumes[0].snapshot_id or "")["tree"]))
    top = set(dst.content_chunks(next(e for e in root if e["name"] == "top.bin")["content"]))
    lost = {p for p, entries in packs.items() if p not in kept
            and all(e.blob_type == BlobType.DATA and e.blob_id not in top for e in entries)}
    assert lost
    old_keys = [info.key for info in dst.storage.list(INDEX_PREFIX)]
    dst.write_index_object({p: e for p, e in packs.items() if p not in lost})
    for key in [*old_keys, *(pack_key(p) for p in lost)]:
        dst.storage.delete(key)
    dst.close()
    (vol / added).write_text("a new file\n")  # the other files are unchanged: their chunks are reused
    make_point(src, vol, "shop-2")
    dst = open_dest(tmp_path / "b")
    present = present_points(dst)
    (second,) = [p for p in choose_points(src, all_points=True) if p.restore_point == "shop-2"]
    with pytest.raises(CopyError, match="is incomplete .* nothing was committed"):
        copy_point(src, dst, second, CopyMode.INDEPENDENT, present=present)
    assert "shop-2" not in present_points(dst)


class _DamagingStorage(FilesystemStorage):
    """A destination whose disk flips a bit in the second pack it stores (the write 'succeeds')."""

    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.packs_stored = 0
        self.damaged: str | None = None

    def put(self, key: str, data: bytes | bytearray | memoryview, **kwargs: Any) -> None:
        if key.startswith(DATA_PREFIX):
            self.packs_stored += 1
            if self.packs_stored == 2:
                raw = bytearray(data)
                raw[len(raw) // 3] ^= 0x01
                data, self.damaged = bytes(raw), key.rsplit("/", 1)[-1]
        super().put(key, data, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_a_pack_damaged_at_the_destination_fails_the_copy_naming_it_and_commits_nothing(
        tmp_path: Path, src: Repository, mode: CopyMode) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    for i in range(6):  # several packs of 64 KiB: the damaged one is not the last
        (vol / f"f{i}.bin").write_bytes(random.Random(i).randbytes(300_000))
    make_point(src, vol, "shop-1")
    storage = _DamagingStorage(tmp_path / "b", create=True)
    dst = init_destination(src, fast_retry(storage), mode, passphrase=OTHER_PASSWORD, key_wrapper=None,
                           kdf=KdfParams.cheap())
    point = choose_points(src, all_points=True)[0]
    with pytest.raises((CopyError, verify.PackVerificationError)) as caught:
        copy_point(src, dst, point, mode, present=present_points(dst))
    assert storage.damaged is not None and storage.damaged in str(caught.value)
    assert not present_points(open_dest(tmp_path / "b"))
