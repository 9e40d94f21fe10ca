"""The restore point: the product's central noun, shared by backup, restore, copy, verify and retention.

- :mod:`.record`: the record (:class:`RestorePointRecord`, :class:`VolumeRecord`), its tags, and
  writing/reading it (the commit point of a backup run);
- :mod:`.manifests`: the manifest stream (one JSON object per line) written and read back;
- :mod:`.catalog`: its catalog rows, derived from the repository alone (so the catalog is rebuildable);
- :mod:`.choose`: choosing one, by id or the latest succeeded point of an app;
- :mod:`.object_lock`: S3 Object Lock retention of every object it needs.

``kubekeep.backup`` writes restore points and ``kubekeep.restore`` reads them; both import this
package and never each other.
"""

from typing import TYPE_CHECKING, Any

from .manifests import MANIFESTS_STREAM, manifest_stream, read_manifests
from .record import (
    MANIFESTS_TAG,
    RESTORE_POINT_STREAM,
    RESTORE_POINT_TAG,
    VOLUME_TAG,
    RestorePointNotFoundError,
    RestorePointRecord,
    VolumeRecord,
    read_restore_point,
    write_restore_point,
)

if TYPE_CHECKING:
    from .catalog import add_to_catalog, catalog_rows, rebuild_repository_catalog, restore_point_summaries
    from .choose import choose_restore_point, find_restore_point

#: names from the modules that use the catalog, imported on first use: a process that only reads and
#: writes a repository (a DR copy, a mover) does not load pyarrow (~0.3-0.5 s of its start-up)
_LAZY = {"add_to_catalog": "catalog", "catalog_rows": "catalog", "rebuild_repository_catalog": "catalog",
         "restore_point_summaries": "catalog", "choose_restore_point": "choose", "find_restore_point": "choose"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "MANIFESTS_STREAM",
    "MANIFESTS_TAG",
    "RESTORE_POINT_STREAM",
    "RESTORE_POINT_TAG",
    "VOLUME_TAG",
    "RestorePointNotFoundError",
    "RestorePointRecord",
    "VolumeRecord",
    "add_to_catalog",
    "catalog_rows",
    "choose_restore_point",
    "find_restore_point",
    "manifest_stream",
    "read_manifests",
    "read_restore_point",
    "rebuild_repository_catalog",
    "restore_point_summaries",
    "write_restore_point",
]
