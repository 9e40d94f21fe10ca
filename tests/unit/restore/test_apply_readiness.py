"""Readiness rules per kind: pure functions of the object the API serves."""

from __future__ import annotations

from typing import Any

import pytest

from kubekeep.restore.readiness import readiness_of


def _obj(api_version: str, kind: str, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
         generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": generation},
            "spec": spec or {}, "status": status or {}}


def _cond(type_: str, status: str = "True", **extra: str) -> dict[str, str]:
    return {"type": type_, "status": status, **extra}


@pytest.mark.parametrize(("obj", "ready"), [
    (_obj("apps/v1", "Deployment", {"replicas": 2},
          {"observedGeneration": 1, "availableReplicas": 2, "updatedReplicas": 2}), True),
    (_obj("apps/v1", "Deployment", {"replicas": 2},
          {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 2}), False),
    # available replicas of the old template do not count before the new generation is observed
    (_obj("apps/v1", "Deployment", {"replicas": 2},
          {"observedGeneration": 1, "availableReplicas": 2, "updatedReplicas": 2}, generation=2), False),
    (_obj("apps/v1", "Deployment", {}, {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 1}),
     True),  # replicas defaults to 1
    (_obj("apps/v1", "Deployment", {"replicas": 0}, {"observedGeneration": 1}), True),
    (_obj("apps/v1", "StatefulSet", {"replicas": 3}, {"observedGeneration": 1, "readyReplicas": 3}), True),
    (_obj("apps/v1", "StatefulSet", {"replicas": 3}, {"observedGeneration": 1, "readyReplicas": 2}), False),
    (_obj("apps/v1", "StatefulSet", {"replicas": 1}, {}), False),
    (_obj("apps/v1", "DaemonSet", {}, {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 3}),
     True),
    (_obj("apps/v1", "DaemonSet", {}, {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 2}),
     False),
    (_obj("apps/v1", "ReplicaSet", {"replicas": 2}, {"observedGeneration": 1, "readyReplicas": 2}), True),
    (_obj("v1", "ReplicationController", {"replicas": 2}, {"observedGeneration": 1, "readyReplicas": 1}), False),
    (_obj("batch/v1", "Job", {}, {"conditions": [_cond("Complete")]}), True),
    (_obj("batch/v1", "Job", {}, {"succeeded": 0}), False),
    (_obj("batch/v1", "Job", {"suspend": True}, {}), True),
    (_obj("batch/v1", "CronJob"), True),
    (_obj("v1", "Pod", {}, {"phase": "Running", "conditions": [_cond("Ready")]}), True),
    (_obj("v1", "Pod", {}, {"phase": "Running", "conditions": [_cond("Ready", "False")]}), False),
    (_obj("v1", "Pod", {}, {"phase": "Succeeded"}), True),
    (_obj("v1", "PersistentVolumeClaim", {}, {"phase": "Bound"}), True),
    (_obj("v1", "PersistentVolumeClaim", {}, {"phase": "Pending"}), False),
    (_obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", {}, {"conditions": [_cond("Established")]}), True),
    (_obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", {}, {}), False),
    (_obj("v1", "Namespace", {}, {"phase": "Active"}), True),
    (_obj("example.com/v1", "Database", {}, {"conditions": [_cond("Ready", "False")]}), False),
    (_obj("example.com/v1", "Database", {}, {"conditions": [_cond("Ready")]}), True),
    (_obj("v1", "ConfigMap"), True),
])
def test_readiness_per_kind(obj: dict[str, Any], ready: bool) -> None:
    assert readiness_of(obj).ready is ready


def test_waiting_cannot_help_is_reported_as_failed() -> None:
    job = readiness_of(_obj("batch/v1", "Job", {}, {"conditions": [
        _cond("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")]}))
    assert not job.ready and job.failed and "BackoffLimitExceeded" in job.detail
    stalled = readiness_of(_obj("apps/v1", "Deployment", {"replicas": 1}, {"observedGeneration": 1, "conditions": [
        _cond("Progressing", "False", reason="ProgressDeadlineExceeded", message="web has timed out")]}))
    assert stalled.failed and "timed out" in stalled.detail
    assert readiness_of(_obj("v1", "Pod", {}, {"phase": "Failed"})).failed
    assert readiness_of(_obj("v1", "Namespace", {}, {"phase": "Terminating"})).failed


def test_details_name_what_is_missing() -> None:
    assert readiness_of(None).detail == "not found"
    deployment = _obj("apps/v1", "Deployment", {"replicas": 3},
                      {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 3})
    assert readiness_of(deployment).detail == "1/3 available, 3/3 updated"
    stale = _obj("apps/v1", "StatefulSet", {"replicas": 1}, {"observedGeneration": 1, "readyReplicas": 1}, 2)
    assert "generation 2" in readiness_of(stale).detail
    legacy = _obj("extensions/v1beta1", "Deployment", {"replicas": 1},
                  {"observedGeneration": 1, "availableReplicas": 0, "updatedReplicas": 0})
    assert readiness_of(legacy).detail.startswith("0/1 available")
