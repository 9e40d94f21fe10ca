"""Fixtures for repository tests: small chunks, small packs, cheap KDF, fast retries."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage, RetryingStorage, Storage

PASSWORD = "correct horse battery staple"
CHUNKER = {"min_size": 1024, "avg_size": 4096, "max_size": 16384}
PACK_SIZE = 64 * 1024


def fast_retry(storage: Storage) -> RetryingStorage:
    return RetryingStorage(storage, max_attempts=8, base_delay=0.0005, max_delay=0.002)


def make_repo(storage: Storage, **kwargs: object) -> Repository:
    params: dict[str, object] = {"passphrase": PASSWORD, "kdf": KdfParams.cheap(), "chunker": CHUNKER,
                                 "pack_size": PACK_SIZE}
    params.update(kwargs)
    return Repository.init(fast_retry(storage), **params)  # type: ignore[arg-type]


def open_repo(storage: Storage, **kwargs: object) -> Repository:
    params: dict[str, object] = {"passphrase": PASSWORD}
    params.update(kwargs)
    return Repository.open(fast_retry(storage), **params)  # type: ignore[arg-type]


def write_tree(root: Path, seed: int = 0, files: int = 12) -> None:
    """A small tree with the awkward cases: nesting, empty dir/file, symlink, hard link, modes."""
    rng = random.Random(seed)
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "data" / "deep" / "er").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    for i in range(files):
        sub = root / ("data" if i % 2 else "etc/conf.d")
        size = rng.choice([0, 10, 5000, 40000, 120000])
        (sub / f"file-{i}.bin").write_bytes(rng.randbytes(size // 2) + b"x" * (size - size // 2))
    (root / "data" / "deep" / "er" / "leaf.txt").write_text("leaf\n")
    (root / "empty-file").write_bytes(b"")
    os.symlink("data/deep/er/leaf.txt", root / "link-to-leaf")
    os.symlink("/nonexistent/target", root / "dangling")
    os.link(root / "data" / "file-1.bin", root / "hardlink-to-1")
    os.chmod(root / "etc" / "conf.d" / "file-0.bin", 0o640)
    os.chmod(root / "data" / "deep", 0o750)
    os.utime(root / "empty-file", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def snapshot_of(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything restore must reproduce, keyed by relative path."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), st.st_mode)
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns, st.st_uid)
            else:
                out[rel] = ("file", p.read_bytes(), st.st_mode, st.st_mtime_ns, st.st_uid, st.st_nlink)
    return out


@pytest.fixture
def storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "repo", create=True)


@pytest.fixture
def repo(storage: FilesystemStorage) -> Repository:
    return make_repo(storage)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    write_tree(root)
    return root


Factory = Callable[..., Repository]
