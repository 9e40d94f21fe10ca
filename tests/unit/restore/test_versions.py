from __future__ import annotations

from typing import Any

from kubekeep.restore import VersionVerdict, convert_manifest, convert_manifests, decide_version

from .helpers import MODERN_SERVED, load_fixture_manifests, obj

TEMPLATE = {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


def convert(m: dict[str, Any]) -> tuple[VersionVerdict, dict[str, Any] | None, str, tuple[str, ...]]:
    result = convert_manifest(m, MODERN_SERVED)
    return result.decision.verdict, result.manifest, result.decision.reason, result.notes


def test_served_is_untouched() -> None:
    m = obj("apps/v1", "Deployment", "web", spec={})
    result = convert_manifest(m, MODERN_SERVED)
    assert result.decision.verdict is VersionVerdict.SERVED and result.manifest is m


def test_old_deployment_gets_selector_from_template() -> None:
    for api_version in ("extensions/v1beta1", "apps/v1beta1", "apps/v1beta2"):
        m = obj(api_version, "Deployment", "web", spec={"template": TEMPLATE, "rollbackTo": {"revision": 2}})
        verdict, out, reason, notes = convert(m)
        assert verdict is VersionVerdict.CONVERT and out is not None
        assert out["apiVersion"] == "apps/v1" and "converted to apps/v1" in reason
        assert out["spec"]["selector"] == {"matchLabels": {"app": "web", "tier": "fe"}}
        assert "rollbackTo" not in out["spec"] and "rollbackTo" in m["spec"]  # the input is not changed
        assert any("selector" in n for n in notes)


def test_existing_selector_is_kept_and_old_defaults_are_made_explicit() -> None:
    selector = {"matchLabels": {"app": "web"}}
    ds = obj("extensions/v1beta1", "DaemonSet", "agent", spec={"template": TEMPLATE, "selector": selector,
                                                                "templateGeneration": 3})
    _, out, _, _ = convert(ds)
    assert out is not None and out["spec"]["selector"] == selector
    assert out["spec"]["updateStrategy"] == {"type": "OnDelete"} and "templateGeneration" not in out["spec"]
    sts = obj("apps/v1beta1", "StatefulSet", "db", spec={"template": TEMPLATE, "serviceName": "db"})
    _, out, _, _ = convert(sts)
    assert out is not None and out["spec"]["updateStrategy"] == {"type": "OnDelete"}
    rs = obj("extensions/v1beta1", "ReplicaSet", "r", spec={"template": TEMPLATE})
    assert convert(rs)[1]["apiVersion"] == "apps/v1"  # type: ignore[index]


def test_workload_without_labels_is_not_convertible() -> None:
    verdict, out, reason, _ = convert(obj("extensions/v1beta1", "Deployment", "web", spec={"template": {}}))
    assert verdict is VersionVerdict.NOT_CONVERTIBLE and out is None
    assert "no labels" in reason


def test_ingress_backend_shape() -> None:
    ingress = obj("networking.k8s.io/v1beta1", "Ingress", "web", spec={
        "backend": {"serviceName": "default", "servicePort": 80},
        "rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}},
            {"path": "/api", "pathType": "Prefix", "backend": {"serviceName": "api", "servicePort": 8080}},
        ]}}],
    })
    verdict, out, _, _ = convert(ingress)
    assert verdict is VersionVerdict.CONVERT and out is not None and out["apiVersion"] == "networking.k8s.io/v1"
    assert out["spec"]["defaultBackend"] == {"service": {"name": "default", "port": {"number": 80}}}
    paths = out["spec"]["rules"][0]["http"]["paths"]
    assert paths[0] == {"path": "/", "pathType": "ImplementationSpecific",
                        "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
    assert paths[1]["backend"] == {"service": {"name": "api", "port": {"number": 8080}}}
    assert paths[1]["pathType"] == "Prefix"
    assert convert_manifest(obj("extensions/v1beta1", "Ingress", "x", spec={}), MODERN_SERVED).manifest is not None


def test_pdb_empty_selector_keeps_its_meaning() -> None:
    _, out, _, notes = convert(obj("policy/v1beta1", "PodDisruptionBudget", "p", spec={"selector": {},
                                                                                        "minAvailable": 1}))
    assert out is not None and out["apiVersion"] == "policy/v1" and "selector" not in out["spec"] and notes
    _, out, _, notes = convert(obj("policy/v1beta1", "PodDisruptionBudget", "p", spec={
        "selector": {"matchLabels": {"a": "b"}}}))
    assert out is not None and out["spec"]["selector"] == {"matchLabels": {"a": "b"}} and notes == ()


def test_same_shape_conversions() -> None:
    for api_version, kind, target in [
        ("batch/v1beta1", "CronJob", "batch/v1"),
        ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("rbac.authorization.k8s.io/v1beta1", "Role", "rbac.authorization.k8s.io/v1"),
        ("extensions/v1beta1", "NetworkPolicy", "networking.k8s.io/v1"),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "autoscaling/v2"),
    ]:
        m = obj(api_version, kind, "x", spec={"a": 1})
        verdict, out, _, _ = convert(m)
        assert verdict is VersionVerdict.CONVERT and out == {**m, "apiVersion": target}


