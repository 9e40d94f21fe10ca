"""Pure parts of quiesce and the CSI path: selectors, names, the mover Job manifest."""

from __future__ import annotations

import pytest

from kubekeep.backup.csi import MoverSpec, VolumeMethod, _larger, mover_job_manifest, temporary_names
from kubekeep.backup.quiesce import QuiesceError, WorkloadRef, label_selector_string


def test_label_selector_string_covers_every_operator() -> None:
    sel = {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["db", "cache"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "owner", "operator": "Exists"}, {"key": "legacy", "operator": "DoesNotExist"}]}
    assert label_selector_string(sel) == "a=1,b=2,tier in (db,cache),env notin (dev),owner,!legacy"
    with pytest.raises(QuiesceError, match="unsupported"):
        label_selector_string({"matchExpressions": [{"key": "k", "operator": "Gt"}]})


def test_only_scalable_kinds() -> None:
    with pytest.raises(QuiesceError, match="cannot quiesce a DaemonSet"):
        WorkloadRef("DaemonSet", "ns", "x")


def test_temporary_names_are_dns_labels() -> None:
    names = temporary_names("Data_Volume-" + "x" * 80, "flow-run/3f2a9c1b-77aa-4b")
    assert all(len(n) <= 63 for n in names)
    assert all(n == n.lower() and n[0].isalnum() and n[-1].isalnum() for n in names)
    snap, clone, job = names
    assert snap.endswith("-snap") and clone.endswith("-src") and job.endswith("-mover")


def test_mover_job_manifest_mounts_clone_read_only_and_runs_our_entrypoint() -> None:
    mover = MoverSpec(image="ghcr.io/kubekeep/kubekeep:0.1", args=("export", "--pvc", "shop/data"),
                      env={"KUBEKEEP_REPO": "s3://bucket"}, env_from_secrets=("repo-creds",),
                      service_account="kubekeep-mover", security_context={"runAsUser": 0})
    job = mover_job_manifest("shop", "kk-data-r1-mover", "kk-data-r1-src", mover, labels={"run": "r1"},
                             active_deadline_seconds=600)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["python", "-m", "kubekeep.mover"]
    assert c["args"] == ["export", "--pvc", "shop/data"]
    assert c["env"] == [{"name": "KUBEKEEP_REPO", "value": "s3://bucket"}]
    assert c["envFrom"] == [{"secretRef": {"name": "repo-creds"}}]
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "kk-data-r1-src",
                                                                         "readOnly": True}}]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "kubekeep-mover"
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 600
    assert job["metadata"]["labels"] == {"run": "r1"} == spec["template"]["metadata"]["labels"]


def test_volume_method_strings() -> None:
    assert str(VolumeMethod("direct", path="/x")) == "direct"
    assert str(VolumeMethod("csi-snapshot")) == "csi-snapshot"
    assert str(VolumeMethod("unsupported", "PVC a/b is not bound")) == "unsupported: PVC a/b is not bound"


def test_clone_size_is_the_larger_quantity() -> None:
    assert _larger("2Gi", "1Gi") == "2Gi"
    assert _larger("1000M", "1Gi") == "1Gi"
    assert _larger(None, "1Gi") == "1Gi"
