"""The DR-copy benchmark (issue 9): copying a repository from site A to site B.

``restic copy`` is the peer: repository A (the local filesystem repository of the volume
benchmark) is copied into a fresh repository B on the local filesystem and on S3 (SeaweedFS),
once after the full backup and again after the incremental backup (only the new snapshot moves).
B is initialised with ``--copy-chunker-params`` so that restic copies blobs without re-chunking.

Kubekeep's copy is not written yet. ``KubekeepCopy`` is the hook it plugs into: when the
``kubekeep copy`` command exists (``--from``/``--to``/``--all``/``--mode``, as issue 9 asks) it is
timed in both modes next to restic; until then every Kubekeep row says *pending* and no number is
shown for it.

Run from ``benchmarks/repo_peers.py --copy`` (the copy steps are interleaved with that benchmark's
backups, which create repository A).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from peers import KUBEKEEP, PASSWORD, Kubekeep, Restic, Run, S3Server, Samples, Tool, fmt_bytes, run, tree_bytes

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


class KubekeepCopy(Copier):
    """The hook for Kubekeep's DR copy (issue 9), in ``mode`` replica or independent.

    Pending until ``kubekeep copy`` exists: ``available()`` looks for the command, and the
    benchmark reports the rows as pending instead of timing anything.
    """

    def __init__(self, tool: Kubekeep, mode: str) -> None:
        self.tool = tool
        self.mode = mode
        self.name = f"Kubekeep copy ({mode})"
        self._available: bool | None = None

    def available(self) -> bool:
        if self._available is None:
            probe = subprocess.run([*KUBEKEEP, "copy", "--help"], env=self.tool.env, capture_output=True,
                                   text=True, check=False)
            self._available = probe.returncode == 0 and "--mode" in probe.stdout
        return self._available

    def prepare(self, src: str, dst: str) -> None:
        """Nothing: ``kubekeep copy`` initialises the destination from the source itself (issue 9)."""

    def copy(self, src: str, dst: str) -> Run:
        return run([*KUBEKEEP, "copy", "--from", src, "--to", dst, "--all", "--mode", self.mode], self.tool.env)


@dataclass
class CopyResults:
    samples: dict[tuple[str, str, str], Samples] = field(default_factory=dict)  # (copier, dest, stage)
    pending: list[str] = field(default_factory=list)

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
                    print(f"  {copier.name} {dest} {stage}: {r.seconds:.2f}s rss {fmt_bytes(r.peak_rss)}",
                          flush=True)

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
        return lines
