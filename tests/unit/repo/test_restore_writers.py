"""The restore's writer threads: files are written side by side, and the tree is still accounted in order."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kubekeep.repo import restorer as restorer_module
from kubekeep.repo.repository import Repository

from .conftest import snapshot_of, write_tree


def test_files_are_written_side_by_side(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.txt").write_text(f"file {i}\n")
    sid = repo.backup(src).snapshot_id
    write_all = restorer_module.write_all
    busy = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(fd: int, data: bytes | memoryview) -> None:  # every write takes 0.3 s
        with lock:
            busy["now"] += 1
            busy["most"] = max(busy["most"], busy["now"])
        time.sleep(0.3)
        with lock:
            busy["now"] -= 1
        write_all(fd, data)

    monkeypatch.setattr(restorer_module, "write_all", slow)
    started = time.monotonic()
    result = repo.restore(sid, tmp_path / "T")
    took = time.monotonic() - started
    assert result.files == 6 and busy["most"] == restorer_module.WRITER_THREADS
    assert took < 6 * 0.3 * 0.75, f"{took:.2f} s: the files were written one after the other"
    assert sorted(os.listdir(tmp_path / "T")) == [f"f{i}.txt" for i in range(6)]


def test_a_tree_restored_by_several_writers_is_the_tree(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_tree(src, seed=3, files=40)  # hard links, symlinks, modes and directory times wait for their files
    sid = repo.backup(src).snapshot_id
    result = repo.restore(sid, tmp_path / "T", list_written=True)
    assert snapshot_of(tmp_path / "T") == snapshot_of(src)
    # accounted in tree order, as the walk met them
    assert result.written_paths == sorted(result.written_paths or [], key=lambda p: _walk_order(src).index(p))


def _walk_order(root: Path) -> list[str]:
    order: list[str] = []

    def walk(d: Path, prefix: tuple[str, ...]) -> None:
        for name in sorted(os.listdir(d)):
            path = d / name
            if path.is_dir() and not path.is_symlink():
                walk(path, (*prefix, name))
            else:
                order.append("/".join((*prefix, name)))

    walk(root, ())
    return order


def test_an_unexpected_error_in_a_writer_stops_the_restore_and_leaves_nothing_half_written(
        repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(20_000))
    sid = repo.backup(src).snapshot_id
    write_all = restorer_module.write_all
    calls = {"n": 0}

    def broken(fd: int, data: bytes | memoryview) -> None:
        calls["n"] += 1
        if calls["n"] == 12:
            raise RuntimeError("a bug in the writer")
        write_all(fd, data)

    monkeypatch.setattr(restorer_module, "write_all", broken)
    target = tmp_path / "T"
    done = threading.Event()
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            repo.restore(sid, target)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(30), "the restore hung after a writer thread failed"
    assert isinstance(outcome.get("error"), RuntimeError)
    for name in os.listdir(target):  # only complete files, under their own names
        assert name.startswith("f") and (target / name).stat().st_size == 20_000
