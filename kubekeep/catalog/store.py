"""The catalog in a backup location: immutable Parquet objects, a local cache, compaction.

Layout (under ``catalog/v1/``, see docs/catalog-schema.md):

    <table>/rp-<restore point id>.parquet     one per restore point (restores: r-<restore id>,
                                              verifications: v-<verification id>)
    <table>/part-<digest>-<n>.parquet         compacted or rebuilt, sorted, many rows

Storage never overwrites, so nothing is updated in place: compaction writes new
objects under new keys and then deletes the ones it merged. Between those two
steps (or if a delete fails) a row exists twice; readers drop duplicates by the
table's key columns, so both states read the same.

Object keys are immutable, which makes the local cache trivial: a cached file
named after its key is valid forever, and only the listing is fetched per read.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..repo.storage.base import ObjectExistsError, ObjectInfo, ObjectLockedError, ObjectNotFoundError, Storage
from .records import (
    DeletedRestorePoint,
    DrCopyRecord,
    RestorePoint,
    RestorePointObject,
    RestorePointVolume,
    RestoreRecord,
    SignalAck,
    SignalRow,
    VerificationRecord,
    check_id,
    deletions_table,
    dr_copies_table,
    object_batches,
    restore_points_table,
    restores_table,
    signal_acks_table,
    signals_table,
    verifications_table,
    volumes_table,
)
from .schema import (
    META_SCHEMA_VERSION,
    SCHEMA_VERSION,
    TABLES,
    TableName,
    TableSpec,
    schema_with_metadata,
)
from .sorting import sorted_tables

CATALOG_PREFIX = "catalog/v1"
SMALL_FILE_PREFIX = "rp-"
RESTORE_FILE_PREFIX = "r-"
VERIFICATION_FILE_PREFIX = "v-"
DR_COPY_FILE_PREFIX = "c-"
PART_FILE_PREFIX = "part-"

#: row groups of this many rows keep min/max statistics selective on the sort
#: columns while staying large enough to scan efficiently
DEFAULT_ROW_GROUP_ROWS = 128 * 1024
DEFAULT_ROWS_PER_FILE = 1024 * 1024
#: smaller row groups for tables asked about one row at a time: "which restore points hold object Y"
#: reads one 16 Ki-row group of a compacted 1M-row part (34 ms of CPU) instead of two of 128 Ki (104 ms)
TABLE_ROW_GROUP_ROWS = {TableName.RESTORE_POINT_OBJECTS: 16 * 1024}
#: files smaller than this are merged by compaction (compacted parts included,
#: so parts grow over time instead of accumulating)
DEFAULT_SMALL_FILE_BYTES = 8 * 1024 * 1024
#: stored bytes merged at once by a compaction (the merged rows are held in memory: ~3-6x this for objects)
DEFAULT_MAX_INPUT_BYTES = 16 * 1024 * 1024
#: listings a read makes when a compaction deletes a file it listed
LISTING_ATTEMPTS = 3


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


RecordT = TypeVar("RecordT", bound=_Identified)


class CatalogCodec(Protocol):
    """Seals catalog files before they reach the location and opens them after (the repository's
    encryption); without one, files are stored as plain Parquet."""

    def seal(self, key: str, data: bytes) -> bytes: ...

    def open(self, key: str, data: bytes) -> bytes: ...


class CatalogError(Exception):
    """The catalog cannot be read or written as asked."""


class CatalogFormatError(CatalogError):
    """A catalog file this version cannot read (newer schema version, wrong table, corrupt)."""


def default_cache_dir() -> Path:
    explicit = os.environ.get("KUBEKEEP_CACHE_DIR")
    if explicit:
        return Path(explicit) / "catalog"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "kubekeep" / "catalog"


@dataclass(frozen=True)
class CompactionResult:
    table: TableName
    merged_keys: tuple[str, ...]
    written_keys: tuple[str, ...]
    deleted_keys: tuple[str, ...]
    #: inputs that could not be deleted (under retention); readers deduplicate them
    kept_keys: tuple[str, ...]
    rows: int


def table_prefix(table: TableName, prefix: str = CATALOG_PREFIX) -> str:
    return f"{prefix}/{table.value}/"


def encode_parquet(
    table: pa.Table, spec: TableSpec, *, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
) -> bytes:
    """Serialise ``table`` (already in ``spec``'s schema) with the catalog's file metadata; row groups of
    at most ``row_group_rows`` (and at most the table's :data:`TABLE_ROW_GROUP_ROWS`)."""
    return encode_tables([table], spec, row_group_rows=row_group_rows)


def encode_tables(tables: Iterable[pa.Table], spec: TableSpec, *, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
                  ) -> bytes:
    """Serialise ``tables`` one after the other into one file, as :func:`encode_parquet` does one table: each
    table starts a row group (a table of exactly the row group size is one row group)."""
    row_group_rows = min(row_group_rows, TABLE_ROW_GROUP_ROWS.get(spec.name, row_group_rows))
    schema = schema_with_metadata(spec)
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, schema, compression="zstd", write_statistics=True, use_dictionary=True) as writer:
        for table in tables:
            writer.write_table(table.cast(schema), row_group_size=row_group_rows)
    return buf.getvalue()


def encode_sorted(batches: Iterable[pa.RecordBatch], spec: TableSpec, *,
                  row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> bytes | None:
    """What ``encode_parquet`` writes for the rows of ``batches`` sorted by ``spec``'s sort order, in memory that
    does not grow with the rows besides the encoded file (:mod:`.sorting`); None for no rows."""
    row_group_rows = min(row_group_rows, TABLE_ROW_GROUP_ROWS.get(spec.name, row_group_rows))
    groups = sorted_tables(batches, spec.schema, spec.sort_by, out_rows=row_group_rows)
    first = next(groups, None)
    if first is None:
        return None
    return encode_tables(itertools.chain([first], groups), spec, row_group_rows=row_group_rows)


def check_file_metadata(metadata: pq.FileMetaData, spec: TableSpec, key: str) -> None:
    kv = metadata.metadata or {}
    version_raw = kv.get(META_SCHEMA_VERSION)
    if version_raw is None:
        raise CatalogFormatError(f"{key}: not a kubekeep catalog file (no schema_version in metadata)")
    try:
        version = int(version_raw)
    except ValueError:
        raise CatalogFormatError(f"{key}: unreadable schema_version {version_raw!r}") from None
    if version > SCHEMA_VERSION:
        raise CatalogFormatError(
            f"{key}: catalog schema_version {version} is newer than this kubekeep understands "
            f"({SCHEMA_VERSION}); upgrade kubekeep"
        )


class Catalog:
    """Reads and writes the catalog of one backup location.

    Safe to share between threads for reads; writes are independent
    put-if-absent calls. ``cache_dir`` is a local directory for downloaded
    catalog files (default: ``$KUBEKEEP_CACHE_DIR/catalog`` or
    ``~/.cache/kubekeep/catalog``), partitioned by the location's URL.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        prefix: str = CATALOG_PREFIX,
        codec: CatalogCodec | None = None,
    ) -> None:
        self.storage = storage
        self.codec = codec
        self.prefix = prefix.rstrip("/")
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        location_digest = hashlib.sha256(storage.url.encode()).hexdigest()[:16]
        self.cache_dir = base / location_digest
        #: the tombstones' file keys when last read, and the ids they hold (see :meth:`deleted_ids`)
        self._deleted: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())
        self._deleted_lock = threading.Lock()

    # ---------------------------------------------------------------- writes

    def _small_key(self, table: TableName, unit_id: str) -> str:
        file_prefix = {TableName.RESTORES: RESTORE_FILE_PREFIX,
                       TableName.VERIFICATIONS: VERIFICATION_FILE_PREFIX}.get(table, SMALL_FILE_PREFIX)
        return f"{table_prefix(table, self.prefix)}{file_prefix}{unit_id}.parquet"

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data``; a key that exists already counts as written (a retried step)."""
        try:
            self.storage.put(key, self.codec.seal(key, data) if self.codec else data)
        except ObjectExistsError:
            return False
        self._store_in_cache(key, data)
        return True

    def add_restore_point(
        self,
        point: RestorePoint,
        objects: Iterable[RestorePointObject] = (),
        volumes: Sequence[RestorePointVolume] = (),
    ) -> list[str]:
        """Record one restore point; return the keys of its catalog objects.

        Objects and volumes are written before the restore point row, so a
        visible restore point always has its detail rows. Retrying after a
        partial failure writes only what is missing. ``objects`` may be a
        generator, in any order: the file is sorted in runs spilled to a private
        temporary directory (:mod:`.sorting`), so memory holds the encoded file,
        not the rows.
        """

        def checked(rows: Iterable[RestorePointObject]) -> Iterator[RestorePointObject]:
            for row in rows:
                if row.restore_point_id != point.id:
                    raise CatalogError(f"row for restore point {row.restore_point_id} passed with restore point "
                                       f"{point.id}")
                yield row

        for v in volumes:
            if v.restore_point_id != point.id:
                raise CatalogError(f"row for restore point {v.restore_point_id} passed with restore point {point.id}")
        keys: list[str] = []
        data = encode_sorted(object_batches(checked(objects)), TABLES[TableName.RESTORE_POINT_OBJECTS])
        if data is not None:
            key = self._small_key(TableName.RESTORE_POINT_OBJECTS, point.id)
            self._put_if_absent(key, data)
            keys.append(key)
        del data
        if volumes:
            key = self._small_key(TableName.RESTORE_POINT_VOLUMES, point.id)
            spec = TABLES[TableName.RESTORE_POINT_VOLUMES]
            self._put_if_absent(key, encode_parquet(_sorted(volumes_table(volumes), spec), spec))
            keys.append(key)
        key = self._small_key(TableName.RESTORE_POINTS, point.id)
        spec = TABLES[TableName.RESTORE_POINTS]
        self._put_if_absent(key, encode_parquet(restore_points_table([point]), spec))
        keys.append(key)
        return keys

    def add_restore(self, restore: RestoreRecord) -> str:
        """Record the outcome of one restore (or dry run)."""
        key = self._small_key(TableName.RESTORES, restore.id)
        self._put_if_absent(key, encode_parquet(restores_table([restore]), TABLES[TableName.RESTORES]))
        return key

    def add_deletion(self, deletion: DeletedRestorePoint) -> str:
        """Record that a restore point was deleted: from now on its rows are hidden (a retry is a no-op)."""
        key = self._small_key(TableName.DELETED_RESTORE_POINTS, deletion.restore_point_id)
        spec = TABLES[TableName.DELETED_RESTORE_POINTS]
        self._put_if_absent(key, encode_parquet(deletions_table([deletion]), spec))
        return key

    def remove_point_files(self, restore_point_id: str) -> list[str]:
        """Delete the one-point files of a deleted restore point (its tombstone must exist); return the
        keys deleted. Rows of the point inside compacted parts stay, hidden by the tombstone, until a
        compaction rewrites those parts; a file under retention stays too (hidden the same way)."""
        check_id(restore_point_id, "restore point id")
        deleted: list[str] = []
        for table, spec in TABLES.items():
            if not spec.masked_by_deletions:
                continue
            key = self._small_key(table, restore_point_id)
            try:
                if not self.storage.exists(key):
                    continue
                self.storage.delete(key)
            except ObjectLockedError:
                continue
            deleted.append(key)
        return deleted

    def add_signals(self, rows: Sequence[SignalRow]) -> str:
        """Record one restore point's signals (its point row and volume rows) in one file."""
        ids = {r.restore_point_id for r in rows}
        if len(ids) != 1:
            raise CatalogError(f"signal rows of one restore point expected, got {len(ids)} point(s)")
        key = self._small_key(TableName.SIGNALS, ids.pop())
        spec = TABLES[TableName.SIGNALS]
        self._put_if_absent(key, encode_parquet(_sorted(signals_table(rows), spec), spec))
        return key

    def add_signal_ack(self, ack: SignalAck) -> bool:
        """Record an acknowledgement; False if the point was acknowledged already (files are immutable)."""
        key = self._small_key(TableName.SIGNAL_ACKS, ack.restore_point_id)
        return self._put_if_absent(key, encode_parquet(signal_acks_table([ack]), TABLES[TableName.SIGNAL_ACKS]))

    def add_verification(self, verification: VerificationRecord) -> str:
        """Record the verdict of one verification."""
        key = self._small_key(TableName.VERIFICATIONS, verification.id)
        spec = TABLES[TableName.VERIFICATIONS]
        self._put_if_absent(key, encode_parquet(verifications_table([verification]), spec))
        return key

    def add_missing(self, table: TableName, records: Iterable[RecordT],
                    add: Callable[[RecordT], object]) -> tuple[int, int]:
        """What a catalog rebuild does for one table: ``add`` each of ``records`` (which have an ``id``)
        whose id ``table`` lacks; return (written, already present)."""
        known = set(self.read(table, columns=["id"])["id"].to_pylist())
        written = present = 0
        for record in records:
            if record.id in known:
                present += 1
                continue
            add(record)
            known.add(record.id)
            written += 1
        return written, present

    def add_dr_copy(self, copy: DrCopyRecord) -> str:
        """Record that a restore point was copied to ``copy.destination`` (one file per point and
        destination; recording the same copy again is a no-op)."""
        digest = hashlib.sha256(copy.destination.encode()).hexdigest()[:16]
        key = (f"{table_prefix(TableName.DR_COPIES, self.prefix)}{DR_COPY_FILE_PREFIX}"
               f"{copy.restore_point_id}.{digest}.parquet")
        self._put_if_absent(key, encode_parquet(dr_copies_table([copy]), TABLES[TableName.DR_COPIES]))
        return key

    def _part_key(self, table: TableName, name: str) -> str:
        check_id(name, "part name")
        return f"{table_prefix(table, self.prefix)}{PART_FILE_PREFIX}{name}.parquet"

    def write_part(self, table: TableName, data: pa.Table, *, name: str,
                   row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> str | None:
        """Write a sorted many-row part file ``part-<name>.parquet``; None if it existed."""
        spec = TABLES[table]
        key = self._part_key(table, name)
        data = encode_parquet(_sorted(data, spec), spec, row_group_rows=row_group_rows)
        written = self._put_if_absent(key, data)
        return key if written else None

    # ----------------------------------------------------------------- cache

    def _cache_path(self, key: str) -> Path:
        # keys are '/'-separated and validated by the storage layer; mirror them
        return self.cache_dir.joinpath(*key.split("/"))

    def _store_in_cache(self, key: str, data: bytes) -> Path:
        path = self._cache_path(key)
        # the cache holds the catalog in plaintext: keep it private to this user
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def _fetch(self, info: ObjectInfo, spec: TableSpec) -> Path:
        path = self._cache_path(info.key)
        if path.is_file():  # keys are immutable and cache files are written atomically
            return path
        data = self.storage.get(info.key)
        if self.codec is not None:
            data = self.codec.open(info.key, data)
        try:
            metadata = pq.read_metadata(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogFormatError(f"{info.key}: not a readable Parquet file: {exc}") from exc
        check_file_metadata(metadata, spec, info.key)
        return self._store_in_cache(info.key, data)

    def prune_cache(self) -> int:
        """Delete cached files whose objects are gone from the location; return how many."""
        live = {info.key for t in TableName for info in self._list(t)}
        removed = 0
        if not self.cache_dir.is_dir():
            return 0
        for path in self.cache_dir.rglob("*.parquet"):
            key = path.relative_to(self.cache_dir).as_posix()
            if key not in live:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # ----------------------------------------------------------------- reads

    def _list(self, table: TableName) -> Iterator[ObjectInfo]:
        for info in self.storage.list(table_prefix(table, self.prefix)):
            if info.key.endswith(".parquet"):
                yield info

    def units(self, table: TableName) -> list[str]:
        """The write units (restore point ids) of ``table``'s one-point files, from the listing alone (rows of
        compacted part files are not named here)."""
        return self.unit_listing(table)[0]

    def unit_listing(self, table: TableName) -> tuple[list[str], list[str]]:
        """(the write units of ``table``'s one-point files, the keys of its other files: compacted parts),
        from one listing."""
        small = f"{table_prefix(table, self.prefix)}{SMALL_FILE_PREFIX}"
        units: list[str] = []
        others: list[str] = []
        for info in self._list(table):
            if info.key.startswith(small):
                units.append(info.key[len(small):-len(".parquet")])
            else:
                others.append(info.key)
        return units, others

    def dataset(self, table: TableName, units: Collection[str] | None = None) -> ds.Dataset:
        """A pyarrow dataset over every catalog file of ``table`` (fetched into the cache).

        ``units``: only rows of these write units (restore point ids) are wanted; the small file of any
        other unit is left out without being read (part files of compactions hold many units and are
        always read). Rows are NOT deduplicated: while a compaction is in flight a row can be
        in two files. Use :meth:`read` for deduplicated results.
        """
        files, dataset = self._opened(table, units)
        return dataset if dataset is not None else ds.dataset([], schema=TABLES[table].schema, format="parquet")

    def _files(self, table: TableName, units: Collection[str] | None = None) -> list[ObjectInfo]:
        infos = sorted(self._list(table), key=lambda i: i.key)
        if units is not None:
            small = f"{table_prefix(table, self.prefix)}{SMALL_FILE_PREFIX}"
            wanted = {self._small_key(table, unit) for unit in units}
            infos = [i for i in infos if not i.key.startswith(small) or i.key in wanted]
        return infos

    def _dataset(self, table: TableName, infos: Sequence[ObjectInfo]) -> ds.Dataset:
        spec = TABLES[table]
        paths = [str(self._fetch(info, spec)) for info in infos]
        return ds.dataset(paths, schema=spec.schema, format="parquet")

    def _opened(self, table: TableName, units: Collection[str] | None) -> tuple[list[ObjectInfo], ds.Dataset | None]:
        """The files of ``table`` and a dataset over them (None: no file). A compaction in another process may
        delete a small file between this reader's listing and its fetch; its rows are in a part stored before
        that delete, so a fresh listing finds them."""
        for attempt in range(1, LISTING_ATTEMPTS + 1):
            files = self._files(table, units)
            try:
                return files, self._dataset(table, files) if files else None
            except ObjectNotFoundError:
                if attempt == LISTING_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def read(
        self,
        table: TableName,
        filter: pc.Expression | None = None,
        columns: Sequence[str] | None = None,
        units: Collection[str] | None = None,
    ) -> pa.Table:
        """Rows of ``table`` matching ``filter`` (a pyarrow compute expression), deduplicated.

        ``units`` (restore point ids) skips the small files of other units; ``filter`` must still select
        the units' rows (part files hold every unit)."""
        spec = TABLES[table]
        wanted = list(columns) if columns is not None else None
        if wanted is not None:
            wanted += [c for c in spec.key if c not in wanted]
        if spec.masked_by_deletions:
            deleted = self.deleted_ids()
            if deleted:
                hide = ~pc.field(spec.unit_column).isin(pa.array(sorted(deleted), pa.string()))
                filter = hide if filter is None else filter & hide
        files, dataset = self._opened(table, units)
        if dataset is None:  # nothing stored yet: no dataset to open (~1-3 ms each, several per signals step)
            result = spec.schema.empty_table()
            return result.select(list(columns)) if columns is not None else result
        result = dataset.to_table(columns=wanted, filter=filter)
        if len(dataset.files) > 1:  # a single file never holds a row twice
            result = deduplicate(result, spec.key)
        if columns is not None:
            result = result.select(list(columns))
        return result

    def deleted_ids(self) -> set[str]:
        """Ids of every deleted restore point (rows of these are hidden by :meth:`read`).

        Every masked read asks for them, so they are read again only when the listing of the tombstones'
        files changed since the last read (files are immutable: the same keys hold the same rows)."""
        table = TableName.DELETED_RESTORE_POINTS
        keys = tuple(info.key for info in self._files(table))
        with self._deleted_lock:
            if self._deleted[0] == keys:
                return set(self._deleted[1])
        files, dataset = self._opened(table, None)
        keys = tuple(info.key for info in files)
        ids: frozenset[str] = frozenset()
        if dataset is not None:
            ids = frozenset(pc.unique(dataset.to_table(columns=["restore_point_id"])["restore_point_id"]).to_pylist())
        with self._deleted_lock:
            self._deleted = (keys, ids)
        return set(ids)

    # ------------------------------------------------------------ compaction

    def compact(
        self,
        table: TableName | None = None,
        *,
        small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES,
        min_files: int = 2,
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    ) -> list[CompactionResult]:
        """Merge files smaller than ``small_file_bytes`` into sorted parts; delete the merged ones.

        The inputs are merged in batches of at most ``max_input_bytes`` of stored files (at least one file
        each), so memory does not grow with the catalog; each batch writes its own parts.

        Safe to retry and to run next to writers and readers: output names derive from the
        input keys (a retry writes the same names and skips existing ones),
        only inputs are deleted, and only after every output of their batch is stored.
        """
        tables = [table] if table is not None else list(TableName)
        return [
            self._compact_table(t, small_file_bytes, min_files, rows_per_file, row_group_rows, max_input_bytes)
            for t in tables
        ]

    def small_files(self, table: TableName, small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES) -> int:
        """How many files of ``table`` a compaction would merge (from the listing alone)."""
        return sum(1 for info in self._list(table) if info.size < small_file_bytes)

    def _merge_inputs(self, table: TableName, inputs: Sequence[ObjectInfo]) -> pa.Table:
        spec = TABLES[table]
        merged = self._dataset(table, inputs).to_table()
        if spec.masked_by_deletions:  # rows of deleted restore points are not carried over
            gone = self.deleted_ids()
            if gone:
                hidden = pc.is_in(merged[spec.unit_column], value_set=pa.array(sorted(gone), pa.string()))
                merged = merged.filter(pc.invert(hidden))
        return _sorted(deduplicate(merged, spec.key), spec)

    def _compact_table(self, table: TableName, small_file_bytes: int, min_files: int,
                       rows_per_file: int, row_group_rows: int, max_input_bytes: int) -> CompactionResult:
        inputs = sorted((i for i in self._list(table) if i.size < small_file_bytes), key=lambda i: i.key)
        if len(inputs) < max(min_files, 1):
            return CompactionResult(table, (), (), (), (), 0)
        batches: list[list[ObjectInfo]] = [[]]
        size = 0
        for info in inputs:
            if batches[-1] and size + info.size > max_input_bytes:
                batches.append([])
                size = 0
            batches[-1].append(info)
            size += info.size
        written: list[str] = []
        deleted: list[str] = []
        kept: list[str] = []
        rows = 0
        for batch in batches:
            merged = self._merge_inputs(table, batch)
            digest = hashlib.sha256("\n".join(i.key for i in batch).encode()).hexdigest()[:24]
            outputs: list[str] = []
            for n, start in enumerate(range(0, max(merged.num_rows, 1), rows_per_file)):
                name = f"{digest}-{n:04d}"
                self.write_part(table, merged.slice(start, rows_per_file), name=name, row_group_rows=row_group_rows)
                outputs.append(self._part_key(table, name))
            rows += merged.num_rows
            del merged
            written += outputs
            for info in batch:
                if info.key in outputs:
                    continue  # a retried compaction whose inputs include its own earlier output
                try:
                    self.storage.delete(info.key)
                except ObjectLockedError:
                    kept.append(info.key)
                    continue
                deleted.append(info.key)
        return CompactionResult(table, tuple(i.key for i in inputs), tuple(written), tuple(deleted), tuple(kept), rows)


def _sorted(table: pa.Table, spec: TableSpec) -> pa.Table:
    return table.sort_by([(column, "ascending") for column in spec.sort_by])


def deduplicate(table: pa.Table, key: Iterable[str]) -> pa.Table:
    """Keep the first row of each distinct ``key`` (vectorised: group-by on a row index)."""
    key = list(key)
    if table.num_rows < 2:
        return table
    indexed = table.select(key).append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    firsts = indexed.group_by(key, use_threads=False).aggregate([("__row", "min")])["__row_min"]
    if len(firsts) == table.num_rows:
        return table
    return table.take(pc.take(firsts, pc.sort_indices(firsts)))
