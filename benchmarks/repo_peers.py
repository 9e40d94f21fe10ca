"""Benchmark: the Kubekeep repository against restic and kopia on the same volume, in the same run.

    python benchmarks/repo_peers.py --size 1GiB --copy --out docs/benchmarks.md
    python benchmarks/repo_peers.py --size 8GiB --repeat 1 --no-s3 --out docs/benchmarks.md   # RSS vs size

Peers (built from Go modules by ``benchmarks/build-peers.sh``, cached outside the repository):
restic v0.18.1 with ``--compression auto`` (repository version 2), and kopia v0.21.1 with the
global policy ``--compression zstd-fastest`` (how Velero's data mover runs it); every tool keeps
its default key derivation, chunker, pack size and uses every core.

Steps, for each tool, on the same warm data (page cache; dropping caches needs
privileges this benchmark does not assume):

1. full backup of version 1 of the volume (benchmarks/volume.py) into a fresh
   repository on the local filesystem;
2. the volume becomes version 2 in place (~1 % of the bytes changed, scattered,
   plus a new 10 MiB file); incremental backup against the first snapshot;
3. restore of the latest snapshot into an empty directory (verified byte for
   byte against the volume in the first repetition).

Restored trees are kept until the end of the run (``work/restored``; ``Restored``), not deleted
before the next tool restores: on ext4 without a journal (this machine's root filesystem) a new
inode is not given a number freed in the last seconds (up to 5 minutes while the inode table is
dirty), so creating 8,304 files right after deleting 8,304 scans past every one of them, and the
tool that restored next paid up to 2x its time in system CPU (measured: 5.5 s -> 12.6 s wall for
Kubekeep's restore right after an ``rm -rf`` of the previous restore). Kept trees are flushed to disk
(``sync``, untimed) after each restore, so that no tool writes while another's gigabyte is still dirty.

Each step is a fresh process of the tool's own command line; its wall time, CPU time and peak
RSS (GNU ``time``: ru_maxrss of the child) are recorded, and the repository's size after each
backup. The sequence runs ``--repeat`` times (the tools rotate which goes first); tables show
the best time and the spread, and the 1-minute load average when the best run started.

Then a full backup and a restore run against SeaweedFS on loopback (``kubekeep.testbed.seaweedfs``)
through each tool's S3 backend. With ``--copy``, the DR-copy benchmark (benchmarks/drcopy.py) copies
repository A after its full and incremental backups (``restic copy``; Kubekeep's copy is pending).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import drcopy  # noqa: E402
import volume  # noqa: E402
from peers import (  # noqa: E402
    TOOLS,
    Kubekeep,
    S3Server,
    Samples,
    Tool,
    fmt_bytes,
    loadavg,
    machine_info,
    replace_section,
    run,
    say,
    tree_bytes,
    tree_digest,
)

#: text after this marker inside the section is kept when the tables are regenerated
KEEP_MARKER = "<!-- kept by repo_peers.py: analysis below -->"
RSS_TARGET = 200 * 2**20


@dataclass
class Results:
    steps: dict[tuple[str, str], Samples] = field(default_factory=dict)

    def sample(self, tool: str, step: str) -> Samples:
        return self.steps.setdefault((tool, step), Samples())

    def get(self, tool: str, step: str) -> Samples | None:
        return self.steps.get((tool, step))


@dataclass
class Restored:
    """Where restores go: a new directory each, all deleted together at the end of the run (see the module's
    docstring), or at once after each restore when the disk cannot hold them all."""

    root: Path
    keep: bool
    count: int = 0

    def target(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:02d}-{name}"

    def done(self, target: Path) -> None:
        if not self.keep:
            shutil.rmtree(target)
        # untimed: the restored gigabyte goes to disk now, not while the next tool runs (the kernel throttles a
        # writer once a few GiB are dirty; seen: the third restore of a repetition ~1.5x its first)
        os.sync()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


#: the incremental's unavoidable work on one core: read each file the change touched (whole: a changed file
#: is read again, by every tool) and cut it with FastCDC, each chunk hashed with keyed BLAKE3 (the dedup
#: lookup); thread CPU seconds, files, bytes. The new chunks' compression and encryption (~20 MiB) left out.
_CHANGED_FILES_WORK = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
import blake3, pyfastcdc, volume
from kubekeep.repo.format import DEFAULT_CHUNKER as P
root, size = sys.argv[1], volume.parse_size(sys.argv[2])
paths = sorted({c.path for c in volume.changes(size)} | {volume.NEW_FILE})
cdc = pyfastcdc.FastCDC(P["avg_size"], min_size=P["min_size"], max_size=P["max_size"],
                        normalized_chunking=P["normalization"], seed=0)
key = os.urandom(32)
start = time.thread_time()
total = 0
for path in paths:
    with open(os.path.join(root, path), "rb") as fh:
        data = fh.read()
    with memoryview(data) as view:
        for c in cdc.cut_buf(data):
            blake3.blake3(view[c.offset:c.offset + c.length], key=key).digest()
    total += len(data)
print(f"{time.thread_time() - start:.3f} {len(paths)} {total}")
"""


