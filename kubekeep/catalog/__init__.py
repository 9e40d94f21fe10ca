"""Parquet catalog of restore points, stored in the backup location (docs/catalog-schema.md)."""

from .query import (
    DEFAULT_STATUSES,
    ObjectOccurrence,
    latest_restore_point,
    list_restore_points,
    list_restore_points_table,
    list_restores,
    restore_points_before,
    restore_points_containing,
    restore_points_containing_table,
    restore_points_filter,
)
from .rebuild import RebuildResult, RestorePointSummary, catalog_ids, rebuild_catalog
from .records import (
    CatalogRecordError,
    RestorePoint,
    RestorePointObject,
    RestorePointVolume,
    RestoreRecord,
)
from .schema import (
    SCHEMA_VERSION,
    TABLES,
    RestorePointStatus,
    RestoreStatus,
    TableName,
    VolumeMethod,
)
from .store import (
    CATALOG_PREFIX,
    Catalog,
    CatalogError,
    CatalogFormatError,
    CompactionResult,
    deduplicate,
)

__all__ = [
    "CATALOG_PREFIX",
    "DEFAULT_STATUSES",
    "SCHEMA_VERSION",
    "TABLES",
    "Catalog",
    "CatalogError",
    "CatalogFormatError",
    "CatalogRecordError",
    "CompactionResult",
    "ObjectOccurrence",
    "RebuildResult",
    "RestorePoint",
    "RestorePointObject",
    "RestorePointStatus",
    "RestorePointSummary",
    "RestorePointVolume",
    "RestoreRecord",
    "RestoreStatus",
    "TableName",
    "VolumeMethod",
    "catalog_ids",
    "deduplicate",
    "latest_restore_point",
    "list_restore_points",
    "list_restore_points_table",
    "list_restores",
    "rebuild_catalog",
    "restore_points_before",
    "restore_points_containing",
    "restore_points_containing_table",
    "restore_points_filter",
]
