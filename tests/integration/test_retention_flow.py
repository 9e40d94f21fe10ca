"""The retention flow with a ProtectionPolicy block, against a real Prefect API and a real repository: a plan
over the approval share pauses the run for the typed approval form; a refusal deletes nothing, an
approval deletes exactly what the plan dropped; the plan and the report are artifacts with stable keys."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from blocks import EncryptionKey, LocationProfile, ProtectionPolicy
from flows.retention import RetentionOutcome, retention
from kubekeep.catalog import Catalog, list_restore_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from tests.integration.retention_points import CHUNKER, PACK_SIZE, WrittenPoint, write_point
from tests.plugins.prefect import flow_in_thread

PASSWORD = "flow-pass"
START = datetime(2026, 4, 1, 1, tzinfo=UTC)


def _paused_run(name_part: str, thread: threading.Thread, result: dict[str, Any], timeout: float = 180) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert thread.is_alive(), f"the run ended without pausing: {result}"
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            for run in runs:
                if name_part in run.name:
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused run named like {name_part!r}")


def _in_thread(run_flow: Any = retention, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a flow (the retention flow, or one that runs it as a subflow) in a thread, to pause and resume it."""
    return flow_in_thread(run_flow, **kwargs)


def test_a_plan_over_the_approval_share_pauses_for_the_form_refused_then_approved(
        prefect_api: str, tmp_path: Path) -> None:
    from prefect.artifacts import Artifact
    from prefect.flow_runs import resume_flow_run

    name = f"rf-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "location"
    repo = Repository.init(FilesystemStorage(path, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    points: list[WrittenPoint] = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n),
                                              seed=n, policy=name) for n in range(4)]
    # a point of no policy: a policy's retention never touches it
    manual = write_point(repo, catalog, tmp_path, app="shop", started=START - timedelta(days=30), seed=99, policy=None)
    repo.close()
    ProtectionPolicy(name=name, apps={"names": ["shop"]}, schedule={"cron": "0 3 * * *", "timezone": "Asia/Tokyo"},
                     retention={"keep_last": 1}, location="unused").save(name)
    location = LocationProfile(kind="filesystem", path=str(path))
    key = EncryptionKey(passphrase=PASSWORD, cheap_kdf=True)

    def ids() -> set[str]:
        with key.catalog(location, cache_dir=tmp_path / f"c-{time.monotonic_ns()}") as cat:
            return {p.id for p in list_restore_points(cat, statuses=None)}

    every = {p.id for p in points} | {manual.id}
    for answer, comment in ((False, "not today"), (True, "checked with the app team")):
        thread, result = _in_thread(location=location, encryption_key=key, policy=name, on_approval="pause",
                                    approval_timeout=300)
        run = _paused_run(f"retention {name}", thread, result)
        plan_rows = Artifact.get(f"retention-plan-policy-{name}")
        assert plan_rows is not None and points[0].id in str(plan_rows.data)
        assert ids() == every  # nothing deleted while it waits
        resume_flow_run(run.id, run_input={"approve": answer, "reason": comment})
        thread.join(timeout=300)
        assert not thread.is_alive()
        assert "error" not in result, result.get("error")
        outcome: RetentionOutcome = result["outcome"]
        if not answer:
            assert outcome.approval == "refused" and outcome.expiry is None
            assert ids() == every
    assert outcome.approval == "approved in the UI" and outcome.expiry is not None
    assert sorted(outcome.expiry.deleted) == sorted(p.id for p in points[:3])
    assert ids() == {points[3].id, manual.id}
    assert outcome.prune is not None and outcome.prune.bytes_freed > 0
    report = Artifact.get(f"retention-report-policy-{name}")
    assert report is not None and "approved in the UI" in str(report.data)
    # the restore-point index is refreshed without the expired points
    index = Artifact.get("restore-points-shop")
    assert index is not None
    rows = json.loads(index.data) if isinstance(index.data, str) else index.data
    assert {r["id"] for r in rows} == {points[3].id, manual.id}, rows


def test_retention_compacts_a_catalog_of_many_small_files(prefect_api: str, tmp_path: Path) -> None:
    """One small file per restore point and table piles up; the retention run merges them (reads then open a
    few parts), keeps every row readable, and says so in its report."""
    from prefect.artifacts import Artifact

    from kubekeep.catalog import TableName
    from kubekeep.retention import RetentionRules
    from tasks.retention import COMPACT_MIN_FILES
    from tests.unit.catalog.factories import make_objects, make_point, make_volumes

    path = tmp_path / "location"
    repo = Repository.init(FilesystemStorage(path, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    shop = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n), seed=n, policy=None)
            for n in range(2)]
    blog = [f"blog-{n:03d}" for n in range(COMPACT_MIN_FILES + 3)]  # another app's points: catalog rows only
    for n, point_id in enumerate(blog):
        catalog.add_restore_point(make_point(point_id, app="blog", hours=n), make_objects(point_id),
                                  make_volumes(point_id))
    before = catalog.small_files(TableName.RESTORE_POINTS)
    assert before == len(blog) + len(shop)
    repo.close()
    location = LocationProfile(kind="filesystem", path=str(path))
    key = EncryptionKey(passphrase=PASSWORD, cheap_kdf=True)

    outcome = retention(location=location, encryption_key=key, rules=RetentionRules(keep_last=5), app="shop",
                        approve=True)

    assert outcome.expiry is not None and outcome.expiry.deleted == []
    assert outcome.catalog is not None and outcome.catalog.files_merged >= 3 * len(blog)
    assert {"restore_points", "restore_point_objects", "restore_point_volumes"} <= set(outcome.catalog.tables)
    with key.catalog(location, cache_dir=tmp_path / "fresh") as fresh:
        assert fresh.small_files(TableName.RESTORE_POINTS) == 1  # one part
        listed = {p.id for p in list_restore_points(fresh, statuses=None)}
    assert listed == set(blog) | {p.id for p in shop}
    report = Artifact.get("retention-report-app-shop")
    assert report is not None and "catalog compacted" in str(report.data)
    from flows.cli.retention import outcome_dict

    assert outcome_dict(outcome)["catalog_compaction"]["files_merged"] == outcome.catalog.files_merged
