"""Migration between clusters and Kubernetes versions (docs/migration.md): the plan, and the downtime.

The plan (:func:`plan_migration`) resolves a restore point against the target
cluster and changes nothing; a refused plan (:attr:`MigrationPlan.refused`)
stops a migration before its first write.
"""

from kubekeep.catalog import Downtime, DowntimeStage

from .downtime import CutoverStage, DowntimeClock
from .model import (
    ClassResolution,
    MigrationPlan,
    MigrationRefusedError,
    ObjectRow,
    PlanItem,
    Severity,
    StorageClassDecision,
    Topic,
    Verdict,
)
from .planner import (
    MigrationOptions,
    PlannedObject,
    Prepared,
    VolumeData,
    evaluate,
    plan_migration,
    plan_restore_point,
    prepare,
)
from .quantity import QuantityError, format_bytes, parse_quantity
from .target import (
    MIGRATION_ANNOTATION,
    IngressClassInfo,
    NodeInfo,
    StorageClassInfo,
    Taint,
    TargetFacts,
    collect_target_facts,
    read_storage_classes,
)

__all__ = [
    "MIGRATION_ANNOTATION",
    "ClassResolution",
    "CutoverStage",
    "Downtime",
    "DowntimeClock",
    "DowntimeStage",
    "IngressClassInfo",
    "MigrationOptions",
    "MigrationPlan",
    "MigrationRefusedError",
    "NodeInfo",
    "ObjectRow",
    "PlanItem",
    "PlannedObject",
    "Prepared",
    "QuantityError",
    "Severity",
    "StorageClassDecision",
    "StorageClassInfo",
    "Taint",
    "TargetFacts",
    "Topic",
    "Verdict",
    "VolumeData",
    "collect_target_facts",
    "evaluate",
    "format_bytes",
    "parse_quantity",
    "plan_migration",
    "plan_restore_point",
    "prepare",
    "read_storage_classes",
]
