"""The DR-copy benchmark (issue 9): copying a repository from site A to site B.

``restic copy`` is the peer: repository A (the local filesystem repository of the volume
benchmark) is copied into a fresh repository B on the local filesystem and on S3 (SeaweedFS),
once after the full backup and again after the incremental backup (only the new snapshot moves).
B is initialised with ``--copy-chunker-params`` so that restic copies blobs without re-chunking.

Kubekeep's copy (``KubekeepCopy``) is timed in both modes next to restic: the core of the dr-copy
flow (kubekeep.drcopy) in a fresh process per copy, the destination initialised from the source by
the first copy. Repository A holds plain snapshots (``kubekeep repo backup``); before each copy, an
untimed step records each new snapshot as a restore point, which is what the copy moves.

Run from ``benchmarks/repo_peers.py --copy`` (the copy steps are interleaved with that benchmark's
backups, which create repository A).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peers import PASSWORD, Kubekeep, Restic, Run, S3Server, Samples, Tool, fmt_bytes, run, tree_bytes

STAGES = ("full", "incremental")
DESTS = ("fs", "s3")


class Copier:
    """Copies every snapshot of repository A that B lacks into B."""

    name = ""

    def available(self) -> bool:
        return True

    def prepare(self, src: str, dst: str) -> None:
        """Create the destination repository (before the first copy)."""

    def copy(self, src: str, dst: str) -> Run:
        raise NotImplementedError


class ResticCopy(Copier):
    name = "restic copy"

    def __init__(self, tool: Restic) -> None:
        self.tool = tool

    @property
    def env(self) -> dict[str, str]:
        return {**self.tool.env, "RESTIC_FROM_PASSWORD": PASSWORD}

    def prepare(self, src: str, dst: str) -> None:
        run([self.tool.binary, "-r", dst, "init", "--repository-version", "2", "--from-repo", src,
             "--copy-chunker-params"], self.env)

    def copy(self, src: str, dst: str) -> Run:
        return run([self.tool.binary, "-r", dst, "copy", "--from-repo", src, "--quiet"], self.env)


#: records every snapshot of repository A that is not in a restore point yet as a restore point of its own
#: (A is written by ``kubekeep repo backup``, which makes plain snapshots; the copy moves restore points)
_RECORD = """
import os, sys
from datetime import UTC, datetime
from kubekeep.location import open_location
from kubekeep.repo.repository import Repository
from kubekeep.restorepoint import RESTORE_POINT_TAG, VOLUME_TAG, RestorePointRecord, VolumeRecord, \\
    manifest_stream, write_restore_point
repo = Repository.open(open_location(sys.argv[1]), passphrase=os.environ["KUBEKEEP_PASSWORD"])
infos = repo.snapshots()
recorded = {i.metadata.get("volume") for i in infos if RESTORE_POINT_TAG in i.tags}
for info in infos:
    if RESTORE_POINT_TAG in info.tags or info.id in recorded or not info.source:
        continue
    man = repo.backup(streams={"manifests.jsonl": manifest_stream([])})
    now = datetime.now(UTC).isoformat()
    record = RestorePointRecord(
        id="bench-" + info.id[:12], app="bench", cluster="bench", namespaces=["bench"], started_at=now,
        finished_at=now, status="succeeded", location=sys.argv[1], manifest_snapshot=man.snapshot_id,
        volumes=[VolumeRecord(namespace="bench", pvc="volume", storage_class=None, size_bytes=0, method="direct",
                              snapshot_id=info.id)])
    result = repo.backup(streams={"restore-point.json": [record.to_json()]},
                         tags=[RESTORE_POINT_TAG, "app:bench"],
                         metadata={"restore_point": record.id, "app": "bench", "status": "succeeded",
                                   "volume": info.id})
repo.close()
"""

#: Kubekeep's copy, as the dr-copy flow's copy-restore-point task runs it (kubekeep.drcopy), without the
#: Prefect runtime: `kubekeep copy` adds the command's start-up (docs/benchmarks.md, "CLI start-up")
_COPY = """
import os, sys
from kubekeep.drcopy import CopyMode, choose_points, copy_point, init_destination, open_sites, present_points
from kubekeep.location import open_location
from kubekeep.repo.errors import RepositoryNotFoundError
from kubekeep.repo.repository import Repository
password = os.environ["KUBEKEEP_PASSWORD"]
mode = CopyMode(sys.argv[3])
# as the flow's prepare-destination task: both sites opened side by side
src, dst = open_sites(lambda: Repository.open(open_location(sys.argv[1]), passphrase=password),
                      lambda: Repository.open(open_location(sys.argv[2]), passphrase=password))
