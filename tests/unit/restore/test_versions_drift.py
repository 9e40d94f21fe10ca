"""API versions that differ between the test bed's two Kubernetes versions (docs/testbed.md): converted both ways."""

from __future__ import annotations

from typing import Any

from kubekeep.restore import VersionVerdict, convert_manifest

NEW = {"storage.k8s.io": {"VolumeAttributesClass": ["v1"]},
       "resource.k8s.io": {k: ["v1"] for k in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate",
                                               "ResourceSlice")}}
OLD_BETAS = {"storage.k8s.io": {"VolumeAttributesClass": ["v1beta1"]},
             "resource.k8s.io": {k: ["v1beta2", "v1beta1"] for k in NEW["resource.k8s.io"]}}
OLD_PLAIN: dict[str, dict[str, list[str]]] = {"storage.k8s.io": {"StorageClass": ["v1"]}}


def _obj(api_version: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "ns"}, **fields}


def test_volume_attributes_class_goes_down_to_v1beta1_and_up_to_v1() -> None:
    vac = _obj("storage.k8s.io/v1", "VolumeAttributesClass", driverName="d", parameters={"iops": "9"})
    down = convert_manifest(vac, OLD_BETAS)
    assert down.decision.verdict is VersionVerdict.CONVERT and down.manifest is not None
    assert down.manifest == {**vac, "apiVersion": "storage.k8s.io/v1beta1"}
    up = convert_manifest(down.manifest, NEW)
    assert up.manifest == vac
    refused = convert_manifest(vac, OLD_PLAIN)
    assert refused.decision.verdict is VersionVerdict.NOT_CONVERTIBLE
    assert "neither is storage.k8s.io/v1beta1" in refused.decision.reason


def test_dra_objects_go_down_to_v1beta2_with_the_same_fields() -> None:
    claim = _obj("resource.k8s.io/v1", "ResourceClaim", spec={"devices": {"requests": [
        {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", "count": 2}}]}})
    down = convert_manifest(claim, OLD_BETAS)
    assert down.manifest == {**claim, "apiVersion": "resource.k8s.io/v1beta2"}  # v1beta2 first: the same shape
    assert convert_manifest(down.manifest, NEW).manifest == claim


def test_v1beta1_dra_requests_and_devices_take_the_v1_shape() -> None:
    template = _obj("resource.k8s.io/v1beta1", "ResourceClaimTemplate", spec={"spec": {"devices": {"requests": [
        {"name": "gpu", "deviceClassName": "gpu.example.com", "allocationMode": "ExactCount", "count": 1},
        {"name": "any", "firstAvailable": [{"name": "a", "deviceClassName": "c"}]}]}}})
    up = convert_manifest(template, NEW)
    assert up.decision.verdict is VersionVerdict.CONVERT and up.manifest is not None
    requests = up.manifest["spec"]["spec"]["devices"]["requests"]
    assert requests[0] == {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com",
                                                      "allocationMode": "ExactCount", "count": 1}}
    assert requests[1] == {"name": "any", "firstAvailable": [{"name": "a", "deviceClassName": "c"}]}
    assert "deviceClassName" in template["spec"]["spec"]["devices"]["requests"][0]  # the input is untouched
    slice_ = _obj("resource.k8s.io/v1beta1", "ResourceSlice", spec={"driver": "d", "devices": [
        {"name": "gpu-0", "basic": {"attributes": {"model": {"string": "a100"}},
                                    "capacity": {"mem": {"value": "40Gi"}}}}]})
    flat = convert_manifest(slice_, NEW).manifest
    assert flat is not None and flat["spec"]["devices"][0] == {
        "name": "gpu-0", "attributes": {"model": {"string": "a100"}}, "capacity": {"mem": {"value": "40Gi"}}}
    broken = _obj("resource.k8s.io/v1beta1", "ResourceClaim", spec={"devices": {"requests": [
        {"name": "x", "deviceClassName": "c", "firstAvailable": [{"name": "a", "deviceClassName": "c"}]}]}})
    assert convert_manifest(broken, NEW).decision.verdict is VersionVerdict.NOT_CONVERTIBLE
