"""A restore's report as the catalog keeps it: every object's, volume's and phase's outcome, round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kubekeep.catalog import Catalog, get_restore, list_restores
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore import ObjectRef
from kubekeep.restore.report import (
    Action,
    ObjectOutcome,
    PhaseReport,
    RestoreReport,
    VolumeOutcome,
    VolumeStatus,
    catalog_record,
    report_from_record,
)


def test_catalog_keeps_every_outcome_and_reads_it_back(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    report = RestoreReport(
        dry_run=False, cluster="kind-test", started_at=now, finished_at=now,
        outcomes=[ObjectOutcome.of(ObjectRef("", "ConfigMap", "shop", "c", "v1"), Action.CREATED, "created",
                                   phase="p1"),
                  ObjectOutcome.of(ObjectRef("apps", "StatefulSet", "shop", "db", "v1"), Action.NOT_ATTEMPTED,
                                   "not created: it mounts PVC shop/data-db-0", phase="tier-0", tier=0,
                                   changes=("spec.replicas",), ready=False)],
        phases=[PhaseReport("p1", "none", None, 1, now, now, None, None)],
        aborted="volume data of PVC shop/data-db-0 failed: boom",
        volumes=[VolumeOutcome("shop", "data-db-0", VolumeStatus.FAILED, source="src/data-db-0", error="boom")])
    catalog = Catalog(FilesystemStorage(tmp_path / "loc", create=True), cache_dir=tmp_path / "cache")
    catalog.add_restore(catalog_record(report, restore_id="r-1", restore_point_id="shop-1",
                                       target_namespaces=["shop"]))
    (listed,) = list_restores(catalog)
    assert listed.status == "failed" and listed.failed == 1 and listed.outcomes is None  # details not read
    record = get_restore(catalog, "r-1")
    assert record is not None and len(record.outcomes or ()) == 2
    again = report_from_record(record)
    assert again.outcomes == report.outcomes and again.volumes == report.volumes
    assert again.aborted == report.aborted and [p.name for p in again.phases] == ["p1"]
    assert get_restore(catalog, "r-2") is None
    assert list_restores(catalog, app="shop") == []  # no restore point row for app "shop" in this catalog
