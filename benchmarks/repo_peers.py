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

For Kubekeep, each round also measures the floors its targets are held against (issue 15): the CLI's fixed
cost (a backup of an empty directory into a fresh repository) plus one core's CPU, shared by the 2 cores, of
what any tool must do with the primitives: for the full backup, read, cut, hash, compress, encrypt and write
the volume once; for the incremental, read, cut and hash the files the change touched; for the restore,
decrypt, decompress and verify the stored chunks, and ``cp -a`` the volume into a new directory (the kernel's
cost of creating and writing the files; kept with the restored trees).

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
    Run,
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

from kubekeep.repo.crypto import MIN_SAVING  # noqa: E402
from kubekeep.repo.format import DEFAULT_COMPRESSION_LEVEL  # noqa: E402

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


#: the start of every floor's child script (argv[1]: benchmarks/): the repository's default chunker with a fixed
#: seed (the cut's cost does not depend on it), a fixed key for the chunk ids and the AEAD, ``read`` (a file into
#: one reused buffer, as the archiver reads) and ``cpu`` (this process's user + system seconds: the reads and
#: writes are system time; pyfastcdc, blake3, zstd and AES-GCM all run on the calling thread)
_FLOOR_PRELUDE = """
import os, resource, struct, sys
sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]
import blake3, pyfastcdc, volume
from kubekeep.repo.format import DEFAULT_CHUNKER as P
cdc = pyfastcdc.FastCDC(P["avg_size"], min_size=P["min_size"], max_size=P["max_size"],
                        normalized_chunking=P["normalization"], seed=1)
key = bytes(range(32))
OVERHEAD = 28  # a sealed chunk's nonce and tag
#: a stored chunk's index entry: compressed?, raw length, sealed length (nonce + ciphertext + tag), id
ENTRY = struct.Struct("<?II32s")
buf = bytearray(P["max_size"])

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def read(path):
    global buf
    size = os.path.getsize(path)
    if len(buf) < size:
        buf = bytearray(size)
    with open(path, "rb", buffering=0) as fh:
        return memoryview(buf)[:fh.readinto(memoryview(buf)[:size])]
"""

#: the incremental's unavoidable work on one core: read each file the change touched (whole: a changed file
#: is read again, by every tool) and cut it with FastCDC, each chunk hashed with keyed BLAKE3 (the dedup
#: lookup); CPU seconds, files, bytes. The new chunks' compression and encryption (~20 MiB) left out.
_CHANGED_FILES_WORK = """
root, size = sys.argv[2], volume.parse_size(sys.argv[3])
paths = sorted({c.path for c in volume.changes(size)} | {volume.NEW_FILE})
start = cpu()
total = 0
for path in paths:
    data = read(os.path.join(root, path))
    for c in cdc.cut_buf(data):
        blake3.blake3(data[c.offset:c.offset + c.length], key=key).digest()
    total += len(data)
print(f"{cpu() - start:.3f} {len(paths)} {total}")
"""

#: a full backup's unavoidable work on one core: read every file, cut it (FastCDC), hash every chunk (keyed
#: BLAKE3); compress each unique chunk (zstd at the repository's level, kept when it saves MIN_SAVING),
#: encrypt it (AES-256-GCM, random 12-byte nonce, its id as associated data) into a pack buffer and write
#: the packs once to argv[3] (no fsync). Each stored chunk's entry goes to argv[3] + ".index" (untimed,
#: for the restore floor). CPU seconds, files, bytes, chunks, unique chunks, their bytes, stored bytes.
_FULL_BACKUP_WORK = """
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubekeep.repo.crypto import MIN_SAVING
from kubekeep.repo.format import DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE
root, stored = sys.argv[2], sys.argv[3]
paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
zc = zstandard.ZstdCompressor(level=DEFAULT_COMPRESSION_LEVEL)
aead = AESGCM(key)
pack = memoryview(bytearray(DEFAULT_PACK_SIZE + P["max_size"] + OVERHEAD))
seen, entries = set(), []
pos = total = chunks = unique_bytes = written = 0
start = cpu()
with open(stored, "wb", buffering=0) as out:
    for path in paths:
        data = read(path)
        total += len(data)
        for c in cdc.cut_buf(data):
            chunks += 1
            chunk = data[c.offset:c.offset + c.length]
            ident = blake3.blake3(chunk, key=key).digest()
            if ident in seen:
                continue
            seen.add(ident)
            unique_bytes += c.length
            packed = zc.compress(chunk)
            compressed = len(packed) <= c.length * (1 - MIN_SAVING)
            payload = packed if compressed else chunk
            nonce = os.urandom(12)
            pack[pos:pos + 12] = nonce
            aead.encrypt_into(nonce, payload, ident, pack[pos + 12:pos + OVERHEAD + len(payload)])
            pos += OVERHEAD + len(payload)
            entries.append(ENTRY.pack(compressed, c.length, OVERHEAD + len(payload), ident))
            if pos >= DEFAULT_PACK_SIZE:
                written += out.write(pack[:pos])
                pos = 0
    written += out.write(pack[:pos])
spent = cpu() - start
with open(stored + ".index", "wb") as fh:
    fh.write(b"".join(entries))
print(f"{spent:.3f} {len(paths)} {total} {chunks} {len(entries)} {unique_bytes} {written}")
"""

