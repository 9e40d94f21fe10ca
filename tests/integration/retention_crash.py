"""kill -9 of retention runs (plan -> expire -> prune) at random moments, then prove the repository and
the catalog are still sound and every kept point restores.

    python -m tests.integration.retention_crash [--kills 10] [--seed 1] [--dir /tmp/kkret]

Before each run the parent writes new restore points, so every run has points to expire and packs to
reclaim. The child says when its work starts (after its imports) and when prune starts (after
expiry); it is killed with SIGKILL after a random share of the time that phase took in a finished
run, so kills land in prune (``--kills`` times) and in expiry, not in the interpreter's start-up.
After every run: `check` is clean. At the end a run is let finish, then:
`check --read-data` is clean, the catalog lists exactly the points whose records exist, every one of
them restores byte-identical, no snapshot belongs to a point that is not listed, and a catalog rebuilt
from the repository alone agrees.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubekeep.catalog import Catalog, list_restore_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

PASSWORD = "crash"
LOCK_TTL = 2.0
KEEP_LAST = 3
START = datetime(2026, 1, 1, 2, tzinfo=UTC)


def open_repo(repo_dir: Path) -> Repository:
    return Repository.open(FilesystemStorage(repo_dir), passphrase=PASSWORD, lock_ttl=LOCK_TTL)


def catalog_of(repo: Repository, cache: Path) -> Catalog:
    return Catalog(repo.storage, cache_dir=cache, codec=repo.catalog_codec())


def child(repo_dir: Path, cache: Path) -> None:
    from kubekeep.retention import RetentionRules, build_plan, collect_points, expire

    repo = open_repo(repo_dir)
    catalog = catalog_of(repo, cache)
    print("start", flush=True)
    plan = build_plan(collect_points(repo, catalog), RetentionRules(keep_last=KEEP_LAST), "UTC",
                      now=START + timedelta(days=400))
    expire(repo, catalog, plan, approved=True, reason="crash test")
    print("prune", flush=True)
    repo.prune([], wait_timeout=LOCK_TTL * 3, poll=0.2)


def _spawn(repo_dir: Path, cache: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "tests.integration.retention_crash", "--child", str(repo_dir),
                             str(cache)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_retention_crash_loop(base: Path, kills: int, seed: int, log: bool = True,
                             max_iterations: int = 40) -> dict[str, int]:
    from tests.integration.retention_points import CHUNKER, PACK_SIZE, digest_tree, write_point

    rng = random.Random(seed)
    repo_dir = base / "repo"
    repo = Repository.init(FilesystemStorage(repo_dir, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    digests: dict[str, tuple[str, dict[str, str]]] = {}
    counts = {"killed": 0, "killed_in_expiry": 0, "killed_in_prune": 0, "finished": 0, "points": 0}
    # seconds each phase of a finished run took (learned)
    took = {"expiry": 1.0, "prune": 1.0}
    day = 0
    iteration = 0
    while counts["killed_in_prune"] < kills:
        if iteration >= max_iterations:
            raise AssertionError(f"only {counts['killed']} kills in {iteration} runs: {counts}")
        repo = open_repo(repo_dir)
        catalog = catalog_of(repo, base / "cache-parent")
        for _ in range(rng.choice((1, 2, 3))):
            point = write_point(repo, catalog, base / "sources", app="db", started=START + timedelta(days=day),
                                seed=day, status="failed" if rng.random() < 0.15 else "succeeded")
            digests[point.id] = (point.volume_snapshot, point.digest)
            day += 1
            counts["points"] += 1
        repo.close()
        proc = _spawn(repo_dir, base / f"cache-child-{iteration}")
        assert proc.stdout is not None
        # kill in prune most of the time, in expiry otherwise
        target = "prune" if rng.random() < 0.7 else "expiry"
        proc.stdout.readline()  # "start": imports done, the repository is open
        started = time.monotonic()
        expiry_took = None
        if target == "prune":
            proc.stdout.readline()  # "prune": expiry is done
            expiry_took = time.monotonic() - started
            started = time.monotonic()
        delay = rng.uniform(0.0, took[target] * 1.1)
        try:
            proc.wait(timeout=delay)
            if proc.returncode != 0:
                raise AssertionError(f"run {iteration} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
            counts["finished"] += 1
            if target == "prune":
                took["prune"] = 0.6 * took["prune"] + 0.4 * (time.monotonic() - started)
            state = "done"
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            counts["killed"] += 1
            counts[f"killed_in_{target}"] += 1
            state = f"killed in {target}"
        if expiry_took is not None:
            took["expiry"] = 0.6 * took["expiry"] + 0.4 * expiry_took
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        result = open_repo(repo_dir).check()
        if not result.ok:
            raise AssertionError(f"run {iteration} ({state} after {delay:.2f}s): {result.errors}")
        if log:
            print(f"{iteration:3d} {state:16s} after {delay:.2f}s of ~{took[target]:.2f}s: check ok", flush=True)
        iteration += 1

    # the end state: one run finishes what the killed ones left, then everything is checked
    time.sleep(LOCK_TTL)
    proc = _spawn(repo_dir, base / "cache-final")
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"final run failed: {err.decode()}")
    repo = open_repo(repo_dir)
    result = repo.check(read_data=True)
    if not result.ok:
        raise AssertionError(f"final check --read-data: {result.errors}")
    catalog = catalog_of(repo, base / "cache-check")
    listed = {p.id: p for p in list_restore_points(catalog, statuses=None)}
    existing = set(repo.snapshot_ids())
    assert all(p.snapshot_id in existing for p in listed.values()), "the catalog lists a point whose record is gone"
    owners = {s.metadata.get("restore_point") for s in repo.snapshots()}
    assert owners <= set(listed), f"snapshots of points the catalog does not list: {owners - set(listed)}"
    succeeded = [p for p in listed.values() if p.status == "succeeded"]
    assert len(succeeded) == KEEP_LAST, listed
    for point_id in listed:
        volume_snapshot, digest = digests[point_id]
        target = base / f"restored-{point_id}"
        repo.restore(volume_snapshot, target)
        if digest_tree(target) != digest:
            raise AssertionError(f"{point_id} restored wrong data")
    counts["restored"] = len(listed)
    from kubekeep.restorepoint import rebuild_repository_catalog

    for info in list(repo.storage.list("catalog/")):
        repo.storage.delete(info.key)
    rebuild_repository_catalog(repo, cache_dir=str(base / "cache-rebuild"))
    rebuilt = {p.id for p in list_restore_points(catalog_of(repo, base / "cache-rebuilt"), statuses=None)}
    assert rebuilt == set(listed), (rebuilt, set(listed))
    return counts


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="kkret-"))
    print(run_retention_crash_loop(base, args.kills, args.seed))


if __name__ == "__main__":
    main()
