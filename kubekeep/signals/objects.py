"""Manifest-level signals: Kubernetes objects deleted since the app's previous restore point, by kind.

An object is identified by (API group, kind, namespace, name); its API version
does not matter (a converted object is the same object). An object deleted and
re-created under the same name between two points is not a deletion here.

The keys come from either source, both streamed:
- the catalog's ``restore_point_objects`` rows (cheap, the backup flow's path);
- the manifest streams in the repository (when the catalog lacks the rows).
Memory holds a 16-byte digest per object of the current point, never the objects (catalog keys stay
Arrow columns until they are iterated: :class:`CatalogObjectKeys`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kubekeep.catalog import Catalog, TableName


@dataclass(frozen=True, slots=True)
class ObjectKey:
    group: str
    kind: str
    namespace: str
    name: str

    @property
    def kind_name(self) -> str:
        """``Kind`` for the core group, ``Kind.group`` otherwise (as in a restore point's kind counts)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def digest(self) -> bytes:
        raw = "\x00".join((self.group, self.kind, self.namespace, self.name)).encode()
        return hashlib.blake2b(raw, digest_size=16).digest()


@dataclass
class ObjectSignals:
    """Objects of the previous point that the current point no longer has."""

    #: None: the app's first point (nothing to compare with; not scored)
    previous_point_id: str | None
    objects: int = 0
    previous_objects: int = 0
    deleted: int = 0
    #: kind -> objects of that kind in the previous point
    previous_by_kind: dict[str, int] = field(default_factory=dict)
    #: kind -> objects of that kind deleted since the previous point (kinds with deletions only)
    deleted_by_kind: dict[str, int] = field(default_factory=dict)
    #: a few deleted objects, for the reasons (``Kind namespace/name``)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def first(self) -> bool:
        return self.previous_point_id is None

    def deleted_ratio(self, kinds: Iterable[str] | None = None) -> tuple[int, int]:
        """(deleted, previous) over ``kinds`` (all kinds when None)."""
        if kinds is None:
            return self.deleted, self.previous_objects
        wanted = set(kinds)
        return (sum(n for k, n in self.deleted_by_kind.items() if k in wanted),
                sum(n for k, n in self.previous_by_kind.items() if k in wanted))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ObjectSignals:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


MAX_EXAMPLES = 5


def object_signals(previous: Iterable[ObjectKey] | None, current: Iterable[ObjectKey], *,
                   previous_point_id: str | None) -> ObjectSignals:
    """Compare the object keys of the previous point (None: there is none) with the current point's."""
    started = time.perf_counter()
    out = ObjectSignals(previous_point_id=previous_point_id if previous is not None else None)
    present: set[bytes] = set()
    for key in current:
        present.add(key.digest())
        out.objects += 1
    if previous is not None:
        for key in previous:
            kind = key.kind_name
            out.previous_objects += 1
            out.previous_by_kind[kind] = out.previous_by_kind.get(kind, 0) + 1
            if key.digest() not in present:
                out.deleted += 1
                out.deleted_by_kind[kind] = out.deleted_by_kind.get(kind, 0) + 1
                if len(out.examples) < MAX_EXAMPLES:
                    where = f"{key.namespace}/{key.name}" if key.namespace else key.name
                    out.examples.append(f"{kind} {where}")
    out.seconds = time.perf_counter() - started
    return out


class CatalogObjectKeys:
    """The object keys of one restore point as read from the catalog: kept as Arrow columns (~45 B an object),
    made into :class:`ObjectKey` a batch at a time whenever they are iterated (a list of ObjectKey held ~250 B
    an object). Iterable more than once."""

    def __init__(self, table: pa.Table, *, batch_rows: int = 4096) -> None:
        self.table = table.select(["group", "kind", "namespace", "name"])
        self.batch_rows = batch_rows

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def __iter__(self) -> Iterator[ObjectKey]:
        for batch in self.table.to_batches(max_chunksize=self.batch_rows):
            cols = [batch.column(i).to_pylist() for i in range(4)]
            for group, kind, namespace, name in zip(*cols, strict=True):
                yield ObjectKey(group or "", kind, namespace or "", name)


def read_object_keys(catalog: Catalog, restore_point_id: str, *, batch_rows: int = 4096) -> CatalogObjectKeys:
    """The object keys of one restore point from the catalog's ``restore_point_objects`` rows."""
    table = catalog.read(TableName.RESTORE_POINT_OBJECTS, filter=pc.field("restore_point_id") == restore_point_id,
                         columns=["group", "kind", "namespace", "name"], units=[restore_point_id])
    return CatalogObjectKeys(table, batch_rows=batch_rows)


def catalog_object_keys(catalog: Catalog, restore_point_id: str, *, batch_rows: int = 4096
                        ) -> Iterator[ObjectKey]:
    """The object keys of one restore point from the catalog's ``restore_point_objects`` rows."""
    yield from read_object_keys(catalog, restore_point_id, batch_rows=batch_rows)


def manifest_object_keys(manifests: Iterable[Mapping[str, Any]]) -> Iterator[ObjectKey]:
    """The object keys of stored manifests (``read_manifests(repo, snapshot)`` objects)."""
    for obj in manifests:
        api_version = str(obj.get("apiVersion", ""))
        group = api_version.rpartition("/")[0]
        md = obj.get("metadata") or {}
        yield ObjectKey(group, str(obj.get("kind", "")), str(md.get("namespace") or ""), str(md.get("name", "")))
