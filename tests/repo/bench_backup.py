"""Measure backup / incremental / restore throughput on a generated dataset.

    python -m tests.repo.bench_backup [--size-mb 200] [--workers 2] [--dir /tmp/kkbench]

The dataset: a few large files (half random, half compressible text-like bytes)
and a directory of small files, like a database volume next to an app's config.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage


def make_dataset(root: Path, size_mb: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    total = 0
    big = size_mb * 1024 * 1024 * 9 // 10
    n_big = 4
    for i in range(n_big):
        with open(root / f"big-{i}.dat", "wb") as fh:
            remaining = big // n_big
            while remaining > 0:
                if rng.random() < 0.5:
                    block = os.urandom(min(remaining, 1 << 20))
                else:
                    block = b" ".join(rng.choice(words) for _ in range(200000))[: min(remaining, 1 << 20)]
                fh.write(block)
                remaining -= len(block)
                total += len(block)
    small = root / "small"
    small.mkdir(exist_ok=True)
    i = 0
    while total < size_mb * 1024 * 1024:
        sub = small / f"d{i // 100}"
        sub.mkdir(exist_ok=True)
        data = b" ".join(rng.choice(words) for _ in range(rng.randint(100, 4000)))
        (sub / f"f{i}.txt").write_bytes(data)
        total += len(data)
        i += 1
    return total


def touch_changes(root: Path, fraction: float = 0.01, seed: int = 2) -> None:
    rng = random.Random(seed)
    for f in sorted(root.glob("big-*.dat")):
        size = f.stat().st_size
        with open(f, "r+b") as fh:
            for _ in range(max(1, int(size * fraction) // 65536)):
                fh.seek(rng.randrange(0, size - 65536))
                fh.write(os.urandom(65536))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--level", type=int, default=3)
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="kkbench-"))
    data = base / "data"
    if not data.exists():
        t = time.perf_counter()
        total = make_dataset(data, args.size_mb)
        print(f"dataset: {total / 1e6:.0f} MB in {time.perf_counter() - t:.1f}s")
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    repo_dir = base / "repo"
    shutil.rmtree(repo_dir, ignore_errors=True)
    os.system("sync")
    repo = Repository.init(FilesystemStorage(repo_dir, create=True), passphrase="bench", kdf=KdfParams.cheap(),
                           workers=args.workers, compression_level=args.level)
    t = time.perf_counter()
    res = repo.backup(data)
    dt = time.perf_counter() - t
    print(f"full backup: {total / 1e6:.0f} MB in {dt:.2f}s = {total / dt / 1e6:.0f} MB/s; "
          f"stored {res.stats.new_stored_bytes / 1e6:.0f} MB, packs {res.stats.packs}")
    touch_changes(data)
    t = time.perf_counter()
    res2 = repo.backup(data, parent=res.snapshot_id)
    dt = time.perf_counter() - t
    print(f"incremental (1% changed): {dt:.2f}s, new {res2.stats.new_bytes / 1e6:.1f} MB")
    out = base / "restore"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    r = repo.restore(res2.snapshot_id, out)
    dt = time.perf_counter() - t
    print(f"restore: {r.bytes / 1e6:.0f} MB in {dt:.2f}s = {r.bytes / dt / 1e6:.0f} MB/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
