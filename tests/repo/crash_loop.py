"""Kill -9 backups and prunes at random moments, then prove the repository is still sound.

    python -m tests.repo.crash_loop [--iterations 30] [--seed 1] [--dir /tmp/kkcrash]

Each iteration starts a subprocess that backs up a source tree generated from a
seed (recorded in the snapshot's metadata) or prunes a snapshot, and kills it
with SIGKILL after a random delay (some runs finish). After every iteration:
check passes. At the end: check --read-data passes, a new backup works, and every
remaining snapshot restores to exactly the tree its seed generates.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.errors import LockedError
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

PASSWORD = "crash"
CHUNKER = {"min_size": 2048, "avg_size": 8192, "max_size": 32768}
LOCK_TTL = 2.0


def make_source(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    shared = random.Random(0)  # content common to all seeds, so dedup and prune have work to do
    for d in range(5):
        sub = root / f"d{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(10):
            size = rng.choice([0, 100, 20_000, 150_000, 400_000])
            common = shared.randbytes(size // 2)
            (sub / f"f{f}.bin").write_bytes(common + rng.randbytes(size - size // 2))
    (root / "seed.txt").write_text(str(seed))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def open_repo(repo_dir: Path) -> Repository:
    return Repository.open(FilesystemStorage(repo_dir), passphrase=PASSWORD, lock_ttl=LOCK_TTL)


def child(repo_dir: Path, action: str, arg: str) -> None:
    repo = open_repo(repo_dir)
    if action == "backup":
        src = repo_dir.parent / f"src-{arg}"
        repo.backup(src, metadata={"seed": arg})
    else:
        try:
            repo.prune([arg] if arg else [], wait_timeout=LOCK_TTL * 3, poll=0.2)
        except LockedError:
            sys.exit(3)  # a killed prune's lock has not expired yet: refusing is correct


def run_crash_loop(base: Path, iterations: int, seed: int, log: bool = True) -> dict[str, int]:
    rng = random.Random(seed)
    repo_dir = base / "repo"
    Repository.init(FilesystemStorage(repo_dir, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap(),
                    chunker=CHUNKER, pack_size=128 * 1024)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")]))
    dropped: set[str] = set()
    counts = {"killed": 0, "finished": 0, "backups": 0, "prunes": 0}
    typical = 1.0
    for i in range(iterations):
        repo = open_repo(repo_dir)
        snaps = [s.id for s in repo.snapshots()]
        if snaps and rng.random() < 0.3:
            action, arg = "prune", rng.choice(snaps)
            dropped.add(arg)
            counts["prunes"] += 1
        else:
            action, arg = "backup", str(rng.randrange(6))
            src = base / f"src-{arg}"
            if not src.exists():  # made here: a killed child must not leave a half-made source
                make_source(src, int(arg))
            counts["backups"] += 1
        # one run in five is left to finish, so the loop makes progress however slow the machine is (a
        # loaded machine made every child outlive its random delay: nothing but kills, nothing to restore)
        let_finish = rng.random() < 0.2
        delay = 600.0 if let_finish else rng.uniform(0.05, typical * 1.1)
        proc = subprocess.Popen([sys.executable, "-m", "tests.repo.crash_loop", "--child", str(repo_dir),
                                 action, arg], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start = time.monotonic()
        try:
            proc.wait(timeout=delay)
            counts["finished"] += 1
            typical = 0.7 * typical + 0.3 * (time.monotonic() - start)  # a finished run is a true duration
            if proc.returncode == 3:
                counts["refused"] = counts.get("refused", 0) + 1
            elif proc.returncode != 0:
                raise AssertionError(f"{action} {arg} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            counts["killed"] += 1
            # learn from kills too: on a loaded machine (slow start-up) no child would ever finish
            # if the estimate only moved when one did
            typical *= 1.05
        if proc.stderr:
            proc.stderr.close()
        result = open_repo(repo_dir).check()
        if not result.ok:
            raise AssertionError(f"iteration {i} ({action} killed={proc.returncode != 0}): {result.errors}")
        if log:
            print(f"{i:3d} {action:6s} {'killed' if proc.returncode else 'done  '} after {delay:.2f}s: check ok",
                  flush=True)
    # the end state: read every blob, back up again, restore every snapshot
    time.sleep(LOCK_TTL)  # locks of killed processes expire
    repo = open_repo(repo_dir)
    result = repo.check(read_data=True)
    if not result.ok:
        raise AssertionError(f"final check --read-data: {result.errors}")
    src = base / "final-src"
    make_source(src, 99)
    repo.backup(src, metadata={"seed": "99"})
    restored = 0
    for snap in repo.snapshots():
        out = base / f"restore-{snap.id[:12]}"
        repo.restore(snap.id, out)
        expected_root = base / f"expected-{snap.metadata['seed']}"
        if not expected_root.exists():
            make_source(expected_root, int(snap.metadata["seed"]))
        if tree_bytes(out) != tree_bytes(expected_root):
            raise AssertionError(f"snapshot {snap.id[:12]} (seed {snap.metadata['seed']}) restored wrong data")
        restored += 1
    counts["restored"] = restored
    final = repo.prune([], wait_timeout=LOCK_TTL * 3, poll=0.2)
    counts["final_prune_deleted"] = final.packs_deleted
    if not repo.check(read_data=True).ok:
        raise AssertionError("check after the final prune failed")
    return counts


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="kkcrash-"))
    print(run_crash_loop(base, args.iterations, args.seed))


if __name__ == "__main__":
    main()
