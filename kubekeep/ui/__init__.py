"""What Kubekeep shows in the Prefect UI, Prefect-free: run names, artifact keys, and the
restore-point index (the keyed table per location and the choices offered when a restore
asks which point to use). docs/ui.md describes how the UI renders them."""

from .index import RestorePointRow, human_bytes, index_rows, point_choice, point_from_choice, restore_point_rows
from .names import ARTIFACT_KEY_MAX, artifact_key, backup_run_name, point_label, restore_run_name

__all__ = [
    "ARTIFACT_KEY_MAX",
    "RestorePointRow",
    "artifact_key",
    "backup_run_name",
    "human_bytes",
    "index_rows",
    "point_choice",
    "point_from_choice",
    "point_label",
    "restore_point_rows",
    "restore_run_name",
]
