"""DR copy on the real test bed: filesystem and two SeaweedFS sites with different credentials, the flow
against the real Prefect API, a copy of a copy, Object Lock at the destination, kill -9 and resume."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from blocks import EncryptionKey, LocationProfile
from flows.dr_copy import CopyFailed, dr_copy
from kubekeep.catalog import Catalog, list_dr_copies, list_restore_points
from kubekeep.drcopy import CopyMode, choose_points, present_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import DATA_PREFIX
from kubekeep.repo.index import Index
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, RetentionMode, Storage
from kubekeep.restorepoint import read_restore_point, rebuild_repository_catalog
from tests.plugins.s3 import S3TestServer
from tests.unit.drcopy.helpers import make_point, tree_digest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "dr-source"


def s3_profile(site: S3TestServer, *, locked: bool = False, prefix: str | None = None,
               lock_days: int = 1) -> LocationProfile:
    return LocationProfile(
        kind="s3", bucket=site.locked_bucket if locked else site.plain_bucket,
        prefix=prefix or f"dr-{uuid.uuid4().hex[:10]}/", endpoint_url=site.endpoint_url, region=site.region,
        access_key_id=site.access_key, secret_access_key=site.secret_key, addressing_style="path",
        object_lock_mode="COMPLIANCE" if locked else None, object_lock_days=lock_days if locked else 0)


def fs_profile(path: Path) -> LocationProfile:
    return LocationProfile(kind="filesystem", path=str(path))


def key(passphrase: str) -> EncryptionKey:
    return EncryptionKey(passphrase=passphrase, cheap_kdf=True)


def volume(root: Path, seed: int, size: int = 2 * 1024 * 1024) -> Path:
    rng = random.Random(seed)
    (root / "d").mkdir(parents=True, exist_ok=True)
    (root / "d" / "blob.bin").write_bytes(rng.randbytes(size))
    (root / "notes.txt").write_text(f"seed {seed}\n" * 50)
    return root


def source_repo(path: Path) -> Repository:
    return Repository.init(FilesystemStorage(path, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap())


def open_profile(profile: LocationProfile, passphrase: str) -> Repository:
    return Repository.open(profile.storage(), passphrase=passphrase)


def restores_identically(repo: Repository, rp_id: str, vol: Path, out: Path) -> None:
    record = read_restore_point(repo, present_points(repo)[rp_id])
    repo.restore(record.volumes[0].snapshot_id or "", out)
    assert tree_digest(out) == tree_digest(vol)


def test_fs_to_locked_s3_to_another_site_and_back_a_copy_of_a_copy(prefect_api: str, two_sites,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    site_a, site_b = two_sites
    vol = volume(tmp_path / "vol", seed=1)
    src = source_repo(tmp_path / "a")
    retain = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    make_point(src, vol, "shop-1", retain_until=retain.isoformat())
    src.close()
    a, b, c = fs_profile(tmp_path / "a"), s3_profile(site_a, locked=True), s3_profile(site_b)
    d = fs_profile(tmp_path / "d")

    # filesystem -> S3 with a COMPLIANCE lock (1 day at the destination, 3 days at the source: 3 days win)
    results = dr_copy(source=a, destination=b, source_key=key(PASSWORD), destination_key=key("site-b"),
                      all_points=True, mode=CopyMode.REPLICA, init=True)
    assert [(r.restore_point, r.status, r.verified) for r in results] == [("shop-1", "copied", True)]
    assert results[0].locked_until is not None and datetime.fromisoformat(results[0].locked_until) >= retain
    rb = open_profile(b, "site-b")
    sid = present_points(rb)["shop-1"]
    storage: Storage = rb.storage
    for obj in [f"snapshots/{sid}", *[i.key for i in storage.list(DATA_PREFIX)]]:
        assert storage.set_retention(obj, RetentionMode.COMPLIANCE, datetime.now(UTC)) >= retain, obj
    # the catalog at the destination answers queries
    rows = list_restore_points(Catalog(rb.storage, codec=rb.catalog_codec(), cache_dir=str(tmp_path / "cache-b")),
                              app="shop")
    assert [r.id for r in rows] == ["shop-1"]
    rb.close()

    # S3 site A -> S3 site B (other endpoint, other credentials), independent: a copy of a copy
    results = dr_copy(source=b, destination=c, source_key=key("site-b"), destination_key=key("site-c"),
                      app="shop", mode=CopyMode.INDEPENDENT, init=True)
    assert [r.status for r in results] == ["copied"]
    # and S3 -> filesystem, replica of the independent copy: A -> B -> C -> D
    dr_copy(source=c, destination=d, source_key=key("site-c"), destination_key=key("site-d"),
            restore_point="shop-1", mode=CopyMode.REPLICA, init=True)
    rd = open_profile(d, "site-d")
    restores_identically(rd, "shop-1", vol, tmp_path / "out-d")
    rc = open_profile(c, "site-c")
    assert not rc.shares_master_key(open_profile(b, "site-b"))  # independent: site B's key opens nothing at C
    assert rebuild_repository_catalog(rc, cache_dir=str(tmp_path / "cache-c")).points_skipped == 1
    rc.close()
    rd.close()

    # incremental: a second point; everything already at the destination is skipped
    src = Repository.open(FilesystemStorage(tmp_path / "a"), passphrase=PASSWORD)
    make_point(src, volume(tmp_path / "vol2", seed=2), "shop-2")
    rebuild_repository_catalog(src)  # the source's catalog lists both points (the helper writes records only)
    src.close()
    results = dr_copy(source=a, destination=b, source_key=key(PASSWORD), destination_key=key("site-b"),
                      all_points=True)
    assert sorted((r.restore_point, r.status) for r in results) == [("shop-1", "skipped"), ("shop-2", "copied")]
    # the source's catalog records where its points are (dr_copies), and its index artifact shows them
    src = Repository.open(FilesystemStorage(tmp_path / "a"), passphrase=PASSWORD)
    copies = list_dr_copies(Catalog(src.storage, codec=src.catalog_codec(), cache_dir=str(tmp_path / "cache-a")),
                            app="shop")
    src.close()
    assert [(c.restore_point_id, c.destination, c.mode) for c in copies] == [
        ("shop-1", b.describe(), "replica"), ("shop-2", b.describe(), "replica")]
    index = Artifact.get("restore-points-shop")
    assert index is not None
    rows = json.loads(index.data) if isinstance(index.data, str) else index.data
    assert {r["id"]: r["dr_copies"] for r in rows} == {"shop-1": b.describe(), "shop-2": b.describe()}


def test_a_corrupted_source_pack_fails_only_its_point_naming_the_pack(prefect_api: str, two_sites,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    site_a, _ = two_sites
    src = source_repo(tmp_path / "a")
    make_point(src, volume(tmp_path / "v1", seed=3), "good")
    before = {p for p in (tmp_path / "a" / "data").rglob("*") if p.is_file()}
    make_point(src, volume(tmp_path / "v2", seed=4), "bad")
    src.close()
    victim = max(({p for p in (tmp_path / "a" / "data").rglob("*") if p.is_file()} - before),
                 key=lambda p: p.stat().st_size)
    victim.chmod(0o600)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    victim.write_bytes(bytes(raw))
    dst = s3_profile(site_a)
    with pytest.raises(CopyFailed) as err:
        dr_copy(source=fs_profile(tmp_path / "a"), destination=dst, source_key=key(PASSWORD),
                all_points=True, init=True)
    assert "bad:" in str(err.value) and victim.name in str(err.value) and "good" not in str(err.value)
    repo = open_profile(dst, PASSWORD)
    assert list(present_points(repo)) == ["good"]
    assert repo.check(read_data=True).ok


_CHILD = textwrap.dedent("""
    import sys
    from kubekeep.drcopy import CopyMode, choose_points, copy_point, present_points
    from kubekeep.repo.repository import Repository
    from kubekeep.repo.storage import FilesystemStorage, S3Config, S3Storage
    src = Repository.open(FilesystemStorage(sys.argv[1]), passphrase=sys.argv[2])
    cfg = S3Config(bucket=sys.argv[3], prefix=sys.argv[4], endpoint_url=sys.argv[5], access_key=sys.argv[6],
                   secret_key=sys.argv[7], addressing_style="path")
    dst = Repository.open(S3Storage(cfg), passphrase="dest")
    dst.lock_ttl = 2.0
    mode = CopyMode(sys.argv[8])
    present = present_points(dst)
    print("started", flush=True)
    for point in choose_points(src, all_points=True):
        copy_point(src, dst, point, mode, present=present)
    print("done", flush=True)