def incremental_floor(tool: Tool, vol: Path, work: Path, size: int, results: Results) -> None:
    """The incremental's floor, measured in the same round: a backup of an empty directory into a fresh
    repository (the CLI's fixed cost: interpreter, imports, key derivation, index, snapshot) and the one-core
    CPU of reading, chunking and hashing the files the change touched."""
    empty, repo = work / "floor-empty", str(work / "floor-repo")
    shutil.rmtree(repo, ignore_errors=True)
    empty.mkdir(exist_ok=True)
    tool.init(repo)
    r = tool.backup(repo, empty, incremental=False)
    results.sample(tool.name, "floor: fixed").add(r)
    shutil.rmtree(repo)
    w = run([sys.executable, "-c", _CHANGED_FILES_WORK, str(vol), str(size), str(Path(__file__).parent)], tool.env)
    cpu, files, nbytes = w.output.split()[-3:]
    results.sample(tool.name, "floor: changed files").add(w, files=int(files), bytes=int(nbytes),
                                                          cpu_ms=round(float(cpu) * 1000))
    say(f"  {tool.name} incremental floor: fixed {r.seconds:.2f}s, changed files {files} ({fmt_bytes(int(nbytes))}) "
        f"{float(cpu):.2f}s of one core")


def _marker(vol: Path) -> Path:
    """Says that ``vol`` holds version 1 of the volume at a size (written after generating or reverting it,
    removed before changing it): ``--reuse-volume`` then skips generating it again."""
    return vol.parent / (vol.name + ".version1")


def local_round(tools: list[Tool], vol: Path, work: Path, size: int, results: Results, verify: bool,
                copies: drcopy.CopyBench | None, restored: Restored, revert: bool = True) -> None:
    repos = {t.name: str(work / f"repo-{t.name.lower()}") for t in tools}
    for t in tools:
        shutil.rmtree(repos[t.name], ignore_errors=True)
        t.init(repos[t.name])
    for t in tools:
        r = t.backup(repos[t.name], vol, incremental=False)
        results.sample(t.name, "full").add(r, stored=tree_bytes(Path(repos[t.name])))
        say(f"  {t.name} full backup {r.seconds:.2f}s cpu {r.cpu:.1f}s rss {fmt_bytes(r.peak_rss)} load {r.load}")
    if copies is not None:
        copies.new_round()
        copies.after_backup("full", repos)
    _marker(vol).unlink(missing_ok=True)
    volume.apply_changes(vol, size)
    for t in tools:
        r = t.backup(repos[t.name], vol, incremental=True)
        results.sample(t.name, "incremental").add(r, stored=tree_bytes(Path(repos[t.name])))
        say(f"  {t.name} incremental {r.seconds:.2f}s cpu {r.cpu:.1f}s rss {fmt_bytes(r.peak_rss)} load {r.load}")
        if isinstance(t, Kubekeep):
            incremental_floor(t, vol, work, size, results)
    if copies is not None:
        copies.after_backup("incremental", repos)
    expected = tree_digest(vol) if verify else None
    for t in tools:
        target = restored.target(f"restore-{t.name.lower()}")
        r = t.restore(repos[t.name], target, vol)
        results.sample(t.name, "restore").add(r, restored=tree_bytes(target))
        say(f"  {t.name} restore {r.seconds:.2f}s cpu {r.cpu:.1f}s rss {fmt_bytes(r.peak_rss)} load {r.load}")
        if expected is not None and tree_digest(target) != expected:
            raise RuntimeError(f"{t.name}: restored tree differs from the volume")
        restored.done(target)
    if revert:  # not after the last round with nothing to follow (8 GiB: ~10 min of regenerating files)
        volume.revert_changes(vol, size)
        _marker(vol).write_text(str(size))
    for t in tools:
        shutil.rmtree(repos[t.name])


