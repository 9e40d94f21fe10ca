"""A deterministic test volume for backup benchmarks, and its "next day" version.

    python benchmarks/volume.py /tmp/vol --size 1GiB            # version 1
    python benchmarks/volume.py /tmp/vol --size 1GiB --change   # version 1 -> version 2 in place
    python benchmarks/volume.py /tmp/vol --size 1GiB --revert   # version 2 -> version 1 in place

Version 1 mixes what a Kubernetes application volume holds (shares of the total):

- ``db/table-*.jsonl``  30 % compressible JSON rows (32 MiB files)
- ``pg/base-*.dat``     15 % database-like 8 KiB pages, half row text, half random
- ``media/*.bin``       30 % random, incompressible (a few big files and some 1-8 MiB ones)
- ``dedup/*.img``       15 % files made of 1 MiB blocks drawn from a small pool
                             (repeats inside and across files)
- ``small/*/*``         10 % many small config/YAML/JSON files (1-24 KiB)

Version 2 changes about 1 % of the bytes in place, scattered (8 KiB page
rewrites, 64 KiB random overwrites, 16 KiB row-range rewrites, a few small
files rewritten), and adds one new 10 MiB file. Every file is generated from
its own seed, so a changed file can be put back exactly (``--revert``): the
harness reuses one directory for repeated runs instead of regenerating it.
Sizes never change in place, only content and mtime.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PAGE = 8 * KiB
NEW_FILE = "media/new-upload.bin"
NEW_FILE_SIZE = 10 * MiB

_WORDS = [
    "order", "customer", "payment", "shipped", "pending", "refund", "invoice", "warehouse", "berlin", "paris",
    "tokyo", "premium", "standard", "express", "cancelled", "delivered", "cart", "coupon", "tax", "currency",
    "EUR", "USD", "JPY", "alpha", "beta", "gamma", "delta", "node", "pod", "namespace", "volume", "claim",
]


def parse_size(text: str) -> int:
    units = {"kib": KiB, "mib": MiB, "gib": GiB, "kb": 1000, "mb": 10**6, "gb": 10**9, "b": 1}
    low = text.strip().lower()
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if low.endswith(unit):
            return int(float(low[: -len(unit)]) * factor)
    return int(low)


def _seed(name: str, salt: int = 0) -> int:
    return zlib.crc32(name.encode()) * 7919 + salt


def _json_rows(rng: random.Random, size: int, first_id: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    row_id = first_id
    choice, rand = rng.choice, rng.random
    while total < size:
        row = json.dumps({
            "id": row_id, "customer": f"c{rng.randrange(1_000_000):07d}", "status": choice(_WORDS),
            "city": choice(_WORDS), "amount": round(rand() * 1000, 2), "currency": choice(_WORDS[20:23]),
            "note": " ".join(choice(_WORDS) for _ in range(rng.randrange(2, 12))),
            "ts": 1_700_000_000 + row_id * 13}, separators=(",", ":")).encode() + b"\n"
        parts.append(row)
        total += len(row)
        row_id += 1
    return b"".join(parts)[:size]


def _pages(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    text = _json_rows(rng, PAGE * 64, rng.randrange(10**6))
    while len(out) < size:
        off = rng.randrange(0, len(text) - PAGE // 2)
        out += text[off:off + PAGE // 2] + rng.randbytes(PAGE // 2)
    return bytes(out[:size])


def _small(rng: random.Random, size: int, i: int) -> bytes:
    if i % 3 == 0:
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"cm-{i}", "labels": {"app": rng.choice(_WORDS)}},
            "data": {f"k{j}": " ".join(rng.choice(_WORDS) for _ in range(8)) for j in range(size // 64)}}
        return json.dumps(doc, indent=2).encode()[:size].ljust(size, b" ")
    lines = [f"{rng.choice(_WORDS)}_{j}: {rng.choice(_WORDS)} {rng.randrange(10**6)}" for j in range(size // 20)]
    return ("\n".join(lines) + "\n").encode()[:size].ljust(size, b"#")


#: randbytes draws at most 2**31 bits at once: random files this big or bigger (only volumes of ~2.5 GiB and
#: more have them) are drawn in pieces of RANDOM_PIECE; smaller ones are drawn at once, as always
RANDOM_AT_ONCE = 256 * MiB
RANDOM_PIECE = 64 * MiB


@dataclass(frozen=True)
class FileSpec:
    path: str
    kind: str
    size: int

    def content(self) -> bytes:
        rng = random.Random(_seed(self.path))
        if self.kind == "rows":
            return _json_rows(rng, self.size, _seed(self.path) % 10**6 * 1000)
        if self.kind == "pages":
            return _pages(rng, self.size)
        if self.kind == "random":
            if self.size < RANDOM_AT_ONCE:
                return rng.randbytes(self.size)
            return b"".join(rng.randbytes(min(RANDOM_PIECE, self.size - at))
                            for at in range(0, self.size, RANDOM_PIECE))
        if self.kind == "blocks":
            pool = [random.Random(_seed("block", b)).randbytes(MiB) for b in range(16)]
            return b"".join(rng.choice(pool) for _ in range(self.size // MiB))
        if self.kind == "small":
            return _small(rng, self.size, _seed(self.path) % 1000)
        raise ValueError(self.kind)


def plan(total: int) -> list[FileSpec]:
    """Version 1's files, in a fixed order."""
    specs: list[FileSpec] = []

    def split(prefix: str, kind: str, share: float, file_size: int, ext: str) -> None:
        budget = int(total * share)
        n = 0
        while budget > 0:
            size = min(file_size, budget)
            specs.append(FileSpec(f"{prefix}-{n:03d}.{ext}", kind, size))
            budget -= size
            n += 1

    split("db/table", "rows", 0.30, 32 * MiB, "jsonl")
    split("pg/base", "pages", 0.15, 16 * MiB, "dat")
    # random data: two big files, the rest in 1-8 MiB pieces
    budget = int(total * 0.30)
    rng = random.Random(42)
    big = budget // 3
    for n in range(2):
        specs.append(FileSpec(f"media/video-{n}.bin", "random", big))
    budget -= 2 * big
    n = 0
    while budget > 0:
        size = min(budget, rng.randrange(1, 9) * MiB)
        specs.append(FileSpec(f"media/clip-{n:03d}.bin", "random", size))
        budget -= size
        n += 1
    split("dedup/disk", "blocks", 0.15, 32 * MiB, "img")
    budget = int(total * 0.10)
    n = 0
    while budget > 0:
        size = min(budget, rng.randrange(1, 25) * KiB)
        specs.append(FileSpec(f"small/d{n // 200:03d}/f{n:05d}.{'json' if n % 3 == 0 else 'yaml'}", "small", size))
        budget -= size
        n += 1
    return specs