def test_hpa_v2beta1_resource_metrics() -> None:
    hpa = obj("autoscaling/v2beta1", "HorizontalPodAutoscaler", "h", spec={"metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}]})
    _, out, _, _ = convert(hpa)
    assert out is not None
    assert out["spec"]["metrics"][0]["resource"] == {"name": "cpu",
                                                      "target": {"type": "Utilization", "averageUtilization": 70}}
    hpa["spec"]["metrics"][0]["type"] = "Pods"
    assert convert(hpa)[0] is VersionVerdict.NOT_CONVERTIBLE


def test_webhook_side_effects_must_be_declared() -> None:
    unknown = obj("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration", "v", None,
                  webhooks=[{"name": "w.example.com", "clientConfig": {}}])
    verdict, _, reason, _ = convert(unknown)
    assert verdict is VersionVerdict.NOT_CONVERTIBLE and "sideEffects" in reason
    unknown["webhooks"][0]["sideEffects"] = "None"
    _, out, _, _ = convert(unknown)
    assert out is not None
    assert out["webhooks"][0] | {} == {"name": "w.example.com", "clientConfig": {}, "sideEffects": "None",
                                       "admissionReviewVersions": ["v1beta1"], "failurePolicy": "Ignore",
                                       "matchPolicy": "Exact", "timeoutSeconds": 30}


def test_not_convertible_reasons() -> None:
    psp = decide_version("policy/v1beta1", "PodSecurityPolicy", MODERN_SERVED)
    assert psp.verdict is VersionVerdict.NOT_CONVERTIBLE and "without a successor" in psp.reason
    crd = decide_version("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", MODERN_SERVED)
    assert crd.verdict is VersionVerdict.NOT_CONVERTIBLE and "structural" in crd.reason
    missing = decide_version("example.com/v1", "Widget", MODERN_SERVED)
    assert "does not serve Widget" in missing.reason
    old_target = {"apps": {"Deployment": ["v1beta2"]}}
    assert "neither is apps/v1" in decide_version("extensions/v1beta1", "Deployment", old_target).reason


def test_custom_resource_versions() -> None:
    served = {"example.com": {"Widget": ["v2", "v1beta1"]}}
    assert decide_version("example.com/v1beta1", "Widget", served).verdict is VersionVerdict.SERVED
    unknown = decide_version("example.com/v1alpha1", "Widget", served)
    assert unknown.verdict is VersionVerdict.NOT_CONVERTIBLE and "assume_compatible_versions" in unknown.reason
    assumed = decide_version("example.com/v1alpha1", "Widget", served, assume_compatible_versions=True)
    assert assumed.verdict is VersionVerdict.CONVERT and assumed.target_api_version == "example.com/v2"


def test_real_world_examples() -> None:
    report = convert_manifests(load_fixture_manifests(), MODERN_SERVED)
    assert sorted(r.ref.name for r in report.not_convertible) == ["privileged", "restricted"]
    assert all("PodSecurityPolicy" in r.decision.reason for r in report.not_convertible)
    assert [(r.ref.kind, r.decision.target_api_version) for r in report.converted] == [
        ("PodDisruptionBudget", "policy/v1")]
    assert len(report.manifests) == 34
