"""The benchmark volume (benchmarks/volume.py) can be generated at every size its tables use: 8 GiB has random
files larger than one ``randbytes`` call draws (2**31 bits), and smaller files keep their bytes."""

from __future__ import annotations

import random

from benchmarks.volume import FileSpec, MiB, _seed, plan


def test_random_files_bigger_than_one_draw_are_generated_deterministically() -> None:
    big = max((s for s in plan(8 << 30) if s.kind == "random"), key=lambda s: s.size)
    assert big.size > 256 * MiB  # what failed: OverflowError in random.randbytes
    spec = FileSpec(big.path, "random", 256 * MiB + 3)
    first = spec.content()
    assert len(first) == spec.size and first == spec.content()


def test_random_files_below_the_limit_keep_their_bytes() -> None:
    spec = FileSpec("media/clip-000.bin", "random", 3 * MiB)
    assert spec.content() == random.Random(_seed(spec.path)).randbytes(3 * MiB)  # one draw, as every run had