@dataclass(frozen=True)
class Change:
    path: str
    offset: int
    data: bytes


def changes(total: int) -> list[Change]:
    """Version 2's in-place writes (about 1 % of ``total`` bytes, scattered)."""
    specs = plan(total)
    rng = random.Random(7)
    target = total // 100
    out: list[Change] = []
    by_kind: dict[str, list[FileSpec]] = {}
    for s in specs:
        by_kind.setdefault(s.kind, []).append(s)

    def pick(kind: str, length: int) -> tuple[FileSpec, int]:
        spec = rng.choice([s for s in by_kind[kind] if s.size > length])
        return spec, rng.randrange(0, (spec.size - length) // PAGE + 1) * PAGE

    budget = {"pages": int(target * 0.35), "random": int(target * 0.30), "rows": int(target * 0.25),
              "small": int(target * 0.10)}
    while budget["pages"] > 0:  # database page rewrites (8 KiB, page aligned)
        spec, off = pick("pages", PAGE)
        out.append(Change(spec.path, off, _pages(rng, PAGE)))
        budget["pages"] -= PAGE
    while budget["random"] > 0:  # 64 KiB overwrites inside big binary files
        spec, off = pick("random", 64 * KiB)
        out.append(Change(spec.path, off, rng.randbytes(64 * KiB)))
        budget["random"] -= 64 * KiB
    while budget["rows"] > 0:  # a run of rows updated in place (16 KiB, same length)
        spec, off = pick("rows", 16 * KiB)
        out.append(Change(spec.path, off, _json_rows(rng, 16 * KiB, rng.randrange(10**9))))
        budget["rows"] -= 16 * KiB
    small = by_kind["small"]
    while budget["small"] > 0:  # whole small files rewritten
        spec = rng.choice(small)
        out.append(Change(spec.path, 0, _small(rng, spec.size, rng.randrange(1000))))
        budget["small"] -= spec.size
    return out


def generate(root: Path, total: int) -> int:
    """Write version 1 under ``root`` (removing anything else there). Returns the bytes written."""
    if root.exists():
        shutil.rmtree(root)
    written = 0
    for spec in plan(total):
        path = root / spec.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = spec.content()
        path.write_bytes(data)
        written += len(data)
    return written


def apply_changes(root: Path, total: int) -> int:
    """Version 1 -> version 2 in place. Returns the bytes changed (the new file included)."""
    changed = 0
    for ch in changes(total):
        with open(root / ch.path, "r+b") as fh:
            fh.seek(ch.offset)
            fh.write(ch.data)
        changed += len(ch.data)
    (root / NEW_FILE).write_bytes(random.Random(_seed(NEW_FILE)).randbytes(NEW_FILE_SIZE))
    return changed + NEW_FILE_SIZE


def revert_changes(root: Path, total: int) -> None:
    """Version 2 -> version 1 in place (rewrites the touched files from their seeds)."""
    specs = {s.path: s for s in plan(total)}
    for path in sorted({ch.path for ch in changes(total)}):
        (root / path).write_bytes(specs[path].content())
    (root / NEW_FILE).unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--size", default="1GiB")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--change", action="store_true", help="turn version 1 into version 2")
    group.add_argument("--revert", action="store_true", help="turn version 2 back into version 1")
    args = ap.parse_args()
    total = parse_size(args.size)
    if args.change:
        print(f"changed {apply_changes(args.root, total)} bytes")
    elif args.revert:
        revert_changes(args.root, total)
    else:
        print(f"wrote {generate(args.root, total)} bytes")


if __name__ == "__main__":
    os.umask(0o022)
    main()
