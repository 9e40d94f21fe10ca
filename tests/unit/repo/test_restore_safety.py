"""Restore never writes outside its target (issue 14, items 1-5 and 12).

Hostile snapshots are written with the repository's own BlobSaver/write_snapshot (as a
key holder, e.g. a compromised source cluster, could); hostile targets are prepared with
symlinks, hard links and fifos pointing outside. Every test checks that nothing outside the
target changed by hashing the whole surrounding tree before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.repo import restorer as restorer_module
from kubekeep.repo import targetfs
from kubekeep.repo.archiver import BackupStats, BlobSaver
from kubekeep.repo.crypto import BlobType
from kubekeep.repo.errors import RepositoryError, RestoreError
from kubekeep.repo.format import pack_key
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import PASSWORD

TMP_PREFIX = ".kubekeep-restore-"

# -- helpers ---------------------------------------------------------------------------------


def build_snapshot(repo: Repository, entries: list[dict[str, Any]], *, root: dict[str, Any] | None = None) -> str:
    """Write a snapshot whose tree is exactly ``entries`` (no name checks: a hostile writer's view).

    An entry is ``{"name", "type": "file", "data"}``, ``{"name", "type": "dir", "entries"}``,
    ``{"name", "type": "symlink", "target"}`` or ``{"name", "type": "fifo"}``; any other key
    (mode, mtime_ns, hardlink, ...) is copied into the tree entry as is.
    """
    saver = BlobSaver(repo, retention=None, stats=BackupStats())

    def tree(items: list[dict[str, Any]]) -> str:
        out = []
        for item in items:
            node = {k: v for k, v in item.items() if k not in ("data", "entries")}
            if item["type"] == "file":
                data = item.get("data", b"")
                ids = [saver.save_blob(BlobType.DATA, data[i:i + 4096]).hex() for i in range(0, len(data), 4096)]
                node["content"] = {"size": len(data), "chunks": ids}
            elif item["type"] == "dir":
                node["subtree"] = tree(item.get("entries", []))
            out.append(node)
        blob = json.dumps({"version": 1, "entries": out}, separators=(",", ":")).encode()
        return saver.save_blob(BlobType.TREE, blob).hex()

    root_id = tree(entries)
    saver.finish()
    sid = secrets.token_bytes(32).hex()
    repo.write_snapshot({"version": 1, "id": sid, "time": datetime.now(UTC).isoformat(), "hostname": "hostile",
                         "tags": [], "metadata": {}, "parent": None, "source": None, "root": root,
                         "tree": root_id, "streams": {}, "stats": {}})
    return sid


def tree_digest(root: Path, skip: Path | None = None) -> dict[str, tuple[object, ...]]:
    """Names, types, modes, owners, mtimes, inodes, contents and link targets of everything under root."""
    out: dict[str, tuple[object, ...]] = {}

    def record(path: Path) -> None:
        st = path.lstat()
        rel = str(path.relative_to(root))
        base = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (*base, os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = (*base, st.st_mtime_ns, st.st_ino, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = (*base, st.st_mtime_ns)

    record(root)
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
            filenames = [f for f in filenames if Path(dirpath, f) != skip]
        for name in dirnames + filenames:
            record(Path(dirpath) / name)
    return out


def leftovers(target: Path) -> list[str]:
    """Temporary entries this process's restores left behind."""
    return [str(p) for p in target.rglob(f"{TMP_PREFIX}{os.getpid()}-*")]


@pytest.fixture(autouse=True, params=["o_tmpfile", "named-temp"])
def new_files(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: files made as unnamed O_TMPFILE inodes and linked into place, and
    (as on NFS or without procfs) under a temporary name and renamed into place."""
    if request.param == "named-temp":
        monkeypatch.setattr(targetfs, "_PROC_FD", False)
    else:
        assert targetfs._proc_fd_links()
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """tmp/world/{outside/, sibling.txt, inner/{neighbour.txt, T/}}: T is the restore target."""
    w = tmp_path / "world"
    (w / "outside" / "sub").mkdir(parents=True)
    (w / "outside" / "secret.txt").write_text("outside secret\n")
    (w / "outside" / "sub" / "deep.txt").write_text("deep\n")
    os.chmod(w / "outside", 0o755)
    (w / "sibling.txt").write_text("sibling\n")
    (w / "inner" / "T").mkdir(parents=True)
    (w / "inner" / "neighbour.txt").write_text("neighbour\n")
    return w


def target_of(world: Path) -> Path:
    return world / "inner" / "T"


def _backup_tree(repo: Repository, root: Path) -> str:
    return repo.backup(root).snapshot_id


# -- 1. symlinks already in the target -------------------------------------------------------


def _symlink_then_dir_snapshots(repo: Repository, tmp_path: Path, world: Path) -> tuple[str, str]:
    s1 = tmp_path / "s1"
    s1.mkdir()
    os.symlink(world / "outside", s1 / "d")
    s2 = tmp_path / "s2"
    (s2 / "d").mkdir(parents=True)
    (s2 / "d" / "payload.txt").write_text("payload\n")
    os.chmod(s2 / "d", 0o777)
    return _backup_tree(repo, s1), _backup_tree(repo, s2)


def test_existing_symlink_in_target_is_replaced_not_followed(repo: Repository, tmp_path: Path,
                                                              world: Path) -> None:
    first, second = _symlink_then_dir_snapshots(repo, tmp_path, world)
    target = target_of(world)
    repo.restore(first, target)
    assert os.readlink(target / "d") == str(world / "outside")
    before = tree_digest(world, skip=target)
    repo.restore(second, target)
    assert tree_digest(world, skip=target) == before
    assert not (world / "outside" / "payload.txt").exists()
    assert stat.S_IMODE((world / "outside").stat().st_mode) == 0o755
    assert not (target / "d").is_symlink() and (target / "d" / "payload.txt").read_text() == "payload\n"
    assert stat.S_IMODE((target / "d").lstat().st_mode) == 0o777


def test_existing_symlink_in_target_is_not_followed_by_a_path_restore(repo: Repository, tmp_path: Path,
                                                                       world: Path) -> None:
    first, second = _symlink_then_dir_snapshots(repo, tmp_path, world)
    target = target_of(world)
    repo.restore(first, target)
    before = tree_digest(world, skip=target)
    repo.restore(second, target, path="d/payload.txt")
    assert tree_digest(world, skip=target) == before
    assert not (world / "outside" / "payload.txt").exists()
    assert not (target / "d").is_symlink() and (target / "d" / "payload.txt").read_text() == "payload\n"


def test_existing_symlink_to_a_file_is_replaced_not_written_through(repo: Repository, world: Path) -> None:
    target = target_of(world)
    os.symlink(world / "outside" / "secret.txt", target / "conf.txt")
    sid = build_snapshot(repo, [{"name": "conf.txt", "type": "file", "data": b"restored\n", "mode": 0o666}])
    before = tree_digest(world, skip=target)
    repo.restore(sid, target)
    assert tree_digest(world, skip=target) == before
    assert not (target / "conf.txt").is_symlink() and (target / "conf.txt").read_bytes() == b"restored\n"


# -- 2. hard links already in the target -----------------------------------------------------


def test_existing_hard_link_in_target_is_not_written_through(repo: Repository, world: Path) -> None:
    target = target_of(world)
    outside = world / "outside" / "secret.txt"
    os.chmod(outside, 0o600)
    os.link(outside, target / "keep.txt")
    sid = build_snapshot(repo, [{"name": "keep.txt", "type": "file", "data": b"from the snapshot\n",
                                 "mode": 0o777}])
    before = tree_digest(world, skip=target)
    repo.restore(sid, target)
    assert tree_digest(world, skip=target) == before
    assert outside.read_text() == "outside secret\n" and stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert (target / "keep.txt").read_bytes() == b"from the snapshot\n"
    assert (target / "keep.txt").stat().st_ino != outside.stat().st_ino


def test_restored_hard_links_only_link_files_the_restore_created(repo: Repository, world: Path) -> None:
    """keep.txt (hard-linked to an outside file) is in the snapshot as one of two linked names:
    the second name must link to the restored file, never to the outside inode."""
    target = target_of(world)
    outside = world / "outside" / "secret.txt"
    (target / "a").mkdir()
    os.link(outside, target / "a" / "keep.txt")
    sid = build_snapshot(repo, [
        {"name": "a", "type": "dir", "entries": [
            {"name": "keep.txt", "type": "file", "data": b"linked content\n", "hardlink": "1:99"}]},
        {"name": "b", "type": "dir", "entries": [
            {"name": "other.txt", "type": "file", "data": b"linked content\n", "hardlink": "1:99"}]}])
    before = tree_digest(world, skip=target)
    repo.restore(sid, target)
    assert tree_digest(world, skip=target) == before
    first, second = (target / "a" / "keep.txt").stat(), (target / "b" / "other.txt").stat()
    assert first.st_ino == second.st_ino != outside.stat().st_ino
    assert first.st_nlink == 2 and (target / "b" / "other.txt").read_bytes() == b"linked content\n"


# -- 3. hostile entry names ------------------------------------------------------------------


def _restore_expecting_failures(repo: Repository, sid: str, target: Path) -> dict[str, str]:
    with pytest.raises(RestoreError) as info:
        repo.restore(sid, target)
    return info.value.failures


def test_name_with_dot_dot_components_is_refused(repo: Repository, world: Path) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": "../../x", "type": "file", "data": b"escaped\n"},
                                {"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert not (world / "x").exists()
    assert any("../../x" in k and "invalid entry name" in v for k, v in failures.items()), failures
    assert (target / "ok.txt").read_bytes() == b"fine\n"


def test_absolute_name_is_refused(repo: Repository, world: Path) -> None:
    target = target_of(world)
    absolute = str(world / "abs.txt")
    sid = build_snapshot(repo, [{"name": absolute, "type": "file", "data": b"escaped\n"},
                                {"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert not (world / "abs.txt").exists()
    assert any(absolute in k for k in failures), failures
    assert (target / "ok.txt").read_bytes() == b"fine\n"


def test_directory_named_dot_dot_is_refused(repo: Repository, world: Path) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": "..", "type": "dir", "mode": 0o777, "entries": [
                                    {"name": "escaped.txt", "type": "file", "data": b"escaped\n"}]},
                                {"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert not (world / "inner" / "escaped.txt").exists()
    assert any("'..'" in k for k in failures), failures
    assert (target / "ok.txt").read_bytes() == b"fine\n"


def test_symlink_then_directory_of_the_same_name_is_refused(repo: Repository, world: Path) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": "d", "type": "symlink", "target": str(world / "outside")},
                                {"name": "d", "type": "dir", "mode": 0o777, "entries": [
                                    {"name": "payload.txt", "type": "file", "data": b"escaped\n"}]}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert not (world / "outside" / "payload.txt").exists()
    assert any("duplicate" in v for v in failures.values()), failures
    assert os.readlink(target / "d") == str(world / "outside")  # the first entry of the name is restored


@pytest.mark.parametrize("kind", ["file", "fifo", "symlink"])
def test_file_or_fifo_named_dot_dot_never_removes_the_parent(repo: Repository, world: Path, kind: str) -> None:
    target = target_of(world)
    entry: dict[str, Any] = {"name": "..", "type": kind}
    if kind == "file":
        entry["data"] = b"x"
    if kind == "symlink":
        entry["target"] = str(world)
    sid = build_snapshot(repo, [entry, {"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert (world / "inner" / "neighbour.txt").read_text() == "neighbour\n"
    assert list(failures) == [f"{target}/'..'"]
    assert (target / "ok.txt").read_bytes() == b"fine\n"


@pytest.mark.parametrize("name", [".", "", "a\x00b", "a/b", "/", "x/../../y", "\udcff/..", 7, None],
                         ids=["dot", "empty", "nul", "slash", "root", "embedded-dotdot", "escaped-slash",
                              "not-a-string", "missing"])
def test_other_invalid_names_are_refused(repo: Repository, world: Path, name: object) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": name, "type": "dir", "entries": [
                                    {"name": "f.txt", "type": "file", "data": b"escaped\n"}]},
                                {"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world, skip=target)
    failures = _restore_expecting_failures(repo, sid, target)
    assert tree_digest(world, skip=target) == before
    assert len(failures) == 1 and "invalid entry name" in next(iter(failures.values())), failures
    assert sorted(os.listdir(target)) == ["ok.txt"]


def test_duplicate_file_names_restore_the_first_and_report_the_rest(repo: Repository, world: Path) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": "same", "type": "file", "data": b"first\n"},
                                {"name": "same", "type": "file", "data": b"second\n"}])
    failures = _restore_expecting_failures(repo, sid, target)
    assert failures == {str(target / "same"): "duplicate entry name in its directory; skipped"}
    assert (target / "same").read_bytes() == b"first\n"


def test_a_path_with_dot_dot_is_refused(repo: Repository, world: Path) -> None:
    target = target_of(world)
    sid = build_snapshot(repo, [{"name": "ok.txt", "type": "file", "data": b"fine\n"}])
    before = tree_digest(world)
    with pytest.raises(RepositoryError, match=r"\.\."):
        repo.restore(sid, target, path="../inner/ok.txt")
    assert tree_digest(world) == before


def test_directory_in_the_way_is_removed_without_following_links(repo: Repository, world: Path) -> None:
    """A file replaces a directory of the target: the directory goes, links inside it are not followed."""
    target = target_of(world)
    (target / "x" / "y").mkdir(parents=True)
    os.symlink(world / "outside", target / "x" / "to-outside")
    os.symlink(world / "outside", target / "x" / "y" / "to-outside")
    os.link(world / "outside" / "secret.txt", target / "x" / "y" / "hard")
    sid = build_snapshot(repo, [{"name": "x", "type": "file", "data": b"a file now\n"}])
    before = tree_digest(world, skip=target)
    repo.restore(sid, target)
    assert tree_digest(world, skip=target) == before
    assert (target / "x").read_bytes() == b"a file now\n"


# -- 4. a bad chunk fails only its file ------------------------------------------------------


def _node(repo: Repository, sid: str, path: str) -> dict[str, Any]:
    entries = repo.load_tree(repo.load_snapshot(sid)["tree"])
    *dirs, name = path.split("/")
    for d in dirs:
        entries = repo.load_tree(next(e for e in entries if e["name"] == d)["subtree"])
    return next(e for e in entries if e["name"] == name)


def _damage_blob(repo: Repository, storage: FilesystemStorage, blob_id: bytes) -> None:
    loc = repo.index.lookup(blob_id)
    assert loc is not None
    path = storage.root / pack_key(loc.pack_id)
    data = bytearray(path.read_bytes())
    data[loc.entry.offset + loc.entry.length // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _source(tmp_path: Path, big: bytes) -> Path:
    src = tmp_path / "src"
    (src / "c").mkdir(parents=True)
    (src / "a-big.bin").write_bytes(big)
    (src / "b.txt").write_text("b\n")
    (src / "c" / "in-c.txt").write_text("in c\n")
    (src / "d.txt").write_text("d\n")
    return src


def test_a_file_appears_under_its_name_only_when_complete(repo: Repository, tmp_path: Path, new_files: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(4).randbytes(400_000))
    sid = repo.backup(src).snapshot_id
    target = tmp_path / "T"
    seen: list[tuple[bool, list[str]]] = []
    write_all = restorer_module.write_all

    def looking(fd: int, data: bytes | memoryview) -> None:  # what the target shows at every write
        seen.append((os.path.exists(target / "big.bin"), sorted(os.listdir(target))))
        write_all(fd, data)

    monkeypatch.setattr(restorer_module, "write_all", looking)
    repo.restore(sid, target)
    assert len(seen) > 10 and not any(exists for exists, _ in seen)
    names = {name for _, listing in seen for name in listing}
    if new_files == "o_tmpfile":
        assert names == set()  # an unnamed inode until it is complete
    else:
        assert len(names) == 1 and next(iter(names)).startswith(TMP_PREFIX)
    assert (target / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_damaged_chunk_keeps_the_previous_version_and_restores_the_rest(repo: Repository,
                                                                         storage: FilesystemStorage,
                                                                         tmp_path: Path) -> None:
    rng = random.Random(1)
    src = _source(tmp_path, rng.randbytes(300_000))
    old = repo.backup(src).snapshot_id
    target = tmp_path / "T"
    repo.restore(old, target)
    old_big = (target / "a-big.bin").read_bytes()
    (src / "a-big.bin").write_bytes(rng.randbytes(300_000))
    (src / "d.txt").write_text("d, second version\n")
    new = repo.backup(src).snapshot_id
    chunks = list(repo.content_chunks(_node(repo, new, "a-big.bin")["content"]))
    _damage_blob(repo, storage, chunks[len(chunks) // 2])
    with pytest.raises(RestoreError) as info:
        repo.restore(new, target)
    assert list(info.value.failures) == [str(target / "a-big.bin")]
    assert "authentication failed" in info.value.failures[str(target / "a-big.bin")]
    assert (target / "a-big.bin").read_bytes() == old_big  # complete previous version, not a truncated new one
    assert (target / "d.txt").read_text() == "d, second version\n"
    assert leftovers(target) == []


def test_damaged_chunk_list_fails_only_its_file(repo: Repository, storage: FilesystemStorage,
                                                tmp_path: Path) -> None:
    src = _source(tmp_path, random.Random(2).randbytes(6 * 1024 * 1024))
    sid = repo.backup(src).snapshot_id
    content = _node(repo, sid, "a-big.bin")["content"]
    assert "lists" in content
    _damage_blob(repo, storage, bytes.fromhex(content["lists"][0]))
    target = tmp_path / "T"
    with pytest.raises(RestoreError) as info:
        repo.restore(sid, target)
    assert list(info.value.failures) == [str(target / "a-big.bin")]
    assert "chunk list" in info.value.failures[str(target / "a-big.bin")]
    assert not (target / "a-big.bin").exists()
    assert (target / "b.txt").read_text() == "b\n" and (target / "c" / "in-c.txt").read_text() == "in c\n"
    assert (target / "d.txt").read_text() == "d\n"
    assert leftovers(target) == []


def test_damaged_tree_fails_only_its_directory(repo: Repository, storage: FilesystemStorage,
                                               tmp_path: Path) -> None:
    src = _source(tmp_path, b"small\n")
    sid = repo.backup(src).snapshot_id
    _damage_blob(repo, storage, bytes.fromhex(_node(repo, sid, "c")["subtree"]))
    target = tmp_path / "T"
    with pytest.raises(RestoreError) as info:
        repo.restore(sid, target)
    assert list(info.value.failures) == [str(target / "c")]
    assert "tree" in info.value.failures[str(target / "c")]
    assert (target / "a-big.bin").read_bytes() == b"small\n" and (target / "d.txt").read_text() == "d\n"
    assert leftovers(target) == []
    restored = info.value.result  # the error says what was restored, too
    assert restored is not None and (restored.files, restored.dirs) == (3, 1)


# -- 5. streams ------------------------------------------------------------------------------


def test_stream_restore_with_a_wrong_name_leaves_the_file_intact(repo: Repository, tmp_path: Path) -> None:
    sid = repo.backup_stream("manifests", [b"{}\n"]).snapshot_id
    existing = tmp_path / "existing.file"
    existing.write_bytes(b"precious\n")
    with pytest.raises(RepositoryError, match="no stream 'WRONG'"):
        repo.restore_stream(sid, "WRONG", existing)
    with pytest.raises(RepositoryError, match="no stream 'WRONG'"):
        repo.read_stream(sid, "WRONG")  # checked when called, not when first iterated
    assert existing.read_bytes() == b"precious\n"


def test_stream_restore_replaces_the_file_atomically(repo: Repository, storage: FilesystemStorage,
                                                     tmp_path: Path) -> None:
    data = random.Random(3).randbytes(200_000)
    sid = repo.backup_stream("dump", [data]).snapshot_id
    existing = tmp_path / "existing.file"
    existing.write_bytes(b"precious\n")
    assert repo.restore_stream(sid, "dump", existing) == len(data)
    assert existing.read_bytes() == data
    existing.write_bytes(b"precious\n")
    content = repo.load_snapshot(sid)["streams"]["dump"]
    _damage_blob(repo, storage, list(repo.content_chunks(content))[-1])
    with pytest.raises(RepositoryError, match="authentication failed"):
        repo.restore_stream(sid, "dump", existing)
    assert existing.read_bytes() == b"precious\n"
    assert sorted(os.listdir(tmp_path)) == ["existing.file", "repo"]


def test_stream_restore_replaces_a_link_instead_of_writing_through_it(repo: Repository, world: Path) -> None:
    sid = repo.backup_stream("dump", [b"stream bytes\n"]).snapshot_id
    target = target_of(world)
    os.symlink(world / "outside" / "secret.txt", target / "out.json")
    os.link(world / "sibling.txt", target / "hard.json")
    before = tree_digest(world, skip=target)
    repo.restore_stream(sid, "dump", target / "out.json")
    repo.restore_stream(sid, "dump", target / "hard.json")
    assert tree_digest(world, skip=target) == before
    assert (target / "out.json").read_bytes() == b"stream bytes\n" and not (target / "out.json").is_symlink()
    assert (target / "hard.json").read_bytes() == b"stream bytes\n"


# -- 5 and 12. the CLI -----------------------------------------------------------------------


@pytest.fixture
def cli_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str, str]:
    monkeypatch.setenv("KUBEKEEP_TEST_CHEAP_KDF", "1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", PASSWORD)
    monkeypatch.delenv("KUBEKEEP_REPOSITORY", raising=False)
    runner = CliRunner()
    location = str(tmp_path / "clirepo")
    assert runner.invoke(repo_app, ["init", "--repo", location]).exit_code == 0
    src = tmp_path / "clisrc"
    src.mkdir()
    (src / "f.txt").write_text("f\n")
    r = runner.invoke(repo_app, ["backup", "--repo", location, str(src), "--stdin-name", "manifests"],
                      input=b'{"kind":"Pod"}\n')
    assert r.exit_code == 0, r.output
    return runner, location, r.stdout.strip().splitlines()[-1]


def _one_clear_line(r: Any) -> str:
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_cli_stream_restore_with_a_wrong_name_leaves_the_file_intact(cli_repo: tuple[CliRunner, str, str],
                                                                     tmp_path: Path) -> None:
    runner, location, sid = cli_repo
    existing = tmp_path / "existing.file"
    existing.write_bytes(b"precious\n")
    r = runner.invoke(repo_app, ["restore", "--repo", location, sid, "--stream", "WRONG", "--target", str(existing)])
    assert "no stream 'WRONG'" in _one_clear_line(r)
    assert existing.read_bytes() == b"precious\n"
    r = runner.invoke(repo_app, ["restore", "--repo", location, sid, "--stream", "manifests",
                                 "--target", str(existing)])
    assert r.exit_code == 0, r.output
    assert existing.read_bytes() == b'{"kind":"Pod"}\n'


def test_cli_restore_into_an_existing_file_is_one_clear_line(cli_repo: tuple[CliRunner, str, str],
                                                             tmp_path: Path) -> None:
    runner, location, sid = cli_repo
    existing = tmp_path / "existing.file"
    existing.write_bytes(b"precious\n")
    r = runner.invoke(repo_app, ["restore", "--repo", location, sid, "--target", str(existing)])
    assert "not a directory" in _one_clear_line(r)
    assert existing.read_bytes() == b"precious\n"


def test_cli_stream_restore_into_a_directory_is_one_clear_line(cli_repo: tuple[CliRunner, str, str],
                                                               tmp_path: Path) -> None:
    runner, location, sid = cli_repo
    directory = tmp_path / "somedir"
    directory.mkdir()
    r = runner.invoke(repo_app, ["restore", "--repo", location, sid, "--stream", "manifests",
                                 "--target", str(directory)])
    assert "is a directory" in _one_clear_line(r)
    assert os.listdir(directory) == []


# -- fuzz: hostile trees into hostile targets ------------------------------------------------


def _random_name(rng: random.Random, absolute_base: Path) -> object:
    pool: list[object] = ["..", ".", "", "../x", "../../x", "a/b", "x\x00y", "d", "d", "f", "f", "sub",
                          "link", "fifo", "keep", f"{TMP_PREFIX}1-1", "\udcff", str(absolute_base / "abs"),
                          "/", "./d", "d/..", 5]
    return rng.choice(pool) if rng.random() < 0.7 else f"n{rng.randrange(6)}"


def _random_tree(rng: random.Random, jail: Path, outside: Path, depth: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["file", "file", "dir", "symlink", "fifo"] if depth < 3 else ["file", "symlink", "fifo"])
        entry: dict[str, Any] = {"name": _random_name(rng, jail), "type": kind,
                                 "mode": rng.choice([0o777, 0o644, 0o4755, 0o000, 0o700])}
        if kind == "file":
            entry["data"] = rng.randbytes(rng.choice([0, 10, 5000]))
            if rng.random() < 0.3:
                entry["hardlink"] = rng.choice(["k1", "k2"])
        elif kind == "dir":
            entry["entries"] = _random_tree(rng, jail, outside, depth + 1)
        elif kind == "symlink":
            entry["target"] = rng.choice([str(outside), str(outside / "secret.txt"), "..", "../..", str(jail), "."])
        entries.append(entry)
    return entries


def _paths(entries: list[dict[str, Any]], prefix: str = "") -> list[str]:
    """Paths a single-entry restore may ask for (hostile names included: they must be refused)."""
    out = ["../x", "d/../..", "d"]
    for entry in entries:
        if isinstance(entry["name"], str) and entry["name"] and "\0" not in entry["name"]:
            out.append(prefix + entry["name"])
            if entry["type"] == "dir":
                out.extend(_paths(entry["entries"], prefix + entry["name"] + "/"))
    return out


def _hostile_target(rng: random.Random, target: Path, outside: Path) -> None:
    """Pre-existing entries that point outside: symlinks, hard links, fifos, at random places."""
    dirs = [target]
    for _ in range(rng.randint(0, 8)):
        where = rng.choice(dirs)
        name = rng.choice(["d", "f", "sub", "link", "fifo", "keep", "n1", "n2"])
        if os.path.lexists(where / name):
            continue
        what = rng.choice(["symlink-dir", "symlink-file", "hardlink", "fifo", "dir"])
        if what == "symlink-dir":
            os.symlink(outside, where / name)
        elif what == "symlink-file":
            os.symlink(outside / "secret.txt", where / name)
        elif what == "hardlink":
            os.link(outside / rng.choice(["secret.txt", "sub/deep.txt"]), where / name)
        elif what == "fifo":
            os.mkfifo(where / name)
        else:
            (where / name).mkdir()
            dirs.append(where / name)


@pytest.mark.parametrize("seed", range(30))
def test_fuzz_hostile_trees_never_change_anything_outside_the_target(repo: Repository, tmp_path: Path,
                                                                     seed: int) -> None:
    rng = random.Random(seed)
    # a deep jail: even a restore that climbs several levels stays inside tmp_path, where it is seen
    jail = tmp_path.joinpath(*[f"j{i}" for i in range(12)])
    world = jail / "world"
    outside = world / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret\n")
    (outside / "sub" / "deep.txt").write_text("deep\n")
    target = world / "inner" / "T"
    target.mkdir(parents=True)
    (world / "inner" / "neighbour.txt").write_text("neighbour\n")
    _hostile_target(rng, target, outside)
    trees = [_random_tree(rng, jail, outside, 0) for _ in range(2)]
    snapshots = [(build_snapshot(repo, tree), _paths(tree)) for tree in trees]
    before = tree_digest(tmp_path.joinpath("j0"), skip=target)
    for sid, paths in snapshots:
        for path in [None, rng.choice(paths), rng.choice(paths)]:
            # invalid entries are reported; what matters is what happened on disk
            with contextlib.suppress(RepositoryError):
                repo.restore(sid, target, path=path)
    assert tree_digest(tmp_path.joinpath("j0"), skip=target) == before
    assert leftovers(target) == []