if isinstance(dst, RepositoryNotFoundError):
    dst = init_destination(src, open_location(sys.argv[2]), mode, passphrase=password, key_wrapper=None)
present = present_points(dst)
for point in choose_points(src, all_points=True):
    r = copy_point(src, dst, point, mode, present=present)
    print(r.restore_point, r.status, r.packs_copied, r.bytes_copied, flush=True)
dst.close()
src.close()
"""


#: the S3 floor of a replica copy: every pack of A put into the bucket and read back whole (issue 9's
#: verification), with plain boto3 (checksums as the copy sets them), ``TRANSFERS`` requests at once; with a
#: fifth argument (a file naming packs of A, one per line), only the packs it does not name (an incremental)
_S3_FLOOR = """
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
root, bucket, prefix, transfers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
skip = set(open(sys.argv[5]).read().split()) if len(sys.argv) > 5 else set()  # packs an earlier copy moved
packs = sorted(p for p in (os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "data")) for f in fs)
               if p not in skip)
s3 = boto3.client("s3", endpoint_url=os.environ["KUBEKEEP_S3_ENDPOINT"], config=Config(
    max_pool_connections=2 * transfers, request_checksum_calculation="when_required",
    response_checksum_validation="when_required"))
def put(item):
    with open(item[1], "rb") as fh:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{item[0]}", Body=fh.read())
def get(i):
    return len(s3.get_object(Bucket=bucket, Key=f"{prefix}/{i}")["Body"].read())
started = time.perf_counter()
with ThreadPoolExecutor(transfers) as pool:
    list(pool.map(put, enumerate(packs)))
put_s = time.perf_counter() - started
with ThreadPoolExecutor(transfers) as pool:
    got = sum(pool.map(get, range(len(packs))))
print(len(packs), got, f"{put_s:.3f}", f"{time.perf_counter() - started - put_s:.3f}")
"""
#: requests in flight for the floor (the replica copy keeps 2 uploads and its read-backs going)
TRANSFERS = 4


@dataclass
class S3Floor:
    """PUT and GET of repository A's packs through the same SeaweedFS, in the same run."""

    packs: int
    bytes: int
    put_seconds: float
    get_seconds: float
    cpu: float

    @property
    def seconds(self) -> float:
        return self.put_seconds + self.get_seconds


class KubekeepCopy(Copier):
    """Kubekeep's DR copy (issue 9) in ``mode`` replica or independent: the core of the dr-copy flow's
    ``copy-restore-point`` task in a fresh process, like restic's command (the Prefect runtime of
    ``kubekeep copy`` is measured on its own by benchmarks/cli_startup.py)."""

    def __init__(self, tool: Kubekeep, mode: str) -> None:
        self.tool = tool
        self.mode = mode
        self.name = f"Kubekeep copy ({mode})"

    def prepare(self, src: str, dst: str) -> None:
        """Nothing: the copy initialises the destination from the source itself (issue 9)."""

    def record(self, src: str) -> None:
        """Make repository A's new snapshots restore points (not timed)."""
        run([sys.executable, "-c", _RECORD, src], self.tool.env)

    def copy(self, src: str, dst: str) -> Run:
        self.record(src)
        return run([sys.executable, "-c", _COPY, src, dst, self.mode], self.tool.env)


@dataclass
class CopyResults:
    samples: dict[tuple[str, str, str], Samples] = field(default_factory=dict)  # (copier, dest, stage)
    pending: list[str] = field(default_factory=list)
    s3_floor: S3Floor | None = None
    #: the same for the packs the incremental backup added (what an incremental replica copy moves)
    s3_floor_incremental: S3Floor | None = None

    def sample(self, copier: str, dest: str, stage: str) -> Samples:
        return self.samples.setdefault((copier, dest, stage), Samples())


