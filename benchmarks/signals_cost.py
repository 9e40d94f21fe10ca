"""Cost of the volume signals as a share of backup time, on the 1 GiB benchmark volume.

    python benchmarks/signals_cost.py --work /tmp/kk-signals [--size 1GiB] [--repeat 3] [--s3]

Steps, in one process (the repository open and its index loaded, as in a backup run):
full backup -> signals of the first point (a full tree walk: the extension histogram);
then ``--repeat`` times: change the volume in place (benchmarks/volume.py version 2, or back to
version 1) -> incremental backup -> signals against the previous snapshot.
Prints one line per step and the share; ``--json FILE`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.volume import apply_changes, generate, parse_size, revert_changes  # noqa: E402
from kubekeep.repo.crypto import KdfParams  # noqa: E402
from kubekeep.repo.repository import Repository  # noqa: E402
from kubekeep.repo.storage import FilesystemStorage, Storage  # noqa: E402
from kubekeep.signals.volume import volume_signals  # noqa: E402


def _storage(args: argparse.Namespace, work: Path) -> tuple[Storage, Any]:
    if not args.s3:
        return FilesystemStorage(work / "repo", create=True), None
    from kubekeep.repo.storage import S3Storage
    from kubekeep.testbed.seaweedfs import SeaweedFS

    server = SeaweedFS(data_dir=work / "seaweedfs")
    server.start()
    storage = S3Storage(server.s3_config("signals-bench"))
    storage.create_location()
    return storage, server


@dataclass
class Bench:
    """What both signals benchmarks start from: their arguments, the work directory, the benchmark volume
    at version 1, its size and version file, and an empty repository's storage (and SeaweedFS, with --s3)."""

    args: argparse.Namespace
    work: Path
    volume: Path
    state: Path
    total: int
    storage: Storage
    server: Any


def prepare(doc: str | None, *, repeat: int, prefix: str) -> Bench:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--s3", action="store_true", help="repository on a local SeaweedFS instead of the filesystem")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    total = parse_size(args.size)
    volume = work / "volume"
    state = work / "volume-version"  # beside the volume, so the volume holds only its files
    if not volume.exists() or not state.exists():
        generate(volume, total)
        state.write_text("1")
    elif state.read_text().strip() == "2":
        revert_changes(volume, total)
        state.write_text("1")
    shutil.rmtree(work / "repo", ignore_errors=True)
    storage, server = _storage(args, work)
    return Bench(args, work, volume, state, total, storage, server)


def main() -> None:
    bench = prepare(__doc__, repeat=3, prefix="kk-signals-")
    args, volume, state, total = bench.args, bench.volume, bench.state, bench.total
    storage, server = bench.storage, bench.server
    rows: list[dict[str, Any]] = []
    try:
        repo = Repository.init(storage, passphrase="bench", kdf=KdfParams.cheap())
        t, c = time.perf_counter(), time.process_time()
        first = repo.backup(volume)
        backup_s, backup_cpu = time.perf_counter() - t, time.process_time() - c
        c = time.process_time()
        sig = volume_signals(repo, first.snapshot_id, None, namespace="bench", pvc="data")
        rows.append({"step": "full", "backup_s": backup_s, "signals_s": sig.seconds, "backup_cpu_s": backup_cpu,
                     "signals_cpu_s": time.process_time() - c, "files": sig.files, "changed": 0})
        previous, extensions, dedup = first.snapshot_id, sig.extensions, None
        changed = False
        for _ in range(args.repeat):
            if changed:
                revert_changes(volume, total)
            else:
                apply_changes(volume, total)
            changed = not changed
            state.write_text("2" if changed else "1")
            t, c = time.perf_counter(), time.process_time()
            result = repo.backup(volume, parent=previous)
            backup_s, backup_cpu = time.perf_counter() - t, time.process_time() - c
            c = time.process_time()
            sig = volume_signals(repo, result.snapshot_id, previous, namespace="bench", pvc="data",
                                 previous_extensions=extensions, previous_dedup_ratio=dedup)
            rows.append({"step": "incremental", "backup_s": backup_s, "signals_s": sig.seconds,
                         "backup_cpu_s": backup_cpu, "signals_cpu_s": time.process_time() - c, "files": sig.files,
                         "changed": sig.files_changed, "added": sig.files_added, "deleted": sig.files_deleted,
                         "bytes_changed": sig.bytes_changed, "high_entropy_share": round(sig.high_entropy_share, 3)})
            previous, extensions, dedup = result.snapshot_id, sig.extensions, sig.dedup_ratio
        if changed:
            revert_changes(volume, total)
            state.write_text("1")
    finally:
        if server is not None:
            server.stop()
    for row in rows:
        row["share"] = row["signals_s"] / row["backup_s"]
        row["cpu_share"] = row["signals_cpu_s"] / row["backup_cpu_s"]
        print(f"{row['step']:12s} backup {row['backup_s']:7.3f} s ({row['backup_cpu_s']:6.2f} s CPU)  signals "
              f"{row['signals_s'] * 1000:7.1f} ms ({row['signals_cpu_s'] * 1000:6.1f} ms CPU)  share "
              f"{row['share'] * 100:5.2f} % (CPU {row['cpu_share'] * 100:5.2f} %)  files changed {row['changed']}")
    incr = [r for r in rows if r["step"] == "incremental"]
    if incr:
        for key, what in (("share", "wall-clock"), ("cpu_share", "CPU")):
            values = sorted(r[key] for r in incr)
            print(f"incremental {what} share: median {values[len(values) // 2] * 100:.2f} %, "
                  f"worst {values[-1] * 100:.2f} %")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "storage": "s3" if args.s3 else "filesystem",
                                         "cpus": os.cpu_count(), "python": platform.python_version(),
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
