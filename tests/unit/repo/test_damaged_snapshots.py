"""Issue 14 item 7: one bad object under snapshots/ (a flipped bit, or 200 random bytes) is reported and
skipped by `snapshots`, `restore latest` and `prune`; `check` names it; the local manifest cache never
keeps an unverified manifest."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.repo.format import SNAPSHOTS_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import PASSWORD, open_repo, snapshot_of, write_tree

DAMAGE = ["bitflip", "random-200"]


def _damage(storage: FilesystemStorage, sid: str, how: str) -> None:
    path = storage.root / (SNAPSHOTS_PREFIX + sid)
    if how == "bitflip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(random.Random(7).randbytes(200))


@pytest.fixture
def three(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("KUBEKEEP_CACHE_DIR", str(tmp_path / "cache"))
    ids = []
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        write_tree(src, seed=i, files=6)
        (src / "unique.bin").write_bytes(os.urandom(40_000))
        ids.append(repo.backup(src).snapshot_id)
        time.sleep(0.01)
    return tmp_path, ids


@pytest.mark.parametrize("how", DAMAGE)
def test_snapshots_and_latest_skip_the_damaged_one(repo: Repository, storage: FilesystemStorage,
                                                   three: tuple[Path, list[str]], how: str) -> None:
    tmp_path, ids = three
    _damage(storage, ids[2], how)  # the newest one
    fresh = open_repo(storage)
    problems: list[str] = []
    listed = fresh.snapshots(problems=problems)
    assert [s.id for s in listed] == ids[:2]
    assert len(problems) == 1 and ids[2] in problems[0]
    assert fresh.resolve_snapshot("latest") == ids[1]
    fresh.restore("latest", tmp_path / "out")
    assert snapshot_of(tmp_path / "out") == snapshot_of(tmp_path / "src1")
    # the cache holds no copy of the damaged manifest
    cached = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert ids[2] not in cached and ids[0] in cached


@pytest.mark.parametrize("how", DAMAGE)
def test_check_names_it(repo: Repository, storage: FilesystemStorage, three: tuple[Path, list[str]],
                        how: str) -> None:
    _, ids = three
    _damage(storage, ids[1], how)
    result = open_repo(storage).check()
    assert not result.ok
    assert any(ids[1] in e for e in result.errors), result.errors
    assert result.snapshots == 2


@pytest.mark.parametrize("how", DAMAGE)
def test_prune_keeps_working_and_keeps_the_data(repo: Repository, storage: FilesystemStorage,
                                                three: tuple[Path, list[str]], how: str) -> None:
    tmp_path, ids = three
    _damage(storage, ids[1], how)
    fresh = open_repo(storage)
    result = fresh.prune([ids[0]], wait_timeout=0)
    assert result.snapshots_removed == [ids[0]]
    assert any(ids[1][:12] in m for m in result.messages), result.messages
    assert ids[1] in result.damaged_snapshots
    # nothing the unreadable manifest may need was deleted: its data is all still there
    assert result.packs_deleted == 0 and result.packs_repacked == 0
    fresh.restore(ids[2], tmp_path / "o2")
    assert snapshot_of(tmp_path / "o2") == snapshot_of(tmp_path / "src2")
    # dropping the damaged snapshot by id works, and then prune frees space again
    result = fresh.prune([ids[1]], wait_timeout=0)
    assert result.snapshots_removed == [ids[1]] and not result.damaged_snapshots
    assert result.packs_deleted + result.packs_repacked > 0
    assert fresh.check(read_data=True).ok


@pytest.mark.parametrize("how", DAMAGE)
def test_cli_snapshots_warns_and_lists_the_rest(repo: Repository, storage: FilesystemStorage,
                                                three: tuple[Path, list[str]], how: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, ids = three
    _damage(storage, ids[0], how)
    monkeypatch.setenv("KUBEKEEP_PASSWORD", PASSWORD)
    r = CliRunner().invoke(repo_app, ["snapshots", "--repo", str(storage.root)])
    assert r.exit_code == 0, r.output
    assert ids[1][:12] in r.stdout and ids[2][:12] in r.stdout
    assert ids[0][:12] in r.output and "unreadable" in r.output
    r = CliRunner().invoke(repo_app, ["check", "--repo", str(storage.root)])
    assert r.exit_code == 1 and ids[0] in r.output
    r = CliRunner().invoke(repo_app, ["prune", "--repo", str(storage.root), "--wait", "0"])
    assert r.exit_code == 0 and ids[0][:12] in r.output, r.output