""")


@pytest.mark.parametrize("mode", [CopyMode.REPLICA, CopyMode.INDEPENDENT])
def test_kill_9_at_random_moments_then_rerun_leaves_no_duplicates_and_every_point_restores(
        two_sites, tmp_path: Path, mode: CopyMode) -> None:  # type: ignore[no-untyped-def]
    from kubekeep.drcopy import init_destination

    site = two_sites.b
    vols = [volume(tmp_path / f"v{i}", seed=10 + i, size=3 * 1024 * 1024) for i in range(3)]
    src = source_repo(tmp_path / "a")
    src_pack_size = src.pack_size
    for i, vol in enumerate(vols):
        make_point(src, vol, f"shop-{i}")
    profile = s3_profile(site)
    init_destination(src, profile.storage(), mode, passphrase="dest", key_wrapper=None,
                     kdf=KdfParams.cheap()).close()
    assert src_pack_size
    args = [sys.executable, "-c", _CHILD, str(tmp_path / "a"), PASSWORD, profile.bucket or "", profile.prefix,
            site.endpoint_url, site.access_key, site.secret_key, mode.value]
    rng = random.Random(9)
    finished = 0
    for _round in range(10):
        child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 1.5))
        child.kill()  # SIGKILL: no cleanup of any kind
        child.wait()
        finished += child.returncode == 0
        dst = open_profile(profile, "dest")
        for rp, sid in present_points(dst).items():  # what is visible is complete
            assert read_restore_point(dst, sid).id == rp
        dst.close()
    assert finished < 10, "no run was killed mid-copy: the test proved nothing"
    dst = open_profile(profile, "dest")
    dst.lock_ttl = 2.0
    time.sleep(2.5)  # the killed runs' repository locks go stale
    dst.unlock()
    for point in choose_points(src, all_points=True):
        from kubekeep.drcopy import copy_point

        copy_point(src, dst, point, mode)
    assert sorted(present_points(dst)) == ["shop-0", "shop-1", "shop-2"]
    index = dst.load_index(reload=True)
    check_no_duplicates(dst, index)
    if mode is CopyMode.REPLICA:  # the same packs, each once, and nothing else
        src_packs = {i.key for i in src.storage.list(DATA_PREFIX)}
        assert {i.key for i in dst.storage.list(DATA_PREFIX)} == src_packs
    check = dst.check(read_data=True)
    assert check.ok, check
    for i, vol in enumerate(vols):
        restores_identically(dst, f"shop-{i}", vol, tmp_path / f"out{i}")
    dst.close()
    src.close()


def check_no_duplicates(repo: Repository, index: Index) -> None:
    """Every stored pack is indexed, and no blob is stored in two indexed packs."""
    listed = set(repo.list_packs())
    assert listed == set(index.pack_ids()), "packs a killed run left behind are not indexed"
    seen: dict[bytes, bytes] = {}
    for pack_id in index.pack_ids():
        for entry in repo.read_pack_header(pack_id):
            assert entry.blob_id not in seen, f"blob {entry.blob_id.hex()} is stored twice"
            seen[entry.blob_id] = pack_id
