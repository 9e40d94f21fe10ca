"""A reload of the index reads only the index objects it has not read yet (index objects are never
rewritten: a prune deletes them and writes new ones), so committing a snapshot does not cost a GET per
index object of the whole repository; a deleted object makes the next reload read everything again."""

from __future__ import annotations

import os
from pathlib import Path

from kubekeep.repo.format import INDEX_PREFIX
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage

from .conftest import make_repo, open_repo


class CountingStorage(FilesystemStorage):
    """The filesystem storage, counting GETs of index objects."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, create=True)
        self.index_gets = 0

    def get(self, key: str) -> bytes:
        if key.startswith(INDEX_PREFIX):
            self.index_gets += 1
        return super().get(key)


def _index_objects(storage: FilesystemStorage) -> list[str]:
    return [info.key for info in storage.list(INDEX_PREFIX)]


def test_a_reload_reads_only_the_index_objects_another_writer_added(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path / "repo")
    writer = make_repo(storage)
    for i in range(6):
        writer.backup_stream(f"s{i}", [os.urandom(50_000)])
    reader = open_repo(storage)
    reader.load_index(reload=True)
    assert len(_index_objects(storage)) >= 6

    storage.index_gets = 0
    reader.load_index(reload=True)
    assert storage.index_gets == 0  # nothing new: the listing is all it costs

    before = set(_index_objects(storage))
    new = os.urandom(50_000)
    added = writer.backup_stream("new", [new]).snapshot_id
    written = set(_index_objects(storage)) - before
    assert written
    storage.index_gets = 0
    reader.load_index(reload=True)
    assert storage.index_gets == len(written)  # only the writer's new index objects
    assert b"".join(reader.read_stream(added, "new")) == new


def test_an_index_object_another_writer_deleted_makes_the_next_reload_read_all_of_them(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path / "repo")
    writer: Repository = make_repo(storage)
    kept = {writer.backup_stream(f"s{i}", [os.urandom(50_000)]).snapshot_id: i for i in range(4)}
    gone = writer.backup_stream("gone", [os.urandom(50_000)]).snapshot_id
    reader = open_repo(storage)
    reader.load_index(reload=True)
    writer.prune([gone], repack_threshold=1.0)  # repacks: index objects deleted and one written anew
    storage.index_gets = 0
    index = reader.load_index(reload=True)
    assert storage.index_gets == len(_index_objects(storage))  # a removal: read from scratch
    named = {key for sources in index.sources.values() for key in sources}
    assert named == set(_index_objects(storage))  # no pack of a deleted index object remains
    for snapshot, i in kept.items():
        assert b"".join(reader.read_stream(snapshot, f"s{i}"))