def s3_round(tools: list[Tool], vol: Path, s3: S3Server, bucket: str, rep: int,
             results: Results, restored: Restored) -> None:
    for t in tools:
        t.use_s3(s3)
        loc = t.location("s3", f"{bucket}/{t.name.lower()}-r{rep}")
        t.init(loc)
        r = t.backup(loc, vol, incremental=False)
        results.sample(t.name, "s3 full").add(r)
        say(f"  {t.name} S3 full backup {r.seconds:.2f}s cpu {r.cpu:.1f}s rss {fmt_bytes(r.peak_rss)}")
        target = restored.target(f"restore-s3-{t.name.lower()}")
        r = t.restore(loc, target, vol)
        results.sample(t.name, "s3 restore").add(r, restored=tree_bytes(target))
        say(f"  {t.name} S3 restore {r.seconds:.2f}s cpu {r.cpu:.1f}s rss {fmt_bytes(r.peak_rss)}")
        restored.done(target)


def incremental_floor_lines(results: Results, peers: list[str]) -> list[str]:
    fixed, work = results.get("Kubekeep", "floor: fixed"), results.get("Kubekeep", "floor: changed files")
    inc = results.get("Kubekeep", "incremental")
    if fixed is None or work is None or inc is None:
        return []
    cpu = min(work.values["cpu_ms"]) / 1000
    floor = fixed.best + cpu / 2
    best = min(((s.best, n) for n in peers if (s := results.get(n, "incremental")) is not None), default=None)
    against = (f"; the target, 0.5 × {best[1]}'s {best[0]:.2f} s, is {0.5 * best[0]:.2f} s"
               f"{' (below the floor)' if 0.5 * best[0] < floor else ''}" if best else "")
    return ["", f"Floor of the incremental, same run: Kubekeep's CLI backing up an empty directory into a fresh "
            f"repository (interpreter, imports, key derivation, snapshot) **{fixed.best:.2f} s** (best of "
            f"{len(fixed.seconds)}, cpu {min(fixed.cpu):.2f} s), plus reading, cutting (FastCDC) and hashing "
            f"(keyed BLAKE3) the {min(work.values['files'])} files the change touched "
            f"({fmt_bytes(min(work.values['bytes']))}, read whole as every tool does) **{cpu:.2f} s of one core**, "
            f"shared by 2 cores: **{floor:.2f} s** before compressing, encrypting and writing the new chunks"
            f"{against}; Kubekeep measured {inc.best:.2f} s."]