#: a restore's unavoidable work on one core, on the packs the full backup floor wrote (argv[2]): decrypt every
#: stored chunk (AES-256-GCM), decompress it (zstd) and verify it against its id (keyed BLAKE3). The packs are
#: read 16 MiB at a time outside the timed part. CPU seconds, chunks, their raw bytes.
_RESTORE_DECODE_WORK = """
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
stored = sys.argv[2]
with open(stored + ".index", "rb") as fh:
    entries = list(ENTRY.iter_unpack(fh.read()))
zd = zstandard.ZstdDecompressor()
aead = AESGCM(key)
plain = memoryview(bytearray(P["max_size"] + 1))
spent = 0.0
i = total = 0
with open(stored, "rb", buffering=0) as fh:
    while i < len(entries):
        j, size = i, 0
        while j < len(entries) and size < 16 << 20:
            size += entries[j][2]
            j += 1
        batch = memoryview(fh.read(size))
        start, pos = cpu(), 0
        for compressed, length, sealed, ident in entries[i:j]:
            n = sealed - OVERHEAD
            aead.decrypt_into(batch[pos:pos + 12], batch[pos + 12:pos + sealed], ident, plain[:n])
            data = zd.decompress(plain[:n], max_output_size=length) if compressed else plain[:n]
            if blake3.blake3(data, key=key).digest() != ident:
                sys.exit(f"a chunk of {length} bytes does not match its id")
            pos += sealed
            total += length
        spent += cpu() - start
        i = j
print(f"{spent:.3f} {len(entries)} {total}")
"""

#: where the full backup floor's packs wait for the restore floor (in the work directory; deleted by it)
FLOOR_PACKS = "floor-packs"


def floor_work(tool: Tool, script: str, *args: str) -> tuple[Run, list[str]]:
    """Run one floor's child script (after ``_FLOOR_PRELUDE``); its run and the fields of its last line."""
    w = run([sys.executable, "-c", _FLOOR_PRELUDE + script, str(HERE), *args], tool.env)
    return w, w.output.splitlines()[-1].split()


def _fixed_cost(results: Results, tool: Tool) -> float:
    """The latest fixed cost measured (this round's)."""
    return results.sample(tool.name, "floor: fixed").seconds[-1]


def full_backup_floor(tool: Tool, vol: Path, work: Path, results: Results) -> None:
    """The full backup's floor, measured in the same round: a backup of an empty directory into a fresh
    repository (the CLI's fixed cost: interpreter, imports, key derivation, index, snapshot; the other floors
    use it too) and the one-core CPU of reading, cutting, hashing, compressing, encrypting and writing the
    volume once. The packs it wrote stay for ``restore_floor``."""
    empty, repo = work / "floor-empty", str(work / "floor-repo")
    shutil.rmtree(repo, ignore_errors=True)
    empty.mkdir(exist_ok=True)
    tool.init(repo)
    r = tool.backup(repo, empty, incremental=False)
    results.sample(tool.name, "floor: fixed").add(r)
    shutil.rmtree(repo)
    w, fields = floor_work(tool, _FULL_BACKUP_WORK, str(vol), str(work / FLOOR_PACKS))
    cpu = float(fields[0])
    files, nbytes, chunks, unique, unique_bytes, stored = (int(f) for f in fields[1:7])
    results.sample(tool.name, "floor: full").add(w, files=files, bytes=nbytes, chunks=chunks, unique=unique,
                                                  unique_bytes=unique_bytes, stored_bytes=stored,
                                                  cpu_ms=round(cpu * 1000))
    # untimed: the packs go to disk now, not while the next tool backs up (see Restored.done)
    os.sync()
    say(f"  {tool.name} full backup floor: fixed {r.seconds:.2f}s, {files} files ({fmt_bytes(nbytes)}, "
        f"{unique}/{chunks} chunks unique, {fmt_bytes(stored)} stored) {cpu:.2f}s of one core "
        f"-> {r.seconds + cpu / 2:.2f}s")


