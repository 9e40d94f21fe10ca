"""The catalog's external sort: spilled runs merged give exactly one stable in-memory sort."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from kubekeep.catalog.sorting import sorted_tables

SCHEMA = pa.schema([pa.field("kind", pa.string(), nullable=False), pa.field("name", pa.string()),
                    pa.field("n", pa.int64(), nullable=False)])
ORDER = ("kind", "name")


def _batches(rows: list[dict[str, object]], size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(rows), size):
        yield pa.RecordBatch.from_pylist(rows[start:start + size], schema=SCHEMA)


def _rows(count: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    names = [None, "", "a", "b", "\u00e9", "e\u0301", "\U0001f600", "Z"]
    # few distinct keys: many ties, whose input order (``n``) must survive
    return [{"kind": rng.choice(["Secret", "ConfigMap", "Service"]), "name": rng.choice(names), "n": n}
            for n in range(count)]


def _in_memory(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    return table.sort_by([(column, "ascending") for column in ORDER]).to_pylist()


@pytest.mark.parametrize(("count", "run_rows", "fan_in", "out_rows"), [
    (0, 10, 2, 4),
    (9, 10, 2, 4),  # one run: sorted in memory
    (10, 10, 2, 4),  # exactly one full run: spilled, then merged alone
    (1000, 64, 16, 100),  # one merge pass
    (1000, 7, 3, 33),  # several passes (143 runs, 3 at a time), a group of one left over
])
def test_spilled_runs_merge_into_the_stable_sort(tmp_path: Path, count: int, run_rows: int, fan_in: int,
                                                 out_rows: int) -> None:
    rows = _rows(count)
    tables = list(sorted_tables(_batches(rows, 5), SCHEMA, ORDER, out_rows=out_rows, run_rows=run_rows,
                                fan_in=fan_in, directory=tmp_path))
    assert [t.num_rows for t in tables[:-1]] == [out_rows] * (len(tables) - 1)
    assert sum(t.num_rows for t in tables) == count
    assert [r for t in tables for r in t.to_pylist()] == _in_memory(rows)
    assert all(t.schema == SCHEMA for t in tables)
    assert list(tmp_path.iterdir()) == []  # the spill directory is gone


def test_spill_directory_is_private_and_removed_when_the_reader_stops(tmp_path: Path) -> None:
    tables = sorted_tables(_batches(_rows(100), 5), SCHEMA, ORDER, out_rows=10, run_rows=20, directory=tmp_path)
    next(tables)
    (spill,) = tmp_path.iterdir()
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in spill.iterdir())
    tables.close()
    assert list(tmp_path.iterdir()) == []


def test_spill_directory_is_removed_when_the_input_fails(tmp_path: Path) -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield from _batches(_rows(50), 5)
        raise OSError("the repository went away")

    with pytest.raises(OSError, match="went away"):
        list(sorted_tables(failing(), SCHEMA, ORDER, out_rows=10, run_rows=20, directory=tmp_path))
    assert os.listdir(tmp_path) == []
