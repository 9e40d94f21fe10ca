"""The restore report: outcomes, counts, failure, rendering, change summaries without Secret values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kubekeep.restore import ObjectRef
from kubekeep.restore.policy import ConflictPolicy, NodePortConflicts, PolicyError, RestorePolicy
from kubekeep.restore.report import (
    Action,
    ObjectOutcome,
    PhaseReport,
    RestoreFailedError,
    RestoreReport,
    summarize_changes,
)

CM = ObjectRef("", "ConfigMap", "shop", "config", "v1")
WEB = ObjectRef("apps", "Deployment", "shop", "web", "v1")


def _report(*outcomes: ObjectOutcome, dry_run: bool = False) -> RestoreReport:
    return RestoreReport(dry_run=dry_run, policy=RestorePolicy().to_dict(), cluster="test", outcomes=list(outcomes))


def test_counts_and_failure() -> None:
    ok = _report(ObjectOutcome.of(CM, Action.CREATED, "created"), ObjectOutcome.of(WEB, Action.SKIPPED, "exists"),
                 ObjectOutcome.of(CM, Action.EXCLUDED, "owned"))
    assert not ok.failed and ok.status == "completed" and ok.counts == {"created": 1, "skipped": 1, "excluded": 1}
    ok.raise_for_failure()

    bad = _report(ObjectOutcome.of(CM, Action.CREATED), ObjectOutcome.of(WEB, Action.IMMUTABLE_FIELD, "selector"))
    assert bad.failed and bad.status == "completed with failures" and [o.name for o in bad.failures] == ["web"]
    with pytest.raises(RestoreFailedError, match="immutable-field: Deployment.apps shop/web: selector"):
        bad.raise_for_failure()

    stopped = _report(ObjectOutcome.of(CM, Action.CREATED))
    stopped.aborted = "tier 0 not Ready"
    assert stopped.failed and stopped.status == "failed (stopped)"
    dry = _report(ObjectOutcome.of(CM, Action.WOULD_CREATE), dry_run=True)
    assert not dry.failed and dry.status == "no problems found"


@pytest.mark.parametrize("action", [Action.CONFLICT, Action.IMMUTABLE_FIELD, Action.MISSING_STORAGE_CLASS,
                                    Action.MISSING_CRD, Action.NAMESPACE_TERMINATING, Action.FAILED,
                                    Action.NOT_ATTEMPTED, Action.NOT_CONVERTIBLE])
def test_problem_actions_fail_the_report(action: Action) -> None:
    assert _report(ObjectOutcome.of(CM, action, "why")).failed


def test_json_round_trip_and_lookups() -> None:
    report = _report(ObjectOutcome.of(CM, Action.UPDATED, "ssa", phase="00-resources", changes=("data.a",)),
                     ObjectOutcome.of(WEB, Action.CREATED, phase="01-tier-0", tier=0, ready=True))
    now = datetime.now(UTC)
    report.phases.append(PhaseReport("01-tier-0", "ready", 0, 1, now, now, now))
    report.finished_at = now
    data = json.loads(report.to_json())
    assert data["counts"] == {"created": 1, "updated": 1} and data["failed"] is False
    back = RestoreReport.from_dict(data)
    assert back.to_dict() == report.to_dict()
    assert back.outcome("Deployment.apps", "web", "shop").ready is True
    assert back.outcome("ConfigMap", "config", "shop").changes == ("data.a",)
    assert back.phase(0).name == "01-tier-0" and back.phase("01-tier-0").ready_at == now
    with pytest.raises(KeyError):
        back.outcome("ConfigMap", "nope", "shop")


def test_markdown_and_table_rows() -> None:
    report = _report(ObjectOutcome.of(CM, Action.UPDATED, "ssa", changes=('data.a: "1" -> "2"',)),
                     ObjectOutcome.of(WEB, Action.FAILED, "422 | invalid\nvalue"))
    text = report.markdown()
    assert text.startswith("# Restore: completed with failures")
    assert "| updated | 1 |" in text and "## Problems" in text and "422 \\| invalid value" in text
    assert 'data.a: "1" -> "2"' in text
    rows = report.table_rows()
    assert rows[1] == {"kind": "Deployment.apps", "namespace": "shop", "name": "web", "action": "failed",
                       "reason": "422 | invalid\nvalue", "phase": "", "tier": "", "changes": ""}


def test_changes_name_fields_and_short_values() -> None:
    before = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"labels": {"a": "1"}, "uid": "1"},
              "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a"}]}}, "paused": False},
              "status": {"readyReplicas": 2}}
    after = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"labels": {"a": "2"}, "uid": "2"},
             "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "b"}]}}, "minReadySeconds": 5},
             "status": {"readyReplicas": 0}}
    assert summarize_changes(before, after) == [
        "metadata.labels", "spec.minReadySeconds (added)", "spec.paused (removed)", "spec.replicas: 2 -> 3",
        "spec.template"]
    assert summarize_changes(before, before) == []


def test_secret_values_never_appear_in_changes() -> None:
    before = {"kind": "Secret", "data": {"password": "b2xk", "user": "YQ=="}, "type": "Opaque"}
    after = {"kind": "Secret", "data": {"password": "bmV3", "token": "dA=="}, "type": "kubernetes.io/basic-auth"}
    changes = summarize_changes(before, after)
    assert changes == ["data.password", "data.token (added)", "data.user (removed)", "type"]
    assert not any(v in " ".join(changes) for v in ("b2xk", "bmV3", "dA==", "YQ==", "Opaque", "basic-auth"))


def test_long_change_lists_are_capped() -> None:
    before = {"kind": "ConfigMap", "data": {f"k{i:02d}": "a" for i in range(30)}}
    after = {"kind": "ConfigMap", "data": {f"k{i:02d}": "b" for i in range(30)}}
    changes = summarize_changes(before, after, limit=5)
    assert len(changes) == 6 and changes[-1] == "... 25 more"


def test_policy_round_trip_and_errors() -> None:
    policy = RestorePolicy(existing=ConflictPolicy.UPDATE,
                           existing_by_kind={"PersistentVolumeClaim": ConflictPolicy.SKIP},
                           node_port_conflicts=NodePortConflicts.REASSIGN, ready_timeout=30)
    assert RestorePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert policy.for_ref(ObjectRef("", "PersistentVolumeClaim", "ns", "data")) is ConflictPolicy.SKIP
    assert policy.for_ref(CM) is ConflictPolicy.UPDATE
    with pytest.raises(PolicyError, match="unknown keys"):
        RestorePolicy.from_dict({"existing": "skip", "overwrite": True})
    with pytest.raises(PolicyError, match="'replace' is not a valid ConflictPolicy"):
        RestorePolicy.from_dict({"existing": "replace"})
    with pytest.raises(PolicyError, match="ready_timeout must be a positive number"):
        RestorePolicy.from_dict({"ready_timeout": 0})


def test_json_written_piece_by_piece_is_the_same_document() -> None:
    for outcomes in ((), (ObjectOutcome.of(CM, Action.UPDATED, "ssa", changes=("data.a",)),
                          ObjectOutcome.of(WEB, Action.FAILED, "boom", phase="01-tier-0", tier=0))):
        report = _report(*outcomes)
        assert json.loads("".join(report.json_chunks())) == json.loads(report.to_json())