def incremental_floor(tool: Tool, vol: Path, size: int, results: Results) -> None:
    """The incremental's floor, measured in the same round: the fixed cost (``full_backup_floor``) and the
    one-core CPU of reading, chunking and hashing the files the change touched."""
    w, fields = floor_work(tool, _CHANGED_FILES_WORK, str(vol), str(size))
    cpu, files, nbytes = float(fields[0]), int(fields[1]), int(fields[2])
    results.sample(tool.name, "floor: changed files").add(w, files=files, bytes=nbytes, cpu_ms=round(cpu * 1000))
    fixed = _fixed_cost(results, tool)
    say(f"  {tool.name} incremental floor: fixed {fixed:.2f}s, changed files {files} ({fmt_bytes(nbytes)}) "
        f"{cpu:.2f}s of one core -> {fixed + cpu / 2:.2f}s")


def restore_floor(tool: Tool, vol: Path, work: Path, results: Results, restored: Restored) -> None:
    """The restore's floor, measured in the same round: the fixed cost, the one-core CPU of decrypting,
    decompressing and verifying the chunks ``full_backup_floor`` stored, and the CPU of ``cp -a`` of the volume
    into a new directory (the kernel's cost of creating and writing its files, which every restore pays; the
    copy is kept with the restores, see the module's docstring)."""
    packs = work / FLOOR_PACKS
    w, fields = floor_work(tool, _RESTORE_DECODE_WORK, str(packs))
    cpu, chunks, nbytes = float(fields[0]), int(fields[1]), int(fields[2])
    results.sample(tool.name, "floor: decode").add(w, chunks=chunks, bytes=nbytes, cpu_ms=round(cpu * 1000))
    packs.unlink()
    packs.with_name(packs.name + ".index").unlink()
    target = restored.target("floor-cp")
    target.parent.mkdir(parents=True, exist_ok=True)
    r = run(["cp", "-a", "--reflink=never", str(vol), str(target)], tool.env)
    results.sample(tool.name, "floor: cp").add(r, files=sum(len(f) for _, _, f in os.walk(target)))
    restored.done(target)
    fixed = _fixed_cost(results, tool)
    say(f"  {tool.name} restore floor: fixed {fixed:.2f}s, decode {chunks} chunks ({fmt_bytes(nbytes)}) {cpu:.2f}s "
        f"of one core, cp -a {r.seconds:.2f}s (cpu {r.cpu:.2f}s) -> {fixed + (cpu + r.cpu) / 2:.2f}s")


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
        if isinstance(t, Kubekeep):
            full_backup_floor(t, vol, work, results)
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
            incremental_floor(t, vol, size, results)
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
        if isinstance(t, Kubekeep):
            restore_floor(t, vol, work, results, restored)
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


@dataclass(frozen=True)
class Floor:
    """One step's floor as rendered: the fixed cost plus ``cpu`` seconds of one core's ``work``, shared by 2."""

    label: str
    step: str  # the measured step it bounds
    cpu: float
    work: str
    left_out: str = ""


def _least(s: Samples, name: str) -> int:
    return min(s.values[name])


