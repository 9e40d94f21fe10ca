"""Sorting more rows than memory should hold: sorted runs spilled to a private directory, then merged.

A restore point's objects file is sorted by the catalog's sort order (kind, namespace, name, ...), so that row-group
statistics answer "which restore points hold object Y" without reading every group; a backup collects its
objects in another order (type by type, as the API server lists them), 100,000 of them or more. Sorting them as one
table held every row twice (the table and its sorted copy) besides the encoded file.

:func:`sorted_tables` takes the rows as record batches. Every ``run_rows`` of them are sorted (Arrow's sort, which
is stable) and, when more rows follow, written to an Arrow IPC file in a 0700 temporary directory (the rows name
the application's objects; the directory is deleted when the generator ends). The runs are then merged
(:func:`heapq.merge`, which is stable: on equal keys the earlier run comes first) at most ``fan_in`` at a time, into
tables of ``out_rows`` rows. So the order is exactly that of one stable sort of all the rows, and memory holds one
run, or one read batch per merged run and one output table, whatever the number of rows. Rows that fit in one run
are sorted in memory and never written to disk.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa

#: rows sorted in memory at once (a larger input is spilled in runs of this size)
RUN_ROWS = 16 * 1024
#: runs merged at once (more are merged in passes)
FAN_IN = 16
#: rows of each run read at once while merging (as Python values: the merge compares them in Python)
READ_ROWS = 512
#: merged rows turned back into Arrow arrays at once
CHUNK_ROWS = 2048

Row = tuple[Any, ...]


def sorted_tables(batches: Iterable[pa.RecordBatch], schema: pa.Schema, sort_by: Sequence[str], *, out_rows: int,
                  run_rows: int = RUN_ROWS, fan_in: int = FAN_IN, directory: str | os.PathLike[str] | None = None
                  ) -> Iterator[pa.Table]:
    """The rows of ``batches`` (record batches of ``schema``) in ascending ``sort_by`` order, as tables of
    ``out_rows`` rows (the last one shorter; nothing for no rows). Equal keys keep their input order; nulls sort
    last (as :meth:`pyarrow.Table.sort_by`). ``directory``: where the private spill directory is made (default:
    the system's temporary directory)."""
    if out_rows < 1 or run_rows < 1 or fan_in < 2:
        raise ValueError("out_rows and run_rows must be positive and fan_in at least 2")
    order = [(column, "ascending") for column in sort_by]
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    spill: tempfile.TemporaryDirectory[str] | None = None
    runs: list[Path] = []
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= run_rows:
                if spill is None:
                    spill = tempfile.TemporaryDirectory(prefix="kubekeep-sort-", dir=directory)
                runs.append(_write_run(Path(spill.name), len(runs), _sorted(pending, schema, order), schema))
                pending, pending_rows = [], 0
        if not runs:
            if pending_rows:
                table = _sorted(pending, schema, order)
                pending = []
                for start in range(0, table.num_rows, out_rows):
                    yield table.slice(start, out_rows)
            return
        assert spill is not None
        if pending_rows:
            runs.append(_write_run(Path(spill.name), len(runs), _sorted(pending, schema, order), schema))
            pending = []
        key = _key_of(schema, sort_by)
        names = len(runs)
        while len(runs) > fan_in:  # merge passes until one merge takes every run
            merged: list[Path] = []
            for start in range(0, len(runs), fan_in):
                group = runs[start:start + fan_in]
                if len(group) == 1:
                    merged.append(group[0])
                    continue
                path = _new_file(Path(spill.name), names)
                names += 1
                with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                    for chunk in _chunks(_merge(group, key), schema, READ_ROWS):
                        writer.write_batch(chunk)
                for run in group:
                    run.unlink()
                merged.append(path)
            runs = merged
        out: list[pa.RecordBatch] = []
        out_count = 0
        for chunk in _chunks(_merge(runs, key), schema, min(CHUNK_ROWS, out_rows)):
            while chunk.num_rows:
                take = min(chunk.num_rows, out_rows - out_count)
                out.append(chunk.slice(0, take))
                out_count += take
                chunk = chunk.slice(take)
                if out_count == out_rows:
                    yield pa.Table.from_batches(out, schema)
                    out, out_count = [], 0
        if out:
            yield pa.Table.from_batches(out, schema)
    finally:
        if spill is not None:
            spill.cleanup()


def _sorted(batches: list[pa.RecordBatch], schema: pa.Schema, order: list[tuple[str, str]]) -> pa.Table:
    return pa.Table.from_batches(batches, schema).sort_by(order)


def _new_file(directory: Path, n: int) -> Path:
    path = directory / f"run-{n:06d}.arrow"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _write_run(directory: Path, n: int, table: pa.Table, schema: pa.Schema) -> Path:
    path = _new_file(directory, n)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(table, max_chunksize=READ_ROWS)
    return path


def _key_of(schema: pa.Schema, sort_by: Sequence[str]) -> Callable[[Row], Any]:
    """The merge key of a row: its ``sort_by`` values, compared as Arrow's sort compares them (strings by code
    point, which is UTF-8's byte order; nulls after every value)."""
    positions = [schema.get_field_index(column) for column in sort_by]
    nullable = [schema.field(p).nullable for p in positions]
    if not any(nullable):
        return itemgetter(*positions)
    return lambda row: tuple((row[p] is None, row[p]) if n else row[p] for p, n in zip(positions, nullable,
                                                                                      strict=True))


def _rows(path: Path) -> Iterator[Row]:
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            columns = [column.to_pylist() for column in batch.columns]
            del batch
            yield from zip(*columns, strict=True)


def _merge(runs: Sequence[Path], key: Callable[[Row], Any]) -> Iterator[Row]:
    return heapq.merge(*(_rows(run) for run in runs), key=key)


def _chunks(rows: Iterator[Row], schema: pa.Schema, size: int) -> Iterator[pa.RecordBatch]:
    """``rows`` as record batches of ``size`` rows (the last one shorter)."""
    buffer: list[Row] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) == size:
            yield rows_batch(buffer, schema)
            buffer = []
    if buffer:
        yield rows_batch(buffer, schema)


def rows_batch(rows: Sequence[Row], schema: pa.Schema) -> pa.RecordBatch:
    """Python rows (tuples in ``schema``'s column order) as one record batch, a column at a time."""
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays([pa.array(values, type=f.type) for values, f in zip(columns, schema,
                                                                                         strict=True)],
                                      schema=schema)
