"""A restore's outcomes spooled to a file (issue 15) make the same report as outcomes held in memory, and the
report holds counts and the first failures, not every outcome."""

from __future__ import annotations

import gc
import json
import stat
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubekeep.catalog.records import restores_table
from kubekeep.restore import ObjectRef
from kubekeep.restore import report as report_module
from kubekeep.restore.report import (
    Action,
    ObjectOutcome,
    Outcomes,
    PhaseReport,
    RestoreReport,
    catalog_record,
)

ACTIONS = [Action.CREATED, Action.UPDATED, Action.FAILED, Action.SKIPPED, Action.CONFLICT, Action.EXCLUDED]


def _outcomes(n: int) -> list[ObjectOutcome]:
    out = []
    for i in range(n):
        kind = "PersistentVolumeClaim" if i % 9 == 0 else "ConfigMap"
        action = ACTIONS[i % len(ACTIONS)]
        out.append(ObjectOutcome.of(ObjectRef("", kind, f"ns-{i % 4}", f"o-{i:05d}", "v1"), action, f"why {i}",
                                    phase="00-config", tier=None if i % 2 else i % 3,
                                    changes=(f"data.k{i}",) if action is Action.UPDATED else ()))
    return out


def _report(outcomes: Outcomes, items: list[ObjectOutcome]) -> RestoreReport:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    for o in items:
        outcomes.append(o)
    outcomes.set_ready(3, True)
    outcomes.set_ready(9, False)
    return RestoreReport(dry_run=False, cluster="c", policy={"existing": "skip"}, outcomes=outcomes, started_at=now,
                         finished_at=now, phases=[PhaseReport("00-config", "none", None, len(items), now, now)])


@pytest.mark.parametrize("kept", [1000, 3])  # every failure kept in memory, or only the first 3
def test_a_spooled_report_is_the_report_held_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       kept: int) -> None:
    monkeypatch.setattr(report_module, "KEPT_FAILURES", kept)
    items = _outcomes(60)
    memory = _report(Outcomes(), items)
    spooled = _report(Outcomes.spooled(tmp_path / "outcomes.jsonl"), items)
    assert memory.outcomes[3].ready is True and memory.outcomes[9].ready is False
    for report in (spooled, None):
        if report is None:  # sealed (readiness written in) and read back, as the record task does
            spooled.outcomes.seal()
            assert stat.S_IMODE((tmp_path / "outcomes.jsonl").stat().st_mode) == 0o600
            report = RestoreReport.from_dict(spooled.to_dict(outcomes=False))
            report.outcomes = Outcomes.reopen(tmp_path / "outcomes.jsonl")
        assert list(report.outcomes) == list(memory.outcomes)
        assert report.counts == memory.counts and report.failed and report.failures == memory.failures
        assert json.loads("".join(report.json_chunks())) == json.loads(memory.to_json())
        assert report.markdown(objects=True, max_problems=5) == memory.markdown(objects=True, max_problems=5)
        assert report.failure_summary(4) == memory.failure_summary(4)
        assert report.table_rows() == memory.table_rows()
        assert report.table_rows(25) == memory.table_rows(25) and report.first_outcomes(25) == \
            memory.first_outcomes(25)
        assert report.outcomes.namespaces == ["ns-0", "ns-1", "ns-2", "ns-3"]
        assert [o for _, o in report.outcomes.claims()] == [o for o in memory.outcomes
                                                              if o.kind == "PersistentVolumeClaim"]
        a = restores_table([catalog_record(report, restore_id="r-1", restore_point_id="p-1", target_namespaces=[])])
        b = restores_table([catalog_record(memory, restore_id="r-1", restore_point_id="p-1", target_namespaces=[])])
        assert a.equals(b) and len(a.column("outcomes")[0]) == 60
    first = report_module.RestoreReport.from_dict(json.loads(memory.to_json()))
    assert list(first.outcomes) == list(memory.outcomes)


def test_the_catalog_table_keeps_restores_without_outcomes() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    report = RestoreReport(dry_run=True, cluster="c", outcomes=_outcomes(5), started_at=now, finished_at=now)
    with_rows = catalog_record(report, restore_id="r-1", restore_point_id="p-1", target_namespaces=[])
    from dataclasses import replace
    table = restores_table([with_rows, replace(with_rows, id="r-2", outcomes=None), with_rows], batch_rows=2)
    assert [None if v is None else len(v) for v in table.column("outcomes").to_pylist()] == [5, None, 5]


def test_a_spooled_log_holds_counts_not_outcomes(tmp_path: Path) -> None:
    def growth(log: Outcomes, n: int) -> int:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            log.append(ObjectOutcome.of(ObjectRef("", "ConfigMap", f"ns-{i // 100}", f"obj-{i:06d}", "v1"),
                                        Action.CREATED, "", phase="00-config"))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return grown

    n = 20_000
    held = growth(Outcomes(), n)
    spooled = growth(Outcomes.spooled(tmp_path / "o.jsonl"), n)
    assert held > 4 * 2**20  # every outcome (five strings each) in memory
    assert spooled < 512 * 1024, f"{spooled} B for {n} spooled outcomes"  # counts, namespaces, a file buffer