class CopyBench:
    """Copies of one tool's repository A, driven by the volume benchmark after each backup stage."""

    def __init__(self, tools: list[Tool], work: Path, s3: S3Server | None, bucket: str | None) -> None:
        self.work = work
        self.s3 = s3
        self.bucket = bucket
        self.copiers: list[tuple[Copier, Tool]] = []
        self.results = CopyResults()
        self.round = 0
        #: repository A's packs after the full backup (the incremental floor moves the others)
        self.full_packs: list[str] | None = None
        for t in tools:
            if isinstance(t, Restic):
                self.copiers.append((ResticCopy(t), t))
            elif isinstance(t, Kubekeep):
                for mode in ("replica", "independent"):
                    self.copiers.append((KubekeepCopy(t, mode), t))

    def dests(self) -> list[str]:
        return [d for d in DESTS if d == "fs" or self.s3 is not None]

    def _dst(self, copier: Copier, tool: Tool, dest: str) -> str:
        slug = copier.name.lower().replace(" ", "-").replace("(", "").replace(")", "")
        if dest == "fs":
            return str(self.work / f"copy-{slug}")
        return tool.location("s3", f"{self.bucket}/copy-{slug}-r{self.round}")

    def new_round(self) -> None:
        self.round += 1
        for copier, tool in self.copiers:
            shutil.rmtree(self._dst(copier, tool, "fs"), ignore_errors=True)

    def after_backup(self, stage: str, src_of: dict[str, str], log: bool = True) -> None:
        """Copy A -> B for every copier and destination, once the ``stage`` backup is in A."""
        for copier, tool in self.copiers:
            if not copier.available():
                if copier.name not in self.results.pending:
                    self.results.pending.append(copier.name)
                continue
            for dest in self.dests():
                if dest == "s3":
                    assert self.s3 is not None
                    tool.use_s3(self.s3)
                src, dst = src_of[tool.name], self._dst(copier, tool, dest)
                if stage == "full":
                    copier.prepare(src, dst)
                before = tree_bytes(Path(dst)) if dest == "fs" else 0
                r = copier.copy(src, dst)
                extra = {"dest_bytes": tree_bytes(Path(dst)) - before} if dest == "fs" else {}
                self.results.sample(copier.name, dest, stage).add(r, **extra)
                if log:
                    print(f"  {copier.name} {dest} {stage}: {r.seconds:.2f}s cpu {r.cpu:.2f}s rss "
                          f"{fmt_bytes(r.peak_rss)} load {r.load:.1f} moved {extra.get('dest_bytes', '-')}",
                          flush=True)
        if stage == "full":
            self.measure_s3_floor(src_of)
        else:
            self.measure_fixed_cost(src_of, log)
            self.measure_s3_floor(src_of, incremental=True)

    def measure_fixed_cost(self, src_of: dict[str, str], log: bool) -> None:
        """Each Kubekeep copy run again with nothing left to move (every point skipped): what any copy pays
        before its first byte (interpreter, imports, both sites opened with their key derivations, listings)."""
        for copier, tool in self.copiers:
            if not isinstance(copier, KubekeepCopy):
                continue
            for dest in self.dests():
                if dest == "s3":
                    assert self.s3 is not None
                    tool.use_s3(self.s3)
                r = copier.copy(src_of[tool.name], self._dst(copier, tool, dest))
                self.results.sample(copier.name, dest, "nothing to move").add(r)
                if log:
                    print(f"  {copier.name} {dest} nothing to move: {r.seconds:.2f}s cpu {r.cpu:.2f}s", flush=True)

    def measure_s3_floor(self, src_of: dict[str, str], *, incremental: bool = False) -> None:
        """Time the transfers a replica copy to S3 cannot avoid: every pack of A once, after the full backup's
        copies; the packs the incremental added once, after the incremental's."""
        kubekeep = next((t for _, t in self.copiers if isinstance(t, Kubekeep)), None)
        if self.s3 is None or self.bucket is None or kubekeep is None:
            return
        data = Path(src_of[kubekeep.name]) / "data"
        if not incremental:
            if self.full_packs is None:
                self.full_packs = sorted(str(p) for p in data.rglob("*") if p.is_file())
            if self.results.s3_floor is not None:
                return
        elif self.results.s3_floor_incremental is not None or self.full_packs is None:
            return
        kubekeep.use_s3(self.s3)
        extra: list[str] = []
        if incremental:
            listing = self.work / "floor-full-packs.txt"
            listing.write_text("\n".join(self.full_packs) + "\n")
            extra = [str(listing)]
        r = run([sys.executable, "-c", _S3_FLOOR, str(data.parent), self.bucket,
                 f"floor-{'i' if incremental else ''}r{self.round}", str(TRANSFERS), *extra], kubekeep.env)
        packs, nbytes, put_s, get_s = r.output.split()[-4:]
        floor = S3Floor(int(packs), int(nbytes), float(put_s), float(get_s), r.cpu)
        if incremental:
            self.results.s3_floor_incremental = floor
        else:
            self.results.s3_floor = floor
        print(f"  S3 floor{' (incremental)' if incremental else ''}: {packs} packs, {fmt_bytes(int(nbytes))}: "
              f"put {put_s}s get {get_s}s", flush=True)

    def render(self) -> list[str]:
        lines = ["### DR copy: repository A → B (issue 9)", "",
                 "Repository A is the local filesystem repository of the table above, copied right after its "
                 "full and after its incremental backup into a fresh B (filesystem, and S3 on the same "
                 "SeaweedFS). restic: `restic init --from-repo A --copy-chunker-params`, then "
                 "`restic -r B copy --from-repo A`.", "",
                 "| copy | to | after full backup | after the 1 % change | bytes moved for the change | "
                 "peak RSS |",
                 "|---|---|---|---|---|---|"]
        names = list(dict.fromkeys(c.name for c, _ in self.copiers))
        for name in names:
            for dest in self.dests():
                full = self.results.samples.get((name, dest, "full"))
                inc = self.results.samples.get((name, dest, "incremental"))
                label = "filesystem" if dest == "fs" else "S3"
                if full is None or inc is None:
                    lines.append(f"| {name} | {label} | pending: `kubekeep copy` is not written yet (issue 9) "
                                 "| pending | pending | pending |")
                    continue
                moved = fmt_bytes(min(inc.values["dest_bytes"])) if "dest_bytes" in inc.values else "—"
                lines.append(f"| {name} | {label} | {full.best:.2f} s (±{full.spread:.0%}) | "
                             f"{inc.best:.2f} s (±{inc.spread:.0%}) | {moved} | "
                             f"{fmt_bytes(max(full.peak_rss + inc.peak_rss))} |")
        floor = self.results.s3_floor
        restic = self.results.samples.get(("restic copy", "s3", "full"))
        if floor is not None:
            against = (f"; 0.3 × restic copy to S3 ({restic.best:.2f} s) is {0.3 * restic.best:.2f} s"
                       if restic is not None else "")
            lines += ["", f"S3 floor of a replica copy, same run and SeaweedFS: every pack of A ({floor.packs} packs, "
                      f"{fmt_bytes(floor.bytes)}) put with plain boto3, {TRANSFERS} requests at once, "
                      f"{floor.put_seconds:.2f} s, and read back whole {floor.get_seconds:.2f} s: "
                      f"**{floor.seconds:.2f} s** before any hashing or key derivation{against}."]
        lines += self._render_incremental_floor()
        return lines

    def _render_incremental_floor(self) -> list[str]:
        """The floor of an incremental copy: a copy with nothing to move (the fixed cost), plus, to S3, the
        transfers of the packs the incremental backup added."""
        rows = []
        inc_floor = self.results.s3_floor_incremental
        for name in dict.fromkeys(c.name for c, _ in self.copiers if isinstance(c, KubekeepCopy)):
            for dest in self.dests():
                fixed = self.results.samples.get((name, dest, "nothing to move"))
                inc = self.results.samples.get((name, dest, "incremental"))
                restic = self.results.samples.get(("restic copy", dest, "incremental"))
                if fixed is None or inc is None:
                    continue
                transfers = inc_floor.seconds if dest == "s3" and inc_floor is not None else 0.0
                floor = fixed.best + transfers
                target = f"{0.2 * restic.best:.2f} s" if restic is not None else "—"
                moved = (f" + {transfers:.2f} s" if dest == "s3" and inc_floor is not None else "")
                rows.append(f"| {name} | {'filesystem' if dest == 'fs' else 'S3'} | {fixed.best:.2f} s "
                            f"(cpu {fixed.cpu[fixed.seconds.index(fixed.best)]:.2f} s) | "
                            f"{fixed.best:.2f} s{moved} = **{floor:.2f} s** | {inc.best:.2f} s | {target} |")
        if not rows:
            return []
        lines = ["", "Floor of an incremental copy, same run: the same copy run once more with nothing left to move "
                 "(every point skipped: interpreter, imports, both sites opened with their key derivations, "
                 "listings), plus, to S3, the packs the incremental backup added put and read back with plain "
                 "boto3" + (f" ({inc_floor.packs} packs, {fmt_bytes(inc_floor.bytes)}: put "
                            f"{inc_floor.put_seconds:.2f} s, get {inc_floor.get_seconds:.2f} s)"
                            if inc_floor is not None else "") + ".", "",
                 "| copy | to | with nothing to move | floor | incremental copy | 0.2 × restic copy |",
                 "|---|---|---|---|---|---|", *rows]
        return lines
