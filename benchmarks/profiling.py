"""Profiling helpers for the benchmarks: where Kubekeep's time and memory go.

CPU: ``py-spy record -f raw`` (sampling, from PyPI: ``pip install py-spy``) of a whole process;
``summarize`` turns its collapsed stacks into the top functions by self and by inclusive share.
Memory: ``PeakSampler`` runs tracemalloc in the profiled process and keeps the snapshot taken
when the traced heap was largest, with the process's RSS at that moment.

    # profile Kubekeep's volume steps (full, incremental, local restore, S3 restore) on the 1 GiB volume
    python benchmarks/profiling.py volume --size 1GiB --out /tmp/prof
    # summarize one py-spy file
    python benchmarks/profiling.py summarize /tmp/prof/full.pyspy.txt
    # run the kubekeep CLI under tracemalloc (used by `volume`)
    python benchmarks/profiling.py mem /tmp/prof/full.tracemalloc.txt -- repo backup --repo R SRC
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """tracemalloc in this process; the snapshot of the largest traced heap is written at ``stop``."""

    def __init__(self, out: str | Path, interval: float = 0.1, frames: int = 6) -> None:
        self.out = Path(out)
        self.interval = interval
        self.frames = frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-sampler", daemon=True)
        self._best = 0
        self._snapshot: tracemalloc.Snapshot | None = None
        self._rss_at_best = 0
        self._t0 = time.monotonic()
        self._at = 0.0

    def start(self) -> None:
        tracemalloc.start(self.frames)
        self._t0 = time.monotonic()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        current, _peak = tracemalloc.get_traced_memory()
        if current > self._best + max(self._best // 20, 4 << 20):
            self._snapshot = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),))
            self._best = current
            self._rss_at_best = _status("VmRSS")
            self._at = time.monotonic() - self._t0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        _current, peak = tracemalloc.get_traced_memory()
        lines = [f"traced peak {peak / 2**20:.1f} MiB; largest sampled heap {self._best / 2**20:.1f} MiB "
                 f"at {self._at:.1f} s, RSS then {self._rss_at_best / 2**20:.1f} MiB; "
                 f"process peak RSS (VmHWM, with tracemalloc's overhead) {_status('VmHWM') / 2**20:.1f} MiB", ""]
        if self._snapshot is not None:
            lines.append("## top 25 allocation sites (line)")
            for stat in self._snapshot.statistics("lineno")[:25]:
                frame = stat.traceback[0]
                lines.append(f"{stat.size / 2**20:9.2f} MiB {stat.count:9d} blocks  {frame.filename}:{frame.lineno}")
            lines += ["", "## top 12 allocation tracebacks"]
            for stat in self._snapshot.statistics("traceback")[:12]:
                lines.append(f"{stat.size / 2**20:.2f} MiB in {stat.count} blocks:")
                lines += [f"    {f.filename}:{f.lineno}" for f in stat.traceback if "site-packages" not in f.filename
                          or f is stat.traceback[0]]
        tracemalloc.stop()
        self.out.write_text("\n".join(lines) + "\n")


# ---- py-spy summaries --------------------------------------------------------------------------------

#: a sample whose stack holds one of these frames is a thread waiting (for a lock, a queue, I/O
#: readiness or a sleep): py-spy's --native mode reports such threads as active
WAITING = ("PyThread_acquire_lock_timed", "sem_timedwait", "sem_clockwait", "pthread_cond_wait",
           "pthread_cond_timedwait", "epoll_wait", "select (", "poll (", "nanosleep", "time_sleep")


def summarize(path: Path, top: int = 25) -> str:
    """Top functions of a py-spy raw (collapsed stacks) file: self share and inclusive share of the
    on-CPU samples (samples of waiting threads are counted apart and left out)."""
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f]
        if any(w in f for f in frames for w in WAITING):
            waiting += count
            continue
        total += count
        if frames:
            self_counts[_short(frames[-1])] += count
            files[_area(frames[-1])] += count
        for f in dict.fromkeys(_short(f) for f in frames):
            incl[f] += count
    if not total:
        return f"{path}: no samples\n"
    out = [f"{path.name}: {total} on-CPU samples at 100/s, all threads ({waiting} samples of waiting threads "
           "left out)", "", "self:"]
    out += [f"  {100 * c / total:5.1f} %  {f}" for f, c in self_counts.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {100 * c / total:5.1f} %  {f}" for f, c in incl.most_common(top)]
    out += ["", "self, by category of the leaf frame:"]
    out += [f"  {share:5.1f} %  {cat}" for cat, share in categorize(path)]
    out += ["", "self, by file:"]
    out += [f"  {100 * c / total:5.1f} %  {f}" for f, c in files.most_common(15)]
    return "\n".join(out) + "\n"


#: (category, substrings of a leaf frame), first match wins
CATEGORIES = (
    ("Prefect engine (task runs, parameter walks, heartbeats)", ("prefect/",)),
    ("GC (cyclic collector)", ("gc_collect_main", "gc_collect")),
    ("zstd", ("zstd.c", "ZSTD_", "zstd")),
    ("AES-GCM", ("_aesni", "aes", "gcm", "_rust.abi3", "libcrypto")),
    ("BLAKE3", ("blake3",)),
    ("FastCDC", ("fastcdc",)),
    ("syscalls: file create/open", ("open64", "openat", "lchown", "fchown", "utime", "chmod", "mkdir")),
    ("syscalls: read/write/fsync", ("read (libc", "write (libc", "pread", "pwrite", "fsync", "fdatasync",
                                    "readv", "writev", "ftruncate", "lseek")),
    ("syscalls: stat/listdir", ("stat (", "stat64", "lstat", "getdents", "scandir", "listdir")),
    ("memory (mmap/munmap/malloc/free)", ("munmap", "mmap", "malloc", "free (", "madvise", "brk", "realloc")),
    ("thread hand-off (semaphores, conditions, futures)", ("sem_post", "pthread_cond", "Semaphore.", "Condition.",
                                                            "Future.", "_WorkItem", "submit", "_worker (",
                                                            "futex", "Event.")),
    ("imports and start-up", ("importlib", "_compile_bytecode", "marshal", "<module>", "_find_and_load",
                              "_create_fn", "dataclass", "typing.py", "ForwardRef", "abc>", "ld-linux")),
    ("network / HTTP / TLS", ("sock", "recv", "send", "ssl", "http", "urllib3", "botocore", "connect")),
    ("JSON / YAML / serialisation", ("json", "yaml", "msgpack", "orjson", "pickle", "_json.c")),
    ("unresolved libc (memcpy, memset, ...)", ("0x",)),
    ("Kubekeep Python code", ("kubekeep/", "flows/", "tasks/", "blocks/")),
)


def categorize(path: Path) -> list[tuple[str, float]]:
    """Share of on-CPU samples per category of the leaf frame (see CATEGORIES)."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames or any(w in f for f in frames for w in WAITING):
            continue
        count = int(count_s)
        total += count
        leaf = frames[-1]
        short = _short(leaf)
        cat = next((c for c, keys in CATEGORIES if any(k in leaf or k in short for k in keys)), "other Python / C")
        counts[cat] += count
    return [(c, 100 * n / total) for c, n in counts.most_common()] if total else []


