"""The benchmark peers and the harness shared by benchmarks/: running one step as a child process
with its wall time, CPU time and peak RSS; the tools (Kubekeep, restic, kopia) behind one interface;
the machine and its load; and writing a section of docs/benchmarks.md.

The peers' binaries come from ``benchmarks/build-peers.sh``, which builds them from Go modules into
``~/.cache/kubekeep/bin/<peer>-<version>/`` (outside the repository) on first use.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD_PEERS = HERE / "build-peers.sh"
PASSWORD = "benchmark passphrase"
KUBEKEEP = [sys.executable, "-c", "from flows.cli import main; main()"]


def peer_binary(name: str) -> Path:
    """The cached binary of a peer (restic, kopia, velero, velero-plugin-for-aws), built if missing."""
    out = subprocess.run(["bash", str(BUILD_PEERS), "path", name], check=True, text=True,
                         stdout=subprocess.PIPE).stdout.strip().splitlines()
    return Path(out[-1])


def build_seconds(binary: Path) -> str:
    """The first build's wall time recorded by build-peers.sh next to the binary."""
    f = binary.parent / "build-seconds"
    return f"{int(f.read_text())} s" if f.exists() else "?"


# ---- one step as a child process ------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    peak_rss: int  # bytes
    cpu: float  # user + system seconds of the child (and its children)
    sys: float  # system seconds alone
    load: float  # 1-minute load average when the step started
    output: str


def loadavg() -> float:
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def run(cmd: list[str], env: Mapping[str, str], *, cwd: Path | None = None, check: bool = True) -> Run:
    """Run one step as a child process; its wall time, CPU time and peak RSS.

    The peak RSS comes from GNU time (``%M``, the child's ru_maxrss, i.e. the largest
    process of its tree). Reading it with wait4() in this process would be wrong: Linux keeps
    the high-water mark of the memory a child had before exec, and a child forked
    from this (large) process starts with this process's RSS.
    """
    load = loadavg()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *cmd], env=dict(env), cwd=cwd,
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
        fields = rss.read().strip().splitlines()[-1].split()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return Run(seconds, int(fields[0]) * 1024, float(fields[1]) + float(fields[2]), float(fields[2]), load, text)


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    values: dict[str, list[int]] = field(default_factory=dict)

    def add(self, r: Run, **values: int) -> None:
        self.seconds.append(r.seconds)
        self.peak_rss.append(r.peak_rss)
        self.cpu.append(r.cpu)
        self.load.append(r.load)
        for k, v in values.items():
            self.values.setdefault(k, []).append(v)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(worst - best) / best, the noise of the repetitions."""
        return (max(self.seconds) - self.best) / self.best if self.seconds else 0.0

    @property
    def best_load(self) -> float:
        """The load average when the best repetition started."""
        return self.load[self.seconds.index(self.best)]


# ---- files ----------------------------------------------------------------------------------------

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


def fmt_bytes(n: float) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {unit}" if unit == "GiB" else f"{n / factor:.1f} {unit}"
    return f"{n:.0f} B"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the tools ------------------------------------------------------------------------------------

class Tool:
    """A backup tool driven through its own command line, one fresh process per step."""

    name = ""

    def __init__(self, env: Mapping[str, str], scratch: Path) -> None:
        self.env = dict(env)
        self.scratch = scratch

    def version(self) -> str: raise NotImplementedError
    def init(self, repo: str) -> None: raise NotImplementedError
    def backup(self, repo: str, source: Path, incremental: bool) -> Run: raise NotImplementedError
    def restore(self, repo: str, target: Path, source: Path) -> Run: raise NotImplementedError

    def use_s3(self, server: S3Server) -> None:
        """Point the tool's environment at an S3 server (credentials, endpoint)."""

    def location(self, kind: str, base: str) -> str:
        """The repository location string: ``kind`` is 'fs' (``base`` a directory) or 's3' (``base`` bucket/prefix)."""
        return base

    def reset_cache(self) -> None:
        """Forget local caches between repetitions (each repetition starts cold on the tool's side)."""


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str

    @property
    def hostport(self) -> str:
        return self.endpoint.removeprefix("http://")