def render(results: Results, tools: list[Tool], size_label: str, volume_bytes: int, file_count: int,
           changed: int, repeat: int, s3_repeat: int, command: str, loads: list[float], notes: list[str],
           copies: drcopy.CopyBench | None, kept_restores: bool = True) -> str:
    names = [t.name for t in tools]
    peers = [n for n in names if n != "Kubekeep"]

    def cell(s: Samples | None) -> str:
        return "—" if s is None else f"{s.best:.2f} s (±{s.spread:.0%}, cpu {min(s.cpu):.1f} s)"

    def ratio(step: str) -> str:
        k = results.get("Kubekeep", step)
        best = min((s.best for n in peers if (s := results.get(n, step)) is not None), default=None)
        if k is None or best is None:
            return "—"
        return f"**{k.best / best:.2f}×**{' ✔' if k.best / best <= 0.5 else ' ✘'}"

    header = "| step | " + " | ".join(names) + " | Kubekeep / best peer (target ≤ 0.5×) |"
    sep = "|---" * (len(names) + 2) + "|"
    lines = [f"## Volume: Kubekeep vs restic vs kopia ({size_label})", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by:", "", "```", command, "```", "",
             f"- {machine_info()}",
             *[f"- {t.version()}" for t in tools],
             f"- load average (1 min) at the start of the steps: {min(loads):.1f}–{max(loads):.1f} on 2 cores "
             f"(median {sorted(loads)[len(loads) // 2]:.1f})",
             f"- volume: {fmt_bytes(volume_bytes)} in {file_count} files — "
             "`benchmarks/volume.py` (30 % JSON rows, 15 % 8 KiB database pages, 30 % random, "
             "15 % repeated 1 MiB blocks, 10 % small config files)",
             f"- change for the incremental: {fmt_bytes(changed)} written in place "
             "(8 KiB page rewrites, 64 KiB overwrites, 16 KiB row runs, small files rewritten) "
             f"+ a new {fmt_bytes(volume.NEW_FILE_SIZE)} file",
             f"- times: best of {repeat} (local) / {s3_repeat} (S3); ± is (worst − best) / best; cpu is the "
             "user + system time of that best run",
             "- each step is a fresh process of the tool's CLI, key derivation included (defaults: argon2id "
             "64 MiB for Kubekeep, scrypt for restic and kopia); caches not dropped, every tool reads the "
             "same warm volume; the tools' own caches are emptied between repetitions",
             "- every restore goes to a new directory and is flushed to disk (`sync`, untimed) before the next "
             "step; " + (
                 "all are deleted at the end of the run (on ext4 without a journal, files created just after "
                 "thousands were deleted cost up to 2x: see the module's docstring)" if kept_restores else
                 "**each was deleted right after its check (not enough disk to keep them): the next restore's "
                 "file creation may have paid for it**"),
             "", "### Local filesystem repository", "", header, sep]
    for label, step in (("full backup", "full"), ("incremental (1 % change)", "incremental"),
                        ("restore (latest)", "restore"), ("full backup to S3", "s3 full"),
                        ("restore from S3", "s3 restore")):
        if all(results.get(n, step) is None for n in names):
            continue
        if step == "s3 full":
            lines += ["", "### S3 repository (SeaweedFS `weed mini` on loopback, sharing the 2 cores)", "",
                      header, sep]
        lines.append(f"| {label} | " + " | ".join(cell(results.get(n, step)) for n in names) + f" | {ratio(step)} |")

    lines += incremental_floor_lines(results, peers)

    def stored(n: str, step: str) -> int:
        s = results.get(n, step)
        return min(s.values["stored"]) if s and "stored" in s.values else 0

    change = {n: stored(n, "incremental") - stored(n, "full") for n in names}
    best_change = min((change[n] for n in peers if change[n]), default=0)
    lines += ["", "| bytes | " + " | ".join(names) + " | Kubekeep / best peer (target ≤ 0.4×) |", sep,
              "| repository after full backup | " + " | ".join(fmt_bytes(stored(n, "full")) for n in names) + " | |",
              "| repository after incremental | "
              + " | ".join(fmt_bytes(stored(n, "incremental")) for n in names) + " | |",
              "| **stored for the change** | " + " | ".join(fmt_bytes(change[n]) for n in names) + " | "
              + (f"**{change['Kubekeep'] / best_change:.2f}×**"
                 f"{' ✔' if change['Kubekeep'] / best_change <= 0.4 else ' ✘'} |"
                 if best_change and "Kubekeep" in change else "— |"),
              "", "| peak RSS (max over repetitions) | " + " | ".join(names) + " | Kubekeep target ≤ 200 MiB |", sep]
    for label, step in (("full backup", "full"), ("incremental", "incremental"), ("restore", "restore"),
                        ("S3 full backup", "s3 full"), ("S3 restore", "s3 restore")):
        if all(results.get(n, step) is None for n in names):
            continue
        cells = [fmt_bytes(max(s.peak_rss)) if (s := results.get(n, step)) else "—" for n in names]
        k = results.get("Kubekeep", step)
        ok = "" if k is None else (" ✔" if max(k.peak_rss) <= RSS_TARGET else " ✘")
        lines.append(f"| {label} | " + " | ".join(cells) + f" |{ok} |")
    if copies is not None:
        lines += ["", *copies.render()]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3-repeat", type=int, default=1)
    ap.add_argument("--tools", default="kubekeep,restic,kopia", help="comma-separated: kubekeep, restic, kopia")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the results section into this markdown file")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--copy", action="store_true", help="also run the DR-copy benchmark (benchmarks/drcopy.py)")
    ap.add_argument("--note", action="append", default=[], help="a line appended under the tables")
    ap.add_argument("--reuse-volume", action="store_true",
                    help="keep the work directory's volume when an earlier run left version 1 of this size there")
    args = ap.parse_args()
    size = volume.parse_size(args.size)
    work = args.work or Path(tempfile.mkdtemp(prefix="kubekeep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    vol = work / "volume"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEKEEP_", "RESTIC_", "KOPIA_", "AWS_"))}
    command = "python benchmarks/repo_peers.py " + " ".join(sys.argv[1:])
    tools = [TOOLS[name.strip()](env, work) for name in args.tools.split(",")]
    if args.reuse_volume and _marker(vol).exists() and _marker(vol).read_text() == str(size):
        say(f"reusing the {fmt_bytes(size)} volume in {vol}")
    else:
        say(f"generating {fmt_bytes(size)} volume in {vol}")
        _marker(vol).unlink(missing_ok=True)
        volume.generate(vol, size)
        _marker(vol).write_text(str(size))
    volume_bytes = tree_bytes(vol)
    file_count = sum(len(f) for _, _, f in os.walk(vol))
    changed = sum(len(c.data) for c in volume.changes(size))
    results = Results()
    loads: list[float] = []
    restores = len(tools) * (args.repeat + (0 if args.no_s3 else args.s3_repeat))
    restored = Restored(work / "restored", keep=shutil.disk_usage(work).free > (restores + 4) * volume_bytes)
    restored.remove()  # an earlier run's, long before any restore of this one
    if not restored.keep:
        say(f"not enough room to keep {restores} restores until the end: each is deleted after its check")
    with ExitStack() as stack:
        stack.callback(restored.remove)
        s3: S3Server | None = None
        bucket = None
        if not args.no_s3:
            from kubekeep.testbed.seaweedfs import SeaweedFS

            shutil.rmtree(work / "seaweedfs", ignore_errors=True)
            server = stack.enter_context(SeaweedFS(data_dir=work / "seaweedfs"))
            stack.callback(shutil.rmtree, work / "seaweedfs", True)
            bucket = server.create_bucket(f"bench-{int(time.time() * 1000)}")
            s3 = S3Server(server.endpoint_url, server.access_key, server.secret_key, server.region)
        copies = drcopy.CopyBench(tools, work, s3, bucket) if args.copy else None
        for rep in range(args.repeat):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            say(f"repetition {rep + 1}/{args.repeat} (load {loadavg():.1f})")
            loads.append(loadavg())
            last = rep == args.repeat - 1 and (s3 is None or bucket is None)
            local_round(order, vol, work, size, results, verify=rep == 0, copies=copies, restored=restored,
                        revert=not last)
            for t in tools:
                t.reset_cache()
        if s3 is not None and bucket is not None:
            for rep in range(args.s3_repeat):
                say(f"S3 repetition {rep + 1}/{args.s3_repeat} (load {loadavg():.1f})")
                loads.append(loadavg())
                s3_round(tools, vol, s3, bucket, rep, results, restored)
                for t in tools:
                    t.reset_cache()
        # written before the servers stop: a server slow to stop must not cost the run its results
        loads += [x for s in results.steps.values() for x in s.load]
        section = render(results, tools, args.size, volume_bytes, file_count, changed, args.repeat,
                         0 if args.no_s3 else args.s3_repeat, command, loads, args.note, copies, restored.keep)
        print(section)
        if args.out:
            replace_section(args.out, section, KEEP_MARKER)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
