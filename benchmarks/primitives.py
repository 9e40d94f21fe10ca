"""The speed of the primitives under Kubekeep's data path, one core each, and the CPU/disk floor they
give for backing up and restoring the benchmark volume on this machine's cores.

    python benchmarks/primitives.py [--size 1GiB] [--sample 64MiB]

Each primitive runs single-threaded on a sample of every file kind of ``benchmarks/volume.py``
(rows, pages, random, blocks, small) with the repository's parameters: FastCDC (pyfastcdc, the
repository's chunker parameters), BLAKE3 (keyed, as chunk ids), zstd at the repository's level 3
(compress when it saves; decompress), AES-256-GCM (seal/open), and the disk (write + fsync, and a
read of a file just written, i.e. from the page cache). The floor for the whole volume adds, per
kind, its bytes / speed for every step the data goes through, divides by the cores (perfect
parallelism), and is printed next to the kernel-side costs that are not divided (disk write).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import volume  # noqa: E402

MB = 1e6


def best_rate(fn: Callable[[], int], repeat: int = 3, clock: Callable[[], float] = time.thread_time) -> float:
    """Bytes per second of ``fn`` (which returns the bytes it processed), best of ``repeat``.

    The CPU primitives are timed by this thread's CPU time, so that other processes on a loaded
    machine do not slow them down on paper; the disk by the wall clock.
    """
    best = 0.0
    for _ in range(repeat):
        t0 = clock()
        n = fn()
        dt = clock() - t0
        best = max(best, n / dt)
    return best


def samples(sample: int) -> dict[str, bytes]:
    """About ``sample`` bytes of each file kind, from the volume generator's own content functions."""
    out: dict[str, bytes] = {}
    plan = volume.plan(volume.GiB)
    for kind in ("rows", "pages", "random", "blocks", "small"):
        parts, total = [], 0
        for spec in plan:
            if spec.kind == kind:
                data = spec.content()
                parts.append(data)
                total += len(data)
                if total >= sample:
                    break
        out[kind] = b"".join(parts)[:sample]
    return out