def _short(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    if "kubekeep" in parts or "flows" in parts or "tasks" in parts:
        idx = max(i for i, p in enumerate(parts) if p in ("kubekeep", "flows", "tasks", "blocks"))
        file = "/".join(parts[idx:])
    elif "site-packages" in parts:
        file = "/".join(parts[parts.index("site-packages") + 1:][:2])
    elif "/" in file and not file.startswith(("/", "<")):
        file = f"{parts[0]}: {Path(file).name}"  # py-spy names site-packages files from the package down
    else:
        file = Path(file).name
    return f"{name} ({file})"


def _area(frame: str) -> str:
    return _short(frame).split(" (", 1)[1].rstrip(")")


# ---- the volume profile --------------------------------------------------------------------------------

def mem_main(argv: list[str]) -> int:
    """``mem OUT -- CLI ARGS``: the kubekeep CLI under tracemalloc."""
    out, sep, *cli = argv
    assert sep == "--"
    sampler = PeakSampler(out)
    sampler.start()
    from flows.cli import main

    sys.argv = ["kubekeep", *cli]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sampler.stop()
    return 0


def volume_main(args: argparse.Namespace) -> int:
    import volume
    from peers import KUBEKEEP, Kubekeep, S3Server, fmt_bytes, run, say

    from kubekeep.testbed.seaweedfs import SeaweedFS

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kubekeep-prof-", dir=args.work))
    size = volume.parse_size(args.size)
    vol = work / "volume"
    volume.generate(vol, size)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEKEEP_", "AWS_"))}
    kk = Kubekeep(env, work)
    mem = [sys.executable, str(HERE / "profiling.py"), "mem"]
    summary: list[str] = []

    def steps(base: str, restore_only: bool, tag: str) -> None:
        """full, incremental and restore (or only the restore), once under py-spy, once under tracemalloc."""
        for mode in ("pyspy", "tracemalloc"):
            repo = f"{base}-{mode}"
            shutil.rmtree(repo, ignore_errors=True)
            kk.init(repo)
            cli_full = ["repo", "backup", "--repo", repo, str(vol)]
            cli_inc = [*cli_full, "--parent", "latest"]
            target = work / "restore"
            cli_restore = ["repo", "restore", "--repo", repo, "latest", "--target", str(target)]
            plan = [] if restore_only else [("full", cli_full), ("incremental", cli_inc)]
            plan.append(("restore", cli_restore))
            if restore_only:
                run([*KUBEKEEP, *cli_full], kk.env)
            for name, cli in plan:
                if name == "incremental":
                    volume.apply_changes(vol, size)
                shutil.rmtree(target, ignore_errors=True)
                label = f"{tag}{name}"
                if mode == "pyspy":
                    f = out / f"{label}.pyspy.txt"
                    r = run(["py-spy", "record", "--native", "-r", "100", "-f", "raw", "-o", str(f), "--",
                             *KUBEKEEP, *cli], kk.env)
                    summary.append(f"{label}: {r.seconds:.2f} s wall, {r.cpu:.2f} s cpu ({r.sys:.2f} s sys), "
                                   f"peak RSS {fmt_bytes(r.peak_rss)}, load {r.load}")
                    (out / f"{label}.pyspy.summary.txt").write_text(summarize(f))
                else:
                    run([*mem, str(out / f"{label}.tracemalloc.txt"), "--", *cli], kk.env)
                say(f"  {label} under {mode} done")
            shutil.rmtree(target, ignore_errors=True)
            volume.revert_changes(vol, size)

    steps(str(work / "repo"), restore_only=False, tag="")
    if not args.no_s3:
        with SeaweedFS(data_dir=work / "seaweedfs") as server:
            kk.use_s3(S3Server(server.endpoint_url, server.access_key, server.secret_key, server.region))
            bucket = server.create_bucket("prof")
            # the full backup to S3 is not profiled, only the restore from S3
            steps(f"s3://{bucket}/kubekeep", restore_only=True, tag="s3-")
    (out / "volume-summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "mem":
        return mem_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("files", type=Path, nargs="+")
    v = sub.add_parser("volume")
    v.add_argument("--size", default="1GiB")
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--work", type=Path, default=None)
    v.add_argument("--no-s3", action="store_true")
    args = ap.parse_args()
    if args.cmd == "summarize":
        for f in args.files:
            print(summarize(f))
        return 0
    return volume_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