def measured_floors(results: Results) -> list[Floor]:
    """The floors of Kubekeep's full backup, incremental and restore measured in the run (best of the rounds)."""
    full, changed = results.get("Kubekeep", "floor: full"), results.get("Kubekeep", "floor: changed files")
    decode, cp = results.get("Kubekeep", "floor: decode"), results.get("Kubekeep", "floor: cp")
    floors = []
    if full is not None:
        floors.append(Floor(
            "full backup", "full", _least(full, "cpu_ms") / 1000,
            f"reading the {_least(full, 'files')} files ({fmt_bytes(_least(full, 'bytes'))}), cutting (FastCDC) "
            f"and hashing (keyed BLAKE3) their {_least(full, 'chunks')} chunks, compressing (zstd level "
            f"{DEFAULT_COMPRESSION_LEVEL}, kept when it saves ≥ {MIN_SAVING * 100:.0f} %) and encrypting (AES-256-GCM) "
            f"the {_least(full, 'unique')} unique ones ({fmt_bytes(_least(full, 'unique_bytes'))}), and writing "
            f"the {fmt_bytes(_least(full, 'stored_bytes'))} stored once (no fsync)"))
    if changed is not None:
        floors.append(Floor(
            "incremental", "incremental", _least(changed, "cpu_ms") / 1000,
            f"reading, cutting (FastCDC) and hashing (keyed BLAKE3) the {_least(changed, 'files')} files the change "
            f"touched ({fmt_bytes(_least(changed, 'bytes'))}, read whole as every tool does)",
            " before compressing, encrypting and writing the new chunks"))
    if decode is not None and cp is not None:
        floors.append(Floor(
            "restore", "restore", _least(decode, "cpu_ms") / 1000 + min(cp.cpu),
            f"decrypting (AES-256-GCM), decompressing (zstd) and verifying (keyed BLAKE3) the "
            f"{_least(decode, 'chunks')} chunks the full backup's floor stored ({fmt_bytes(_least(decode, 'bytes'))}"
            f" of version 1; the restored version 2 adds the {fmt_bytes(volume.NEW_FILE_SIZE)} file) "
            f"{_least(decode, 'cpu_ms') / 1000:.2f} s, and `cp -a --reflink=never` of the volume into a new "
            f"directory (the kernel creating and writing its {_least(cp, 'files')} files) cpu {min(cp.cpu):.2f} s "
            f"(wall {cp.best:.2f} s), together"))
    return floors


def _against_target(results: Results, peers: list[str], step: str, floor: float) -> str:
    """The target (0.5 × the best peer's time for ``step``) and whether it is below ``floor``; '' without peers."""
    best = min(((s.best, n) for n in peers if (s := results.get(n, step)) is not None), default=None)
    if best is None:
        return ""
    return (f"; the target, 0.5 × {best[1]}'s {best[0]:.2f} s, is {0.5 * best[0]:.2f} s"
            f"{' (below the floor)' if 0.5 * best[0] < floor else ''}")


def floor_lines(results: Results, peers: list[str]) -> list[str]:
    """A line per measured floor: the fixed cost (described in the first) plus one core's work shared by 2 cores,
    against the target and Kubekeep's time."""
    fixed = results.get("Kubekeep", "floor: fixed")
    if fixed is None:
        return []
    lines: list[str] = []
    for f in measured_floors(results):
        measured = results.get("Kubekeep", f.step)
        if measured is None:
            continue
        floor = fixed.best + f.cpu / 2
        cost = (f"Kubekeep's CLI backing up an empty directory into a fresh repository (interpreter, imports, key "
                f"derivation, snapshot) **{fixed.best:.2f} s** (best of {len(fixed.seconds)}, cpu "
                f"{min(fixed.cpu):.2f} s)" if not lines else f"the same fixed cost **{fixed.best:.2f} s**")
        lines += ["", f"Floor of the {f.label}, same run: {cost}, plus {f.work} **{f.cpu:.2f} s of one core**, "
                  f"shared by 2 cores: **{floor:.2f} s**{f.left_out}{_against_target(results, peers, f.step, floor)}"
                  f"; Kubekeep measured {measured.best:.2f} s."]
    return lines


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

    def rows(steps: tuple[tuple[str, str], ...]) -> list[str]:
        return [f"| {label} | " + " | ".join(cell(results.get(n, step)) for n in names) + f" | {ratio(step)} |"
                for label, step in steps if any(results.get(n, step) is not None for n in names)]

    lines += rows((("full backup", "full"), ("incremental (1 % change)", "incremental"),
                   ("restore (latest)", "restore")))
    lines += floor_lines(results, peers)
    if s3_rows := rows((("full backup to S3", "s3 full"), ("restore from S3", "s3 restore"))):
        lines += ["", "### S3 repository (SeaweedFS `weed mini` on loopback, sharing the 2 cores)", "",
                  header, sep, *s3_rows]

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
    restores += args.repeat if any(isinstance(t, Kubekeep) for t in tools) else 0  # the restore floor's copies
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
