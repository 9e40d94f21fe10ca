"""The mover entrypoint, run as its own process against a directory (as a mover Job would)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.format import pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.testbed.sample_app import fill_volume


def _mover(*args: str, password: str = "pw") -> tuple[int, dict]:  # type: ignore[type-arg]
    env = {**os.environ, "KUBEKEEP_PASSWORD": password}
    proc = subprocess.run([sys.executable, "-m", "kubekeep.mover", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    return proc.returncode, json.loads(last)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def test_mover_backs_up_and_restores_a_volume(tmp_path: Path) -> None:
    location = tmp_path / "repo"
    Repository.init(FilesystemStorage(location, create=True), passphrase="pw", kdf=KdfParams.cheap()).close()
    volume = tmp_path / "volume"
    expected = fill_volume(volume, seed="mover", files=12)

    code, out = _mover("backup", "--repo", str(location), "--source", str(volume), "--pvc", "shop/data",
                       "--restore-point", "rp-1", "--size", "1Gi", "--storage-class", "fast")
    assert code == 0 and out["ok"], out
    vol = out["volume"]
    assert vol["files"] == len(expected) and vol["size_bytes"] == 1 << 30 and vol["method"] == "csi-snapshot"

    # a second run is incremental: no file content is stored again, only small tree metadata
    code, out2 = _mover("backup", "--repo", str(location), "--source", str(volume), "--pvc", "shop/data",
                        "--restore-point", "rp-2")
    assert code == 0 and out2["volume"]["stored_bytes"] < 4096

    target = tmp_path / "restored"
    # --location is the option's name (what mover Jobs get); --repo above is its older name
    code, res = _mover("restore", "--location", str(location), "--snapshot", vol["snapshot_id"], "--target",
                       str(target))
    assert code == 0 and res["ok"] and res["files"] == len(expected) + 1  # + the symlink
    assert res["verified_files"] == len(expected)
    assert _digests(target) == expected


def test_mover_reports_bad_input_clearly(tmp_path: Path) -> None:
    location = tmp_path / "repo"
    Repository.init(FilesystemStorage(location, create=True), passphrase="pw", kdf=KdfParams.cheap()).close()
    code, out = _mover("backup", "--repo", str(location), "--source", str(tmp_path / "missing"), "--pvc", "a/b",
                       "--restore-point", "rp")
    assert code == 1 and not out["ok"] and "not a readable directory" in out["error"]
    code, out = _mover("backup", "--repo", str(location), "--source", str(tmp_path), "--pvc", "nope",
                       "--restore-point", "rp")
    assert code == 2 and "namespace/name" in out["error"]
    code, out = _mover("restore", "--repo", str(location), "--snapshot", "ffff", "--target", str(tmp_path / "t"),
                       password="wrong")
    assert code == 1 and "wrong passphrase" in out["error"]


def test_mover_restore_never_follows_links_already_in_the_volume(tmp_path: Path) -> None:
    """The mover restores through the same core as `kubekeep repo restore`: a symlink or hard
    link already in the volume is replaced, never followed or written through."""
    location = tmp_path / "repo"
    repo = Repository.init(FilesystemStorage(location), passphrase="pw", kdf=KdfParams.cheap(),
                           create_location=True)
    source = tmp_path / "source"
    (source / "d").mkdir(parents=True)
    (source / "d" / "payload.txt").write_text("payload\n")
    (source / "keep.txt").write_text("from the snapshot\n")
    os.chmod(source / "d", 0o777)
    sid = repo.backup(source).snapshot_id
    repo.close()
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    (outside / "secret.txt").write_text("secret\n")
    os.chmod(outside / "secret.txt", 0o600)
    volume = tmp_path / "volume"
    volume.mkdir()
    os.symlink(outside, volume / "d")
    os.link(outside / "secret.txt", volume / "keep.txt")
    before = {p.name: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in [outside, *outside.iterdir()]}

    code, res = _mover("restore", "--repo", str(location), "--snapshot", sid, "--target", str(volume))
    assert code == 0 and res["ok"], res
    assert {p.name: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in [outside, *outside.iterdir()]} == before
    assert not (volume / "d").is_symlink() and (volume / "d" / "payload.txt").read_text() == "payload\n"
    assert (volume / "keep.txt").read_text() == "from the snapshot\n"


def test_mover_restore_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    location = tmp_path / "repo"
    repo = Repository.init(FilesystemStorage(location), passphrase="pw", kdf=KdfParams.cheap(), create_location=True)
    source = tmp_path / "source"
    source.mkdir()
    (source / "f.txt").write_text("f\n")
    sid = repo.backup(source).snapshot_id
    repo.close()
    existing = tmp_path / "existing.file"
    existing.write_text("precious\n")
    code, res = _mover("restore", "--repo", str(location), "--snapshot", sid, "--target", str(existing))
    assert code == 1 and not res["ok"] and "not a directory" in res["error"], res
    assert existing.read_text() == "precious\n"


def test_mover_names_a_failed_file_and_counts_what_it_restored(tmp_path: Path) -> None:
    location = tmp_path / "repo"
    repo = Repository.init(FilesystemStorage(location), passphrase="pw", kdf=KdfParams.cheap(), create_location=True)
    source = tmp_path / "source"
    source.mkdir()
    (source / "bad.bin").write_bytes(os.urandom(5000))
    (source / "good.txt").write_text("good\n")
    sid = repo.backup(source).snapshot_id
    node = next(e for e in repo.load_tree(repo.load_snapshot(sid)["tree"]) if e["name"] == "bad.bin")
    loc = repo.index.lookup(next(repo.content_chunks(node["content"])))
    assert loc is not None
    pack = location / pack_key(loc.pack_id)
    data = bytearray(pack.read_bytes())
    data[loc.entry.offset + 40] ^= 0x01
    pack.write_bytes(bytes(data))
    repo.close()
    volume = tmp_path / "volume"
    code, res = _mover("restore", "--repo", str(location), "--snapshot", sid, "--target", str(volume))
    assert code == 1 and not res["ok"], res
    assert list(res["failures"]) == [str(volume / "bad.bin")] and res["files"] == 1
    assert sorted(os.listdir(volume)) == ["good.txt"]