def shares(size: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for spec in volume.plan(size):
        totals[spec.kind] = totals.get(spec.kind, 0) + spec.size
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--sample", default="32MiB")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    import blake3
    import pyfastcdc
    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from kubekeep.repo.format import DEFAULT_CHUNKER as P

    data = samples(volume.parse_size(args.sample))
    key = os.urandom(32)
    aes = AESGCM(key)
    nonce = os.urandom(12)
    cdc = pyfastcdc.FastCDC(P["avg_size"], min_size=P["min_size"], max_size=P["max_size"],
                            normalized_chunking=P["normalization"], seed=0)
    zc = zstandard.ZstdCompressor(level=3)
    zd = zstandard.ZstdDecompressor()
    rates: dict[str, dict[str, float]] = {}
    ratio: dict[str, float] = {}
    for kind, buf in data.items():
        chunks = [bytes(buf[c.offset:c.offset + c.length]) for c in cdc.cut_buf(buf)]
        comp = [zc.compress(c) for c in chunks]
        ratio[kind] = sum(len(c) for c in comp) / len(buf)
        sealed = [aes.encrypt(nonce, c, None) for c in comp]
        r: dict[str, float] = {}
        r["fastcdc"] = best_rate(lambda b=buf: sum(c.length for c in cdc.cut_buf(b)))
        r["blake3"] = best_rate(lambda cs=chunks: sum(len(blake3.blake3(c, key=key).digest() and c) for c in cs))
        r["zstd-3 compress"] = best_rate(lambda cs=chunks: sum(len(c) for c in cs if zc.compress(c)))
        r["zstd decompress"] = best_rate(lambda cs=comp, n=len(buf): (
            [zd.decompress(c, max_output_size=1 << 20) for c in cs], n)[1])
        r["aes-gcm seal"] = best_rate(lambda cs=comp, n=len(buf): ([aes.encrypt(nonce, c, None) for c in cs], n)[1])
        r["aes-gcm open"] = best_rate(lambda ss=sealed, n=len(buf): ([aes.decrypt(nonce, s, None) for s in ss], n)[1])
        rates[kind] = r
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DISK_DIR")) as d:
        blob = data["random"]
        path = Path(d) / "f"

        def write() -> int:
            with open(path, "wb") as fh:
                for _ in range(4):
                    fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            return 4 * len(blob)

        def read() -> int:
            n = 0
            with open(path, "rb", buffering=0) as fh:
                while chunk := fh.read(4 << 20):
                    n += len(chunk)
            return n

        disk_write = best_rate(write, clock=time.perf_counter)
        disk_read = best_rate(read, clock=time.perf_counter)

    size = volume.parse_size(args.size)
    share = shares(size)
    prims = list(next(iter(rates.values())))
    print(f"samples: {args.sample} of each kind; one core (thread CPU time); MB/s (10^6 B/s) of raw input\n")
    print("| primitive | " + " | ".join(rates) + " |")
    print("|---" * (len(rates) + 1) + "|")
    for p in prims:
        print(f"| {p} | " + " | ".join(f"{rates[k][p] / MB:,.0f}" for k in rates) + " |")
    print("| compressed / raw (zstd-3) | " + " | ".join(f"{ratio[k]:.2f}" for k in rates) + " |")
    print(f"\ndisk: write + fsync {disk_write / MB:,.0f} MB/s, read (page cache) {disk_read / MB:,.0f} MB/s\n")

    def cpu_seconds(steps: list[str], stored: bool) -> float:
        total = 0.0
        for kind, nbytes in share.items():
            for p in steps:
                # AES and decompression see the compressed bytes; the rate was measured per raw byte
                total += nbytes / rates[kind][p]
        return total

    backup_steps = ["fastcdc", "blake3", "zstd-3 compress", "aes-gcm seal"]
    restore_steps = ["aes-gcm open", "zstd decompress", "blake3"]
    stored_bytes = sum(n * min(1.0, ratio[k]) for k, n in share.items())
    b = cpu_seconds(backup_steps, True)
    r = cpu_seconds(restore_steps, False)
    print(f"volume {args.size}: {sum(share.values()) / 2**20:.0f} MiB, ~{stored_bytes / 2**20:.0f} MiB after zstd "
          f"(before deduplication)")
    for label, secs, steps in (("backup", b, backup_steps), ("restore", r, restore_steps)):
        per = {p: cpu_seconds([p], False) for p in steps}
        detail = ", ".join(f"{p} {s:.2f} s" for p, s in per.items())
        print(f"- {label}: {secs:.2f} s of single-core CPU in the primitives ({detail}); "
              f"on {args.cores} cores ≥ {secs / args.cores:.2f} s")
    print(f"- disk: writing the stored bytes ≥ {stored_bytes / disk_write:.2f} s; writing the restored volume ≥ "
          f"{sum(share.values()) / disk_write:.2f} s (write + fsync rate); reading it from the page cache "
          f"≥ {sum(share.values()) / disk_read:.2f} s")
    dr_copy_floor(args, share, rates, ratio, stored_bytes, disk_write, disk_read)


def startup_cpu() -> tuple[float, float]:
    """CPU seconds of a fresh process importing the DR copy's modules, and of one Argon2id key derivation
    with the repository's default parameters (a copy opens two repositories: two derivations)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import kubekeep.drcopy, kubekeep.location"], check=True,
                   cwd=HERE.parent)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    imports = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    from kubekeep.repo.crypto import KdfParams, _kek

    t0 = time.process_time()  # argon2 may use several threads (parallelism): all of this process's CPU
    _kek("benchmark passphrase", os.urandom(16), KdfParams())
    return imports, time.process_time() - t0


def dr_copy_floor(args: argparse.Namespace, share: dict[str, int], rates: dict[str, dict[str, float]],
                  ratio: dict[str, float], stored_bytes: float, disk_write: float, disk_read: float) -> None:
    """The floor of a DR copy of the volume's repository (docs/dr-copy.md): what every copied byte must go
    through, from the rates above, and the fixed cost of a fresh copy process."""
    import volume as vol

    def cpu(steps: list[str], fraction: float) -> float:
        return fraction * sum(n / rates[k][p] for k, n in share.items() for p in steps)

    # BLAKE3 over packed (stored) bytes: at the rate of incompressible data
    hash_packed = stored_bytes / rates["random"]["blake3"]
    authenticate = ["aes-gcm open", "zstd decompress", "blake3"]
    imports, kdf = startup_cpu()
    fixed = imports + 2 * kdf
    size = sum(share.values())
    change = sum(len(c.data) for c in vol.changes(size)) / size  # new data after the 1 % change, as a fraction
    print(f"\nDR copy of this volume's repository (~{stored_bytes / 2**20:.0f} MiB of packs); fixed cost of a "
          f"copy process: imports {imports:.2f} s + 2 × Argon2id {kdf:.2f} s = {fixed:.2f} s CPU (one core)")
    for label, frac in (("full", 1.0), (f"incremental ({change:.1%} new data)", change)):
        replica = cpu(authenticate, frac) + 2 * hash_packed * frac
        independent = cpu(authenticate, frac) * 2 + cpu(["blake3", "aes-gcm seal"], frac)
        write = frac * stored_bytes / disk_write
        reads = frac * 2 * stored_bytes / disk_read
        for mode, secs in (("replica", replica), ("independent", independent)):
            print(f"- {mode}, {label}: {secs:.2f} s CPU in the primitives (+ {fixed:.2f} s fixed) → on "
                  f"{args.cores} cores ≥ {fixed + secs / args.cores:.2f} s (fixed cost single-threaded); disk "
                  f"write + fsync ≥ {write:.2f} s, page-cache reads ≥ {reads:.2f} s (overlappable)")


if __name__ == "__main__":
    main()
