from __future__ import annotations

import copy
import json
from typing import Any

from kubekeep.restore import PvcVolumeName, SanitizeOptions, sanitize_manifest, sanitize_manifests
from kubekeep.restore.sanitize import LAST_APPLIED, SERVER_METADATA

from .helpers import load_fixture_manifests, obj

SERVER_META = {
    "uid": "0b9c", "resourceVersion": "12345", "generation": 4, "creationTimestamp": "2024-05-01T10:00:00Z",
    "managedFields": [{"manager": "kubectl"}], "selfLink": "/api/v1/x", "deletionTimestamp": None,
    "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "gone"}],
}


def service(**spec: Any) -> dict[str, Any]:
    return obj("v1", "Service", "web", metadata=dict(SERVER_META), spec=spec, status={"loadBalancer": {}})


def test_server_metadata_and_status_are_dropped() -> None:
    clean = sanitize_manifest(obj("v1", "ConfigMap", "c", metadata=dict(SERVER_META), data={"a": "1"},
                                  status={"x": 1}))
    assert clean == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"},
                     "data": {"a": "1"}}


def test_owner_references_can_be_kept() -> None:
    clean = sanitize_manifest(obj("v1", "ConfigMap", "c", metadata=dict(SERVER_META)),
                              SanitizeOptions(keep_owner_references=True))
    assert clean["metadata"]["ownerReferences"][0]["name"] == "t"


def test_input_is_not_modified() -> None:
    original = service(clusterIP="10.0.0.7", ports=[{"port": 80, "nodePort": 30001}], type="NodePort")
    snapshot = copy.deepcopy(original)
    sanitize_manifest(original)
    assert original == snapshot


def test_service_cluster_ips_and_assigned_node_ports() -> None:
    last_applied = {"spec": {"type": "NodePort", "ports": [{"name": "fixed", "port": 443, "nodePort": 30443}]}}
    svc = service(
        type="LoadBalancer", clusterIP="10.0.0.7", clusterIPs=["10.0.0.7", "fd00::7"],
        ports=[{"name": "http", "port": 80, "nodePort": 31234}, {"name": "fixed", "port": 443, "nodePort": 30443}],
        healthCheckNodePort=32000, externalTrafficPolicy="Local",
    )
    svc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(last_applied), "team": "web"}
    clean = sanitize_manifest(svc)
    spec = clean["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
    assert spec["ports"] == [{"name": "http", "port": 80}, {"name": "fixed", "port": 443, "nodePort": 30443}]
    assert "healthCheckNodePort" not in spec
    assert clean["metadata"]["annotations"] == {"team": "web"}


def test_preserve_node_ports_and_last_applied() -> None:
    svc = service(type="NodePort", ports=[{"port": 80, "nodePort": 31234}])
    svc["metadata"]["annotations"] = {LAST_APPLIED: "{}"}
    clean = sanitize_manifest(svc, SanitizeOptions(preserve_node_ports=True, keep_last_applied=True))
    assert clean["spec"]["ports"] == [{"port": 80, "nodePort": 31234}]
    assert LAST_APPLIED in clean["metadata"]["annotations"]


def test_headless_service_stays_headless() -> None:
    clean = sanitize_manifest(service(clusterIP="None", clusterIPs=["None"], ports=[{"port": 5432}]))
    assert clean["spec"]["clusterIP"] == "None" and clean["spec"]["clusterIPs"] == ["None"]


def test_pv_claim_ref_keeps_name_only() -> None:
    pv = obj("v1", "PersistentVolume", "pv-1", None, spec={"claimRef": {
        "kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data", "uid": "u", "resourceVersion": "9",
        "apiVersion": "v1"}}, metadata={"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}})
    clean = sanitize_manifest(pv)
    assert clean["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data",
                                         "apiVersion": "v1"}
    assert "annotations" not in clean["metadata"]


def _pvc(volume: str) -> dict[str, Any]:
    return obj("v1", "PersistentVolumeClaim", "data", spec={"volumeName": volume, "storageClassName": "fast"},
               metadata={"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "volume.kubernetes.io/selected-node": "node-3", "keep": "me"}})


def test_pvc_volume_name_auto() -> None:
    pv = obj("v1", "PersistentVolume", "pv-static", None, spec={})
    kept, dropped, _ = sanitize_manifests([_pvc("pv-static"), _pvc("pvc-1234-dynamic"), pv])
    assert kept["spec"]["volumeName"] == "pv-static"
    assert kept["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes", "keep": "me"}
    assert "volumeName" not in dropped["spec"]
    assert dropped["metadata"]["annotations"] == {"keep": "me"}


def test_pvc_volume_name_modes() -> None:
    keep = sanitize_manifest(_pvc("x"), SanitizeOptions(pvc_volume_name=PvcVolumeName.KEEP))
    drop = sanitize_manifest(_pvc("x"), SanitizeOptions(pvc_volume_name=PvcVolumeName.DROP), restored_pvs=["x"])
    assert keep["spec"]["volumeName"] == "x" and "volumeName" not in drop["spec"]


def test_pod_node_name_priority_and_ephemeral_containers() -> None:
    pod = obj("v1", "Pod", "p", spec={
        "nodeName": "node-1", "priorityClassName": "high", "priority": 1000,
        "containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [{"name": "debug", "image": "y"}],
    })
    assert sanitize_manifest(pod)["spec"] == {"priorityClassName": "high", "containers": [{"name": "a", "image": "x"}]}


def test_job_generated_selector() -> None:
    labels = {"controller-uid": "u1", "batch.kubernetes.io/controller-uid": "u1", "job-name": "j"}
    job = obj("batch/v1", "Job", "j", spec={"selector": {"matchLabels": {"controller-uid": "u1"}},
                                            "template": {"metadata": {"labels": dict(labels)}, "spec": {}}})
    clean = sanitize_manifest(job)
    assert "selector" not in clean["spec"]
    assert clean["spec"]["template"]["metadata"]["labels"] == {"job-name": "j"}
    job["spec"]["manualSelector"] = True
    assert sanitize_manifest(job)["spec"]["selector"] == {"matchLabels": {"controller-uid": "u1"}}


def test_real_world_examples() -> None:
    manifests = load_fixture_manifests()
    for m in manifests:
        m["metadata"].update(copy.deepcopy(SERVER_META))
        m["status"] = {"phase": "Running"}
    cleaned = sanitize_manifests(manifests)
    assert len(cleaned) == len(manifests)
    for m in cleaned:
        assert not set(SERVER_METADATA) & set(m["metadata"]) and "status" not in m
        if m["kind"] == "Service" and m["spec"].get("clusterIP") is not None:
            assert m["spec"]["clusterIP"] == "None"
    # the static PV example keeps its binding because the PV is restored too
    pvc = next(m for m in cleaned if m["kind"] == "PersistentVolumeClaim" and m["metadata"]["name"] == "nfs")
    assert pvc["spec"]["volumeName"] == "nfs"
