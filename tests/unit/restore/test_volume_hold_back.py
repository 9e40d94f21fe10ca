"""Volume data that failed or was not verified holds back the workloads that mount it (pure parts)."""

from __future__ import annotations

from typing import Any

from kubekeep.manifest import mounts_claim
from kubekeep.restore import order_manifests
from kubekeep.restore.apply import held_back, not_attempted
from kubekeep.restore.plan import RestorePlan
from kubekeep.restore.report import Action, RestoreReport, VolumeOutcome, VolumeStatus


def _pod_spec(*claims: str) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]}


def _deployment(name: str, *claims: str, ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {}, "template": {"spec": _pod_spec(*claims)}}}


def _statefulset(name: str, template: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"template": {"spec": _pod_spec()}, "volumeClaimTemplates": [{"metadata": {"name": template}}]}}


def test_mounts_claim_sees_pod_volumes_and_claim_templates() -> None:
    assert mounts_claim(_deployment("web", "uploads"), "shop", "uploads")
    assert not mounts_claim(_deployment("web", "uploads"), "other", "uploads")
    assert not mounts_claim(_deployment("web", "uploads"), "shop", "uploads-2")
    db = _statefulset("db", "data")
    assert mounts_claim(db, "shop", "data-db-0") and mounts_claim(db, "shop", "data-db-12")
    assert not mounts_claim(db, "shop", "data-db-x") and not mounts_claim(db, "shop", "data-dbx-0")
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "shop"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": _pod_spec("uploads")}}}}}
    assert mounts_claim(cron, "shop", "uploads")
    assert not mounts_claim({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "uploads",
                                                                                   "namespace": "shop"}},
                            "shop", "uploads")


def test_held_back_names_only_objects_on_unusable_claims() -> None:
    manifests = [_statefulset("db", "data"), _deployment("web"), _deployment("files", "uploads")]
    (phase,) = order_manifests(manifests)
    failed = VolumeOutcome("shop", "data-db-0", VolumeStatus.FAILED, error="IntegrityError: authentication failed")
    unverified = VolumeOutcome("shop", "uploads", VolumeStatus.UNVERIFIED)
    good = VolumeOutcome("shop", "uploads", VolumeStatus.VERIFIED)
    held = held_back(phase, [failed, good])
    assert {r.name: v.pvc for r, v in held.items()} == {"db": "shop/data-db-0"}
    assert {r.name for r in held_back(phase, [failed, unverified])} == {"db", "files"}
    assert held_back(phase, [good]) == {}
    assert "not verified" in unverified.why_unusable() and "authentication failed" in failed.why_unusable()


def test_not_attempted_lists_every_object_with_the_reason() -> None:
    plan = RestorePlan(order_manifests([_statefulset("db", "data"), _deployment("web")]), [], [])
    outcomes = not_attempted(plan, "volume data of PVC shop/data-db-0 failed")
    assert {o.name for o in outcomes} == {"db", "web"}
    assert all(o.action is Action.NOT_ATTEMPTED and "data-db-0" in o.reason for o in outcomes)


def test_volumes_in_the_report_round_trip_and_count_as_failure() -> None:
    report = RestoreReport(dry_run=False, volumes=[VolumeOutcome("shop", "data-db-0", VolumeStatus.FAILED,
                                                                 error="boom")])
    assert report.failed and "volume shop/data-db-0: failed: boom" in report.failure_summary()
    assert "| shop/data-db-0 | failed |" in report.markdown()
    again = RestoreReport.from_dict(report.to_dict())
    assert again.volumes == report.volumes and again.to_dict()["volumes"][0]["pvc"] == "shop/data-db-0"
    assert not RestoreReport(dry_run=False, volumes=[VolumeOutcome("s", "u", VolumeStatus.UNVERIFIED)]).failed