_LATEST_TREE = """
import os, sys
from kubekeep.location import open_location
from kubekeep.repo.repository import Repository
repo = Repository.open(open_location(sys.argv[1]), passphrase=os.environ["KUBEKEEP_PASSWORD"])
print([i.id for i in repo.snapshots() if i.source][-1])
"""


#: Kubekeep's packages (compiled once, as an install would)
PACKAGES = ("kubekeep", "flows", "tasks", "blocks")


class Kubekeep(Tool):
    name = "Kubekeep"

    def __init__(self, env: Mapping[str, str], scratch: Path) -> None:
        # as an installed package runs (pip compiles a wheel's bytecode at install): the modules are compiled
        # once, by the untimed first run, into a cache of the scratch directory, not again by every timed
        # process (an environment with PYTHONDONTWRITEBYTECODE=1 would have each one compile them all)
        env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        super().__init__({**env, "KUBEKEEP_PASSWORD": PASSWORD, "PYTHONPYCACHEPREFIX": str(scratch / "pycache"),
                          "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}, scratch)
        subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / p) for p in PACKAGES)],
                       env=dict(self.env), check=True, stdout=subprocess.DEVNULL)

    def version(self) -> str:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False).stdout.strip()
        return f"Kubekeep {rev or '?'} (Python {platform.python_version()})"

    def init(self, repo: str) -> None:
        run([*KUBEKEEP, "repo", "init", "--repo", repo], self.env)

    def backup(self, repo: str, source: Path, incremental: bool) -> Run:
        extra = ["--parent", "latest"] if incremental else []
        return run([*KUBEKEEP, "repo", "backup", "--repo", repo, str(source), *extra], self.env)

    def restore(self, repo: str, target: Path, source: Path) -> Run:
        # the newest snapshot with a file tree: the DR-copy benchmark adds restore-point records (streams) to A
        latest = subprocess.run([sys.executable, "-c", _LATEST_TREE, repo], env=dict(self.env), check=True,
                                capture_output=True, text=True).stdout.strip()
        return run([*KUBEKEEP, "repo", "restore", "--repo", repo, latest, "--target", str(target)], self.env)

    def use_s3(self, server: S3Server) -> None:
        self.env.update({"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                         "AWS_REGION": server.region, "KUBEKEEP_S3_ENDPOINT": server.endpoint})

    def location(self, kind: str, base: str) -> str:
        return f"s3://{base}" if kind == "s3" else base


class Restic(Tool):
    """restic with ``--compression auto`` (repository version 2), its default chunker and scrypt KDF."""

    name = "restic"

    def __init__(self, env: Mapping[str, str], scratch: Path) -> None:
        self.binary = str(peer_binary("restic"))
        super().__init__({**env, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(scratch / "restic-cache")},
                         scratch)

    def version(self) -> str:
        v = subprocess.run([self.binary, "version"], capture_output=True, text=True, check=False).stdout.strip()
        return f"{v} (built in {build_seconds(Path(self.binary))})"

    def init(self, repo: str) -> None:
        run([self.binary, "-r", repo, "init", "--repository-version", "2"], self.env)

    def backup(self, repo: str, source: Path, incremental: bool) -> Run:
        # restic picks the latest snapshot of the same path as parent by itself
        return run([self.binary, "-r", repo, "--compression", "auto", "backup", "--quiet", "."], self.env,
                   cwd=source)

    def restore(self, repo: str, target: Path, source: Path) -> Run:
        return run([self.binary, "-r", repo, "restore", "latest", "--target", str(target)], self.env)

    def use_s3(self, server: S3Server) -> None:
        self.env.update({"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                         "AWS_DEFAULT_REGION": server.region, "_S3": server.endpoint})

    def location(self, kind: str, base: str) -> str:
        return f"s3:{self.env['_S3']}/{base}" if kind == "s3" else base

    def reset_cache(self) -> None:
        import shutil

        shutil.rmtree(self.scratch / "restic-cache", ignore_errors=True)


class Kopia(Tool):
    """kopia with ``--compression zstd-fastest`` (global policy), its default splitter, hash and encryption.

    kopia keeps the connected repository in a config file; each location gets its own, so
    the same Kopia object can drive a filesystem and an S3 repository.
    """

    name = "kopia"

    def __init__(self, env: Mapping[str, str], scratch: Path) -> None:
        self.binary = str(peer_binary("kopia"))
        super().__init__({**env, "KOPIA_PASSWORD": PASSWORD, "KOPIA_CHECK_FOR_UPDATES": "false",
                          "KOPIA_LOG_DIR": str(scratch / "kopia-logs")}, scratch)

    def version(self) -> str:
        v = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False).stdout.split()
        return f"kopia {v[0] if v else '?'} (built in {build_seconds(Path(self.binary))})"

    def _config(self, repo: str) -> list[str]:
        key = hashlib.sha256(repo.encode()).hexdigest()[:12]
        return ["--config-file", str(self.scratch / "kopia-config" / f"{key}.config")]

    def _cache(self, repo: str) -> str:
        return str(self.scratch / "kopia-cache" / hashlib.sha256(repo.encode()).hexdigest()[:12])

    def init(self, repo: str) -> None:
        cfg = self._config(repo)
        if repo.startswith("s3|"):
            _, bucket, prefix = repo.split("|")
            storage = ["s3", f"--bucket={bucket}", f"--prefix={prefix}/", f"--endpoint={self.env['_S3HOST']}",
                       "--disable-tls", f"--region={self.env['AWS_REGION']}"]
        else:
            storage = ["filesystem", f"--path={repo}"]
        run([self.binary, *cfg, "repository", "create", *storage, f"--cache-directory={self._cache(repo)}"],
            self.env)
        run([self.binary, *cfg, "policy", "set", "--global", "--compression=zstd-fastest"], self.env)

    def backup(self, repo: str, source: Path, incremental: bool) -> Run:
        # kopia picks the latest snapshot of the same source as parent by itself
        return run([self.binary, *self._config(repo), "snapshot", "create", str(source), "--no-progress"],
                   self.env)

    def restore(self, repo: str, target: Path, source: Path) -> Run:
        # a source path restores its latest snapshot (--snapshot-time defaults to latest)
        return run([self.binary, *self._config(repo), "snapshot", "restore", str(source), str(target),
                    "--no-progress"], self.env)

    def use_s3(self, server: S3Server) -> None:
        self.env.update({"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                         "AWS_REGION": server.region, "_S3HOST": server.hostport})

    def location(self, kind: str, base: str) -> str:
        if kind == "s3":
            bucket, _, prefix = base.partition("/")
            return f"s3|{bucket}|{prefix}"
        return base

    def reset_cache(self) -> None:
        import shutil

        shutil.rmtree(self.scratch / "kopia-cache", ignore_errors=True)


TOOLS: dict[str, type[Tool]] = {"kubekeep": Kubekeep, "restic": Restic, "kopia": Kopia}


# ---- the machine and the docs ----------------------------------------------------------------------

def machine_info() -> str:
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
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem / 2**30:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def replace_section(path: Path, section: str, keep_marker: str | None = None) -> None:
    """Replace the ``## `` section whose heading is ``section``'s first line (append it if missing).

    Text after ``keep_marker`` inside the old section (hand-written analysis) is kept.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading = section.splitlines()[0]
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        end = nxt + 1 if nxt != -1 else len(text)
        old = text[start:end]
        kept = old[old.index(keep_marker):] if keep_marker and keep_marker in old else ""
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" + kept if kept else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
