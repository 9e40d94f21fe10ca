from __future__ import annotations

from typing import Any

import pytest

from kubekeep.restore import (
    AFTER_ANNOTATION,
    DEFAULT_PRIORITIES,
    TIER_ANNOTATION,
    PrioritySpecError,
    TierCycleError,
    TierError,
    TierPolicy,
    UnknownTierReferenceError,
    Wait,
    compute_tiers,
    order_manifests,
    parse_priorities,
    priorities_to_data,
)

from .helpers import deployment, load_fixture_manifests, obj


def statefulset(name: str, namespace: str = "shop", **annotations: str) -> dict[str, Any]:
    return obj("apps/v1", "StatefulSet", name, namespace, metadata={"annotations": annotations} if annotations else {},
               spec={"selector": {"matchLabels": {"app": name}}})


def flat(phases: Any) -> list[str]:
    return [f"{o.ref.kind}/{o.ref.name}" for p in phases for o in p.objects]


def test_default_order_phases_and_reasons() -> None:
    crd = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com", None,
              spec={"group": "example.com"})
    manifests = [
        obj("networking.k8s.io/v1", "Ingress", "web"),
        obj("example.com/v1", "Widget", "w1"),
        obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "guard", None),
        deployment("web"),
        obj("v1", "Service", "web"),
        obj("v1", "ConfigMap", "cfg"),
        obj("v1", "Secret", "creds"),
        obj("v1", "PersistentVolumeClaim", "data"),
        obj("v1", "PersistentVolume", "pv1", None),
        obj("v1", "ServiceAccount", "web"),
        obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", None),
        obj("storage.k8s.io/v1", "StorageClass", "fast", None),
        obj("v1", "Namespace", "shop", None),
        crd,
        obj("autoscaling/v2", "HorizontalPodAutoscaler", "web"),
    ]
    phases = order_manifests(manifests)
    assert [(p.name, p.wait) for p in phases] == [
        ("00-crds", Wait.CRDS_ESTABLISHED), ("01-resources", Wait.NONE), ("02-tier-0", Wait.READY),
        ("03-resources", Wait.NONE),
    ]
    assert flat(phases) == [
        "CustomResourceDefinition/widgets.example.com",
        "Namespace/shop", "StorageClass/fast", "ClusterRole/reader", "ServiceAccount/web", "Secret/creds",
        "ConfigMap/cfg", "PersistentVolume/pv1", "PersistentVolumeClaim/data", "Service/web",
        "Deployment/web",
        "HorizontalPodAutoscaler/web", "Ingress/web", "Widget/w1",  # built-in first, custom resources last
        "ValidatingWebhookConfiguration/guard",
    ]
    first = phases[0].objects[0]
    assert first.match == "CustomResourceDefinition.apiextensions.k8s.io" and "Established" in first.reason


def test_every_default_entry_has_a_reason() -> None:
    assert all(e.reason for e in DEFAULT_PRIORITIES)
    assert parse_priorities(priorities_to_data(DEFAULT_PRIORITIES)) == DEFAULT_PRIORITIES


def test_tiers_from_annotations() -> None:
    manifests = [
        deployment("web", **{"annotations": {AFTER_ANNOTATION: "api"}}),
        deployment("api", **{"annotations": {AFTER_ANNOTATION: "StatefulSet/db, cache"}}),
        statefulset("db"),
        deployment("cache"),
        deployment("batch", **{"annotations": {TIER_ANNOTATION: "5"}}),
        deployment("other-ns-web", namespace="blog", **{"annotations": {AFTER_ANNOTATION: "shop/StatefulSet/db"}}),
    ]
    phases = order_manifests(manifests)
    tiers = {p.tier: sorted(o.ref.name for o in p.objects) for p in phases}
    assert tiers == {0: ["cache", "db"], 1: ["api", "other-ns-web"], 2: ["web"], 5: ["batch"]}
    assert all(p.wait is Wait.READY for p in phases)
    # StatefulSets come before Deployments inside a tier
    assert [o.ref.kind for o in phases[0].objects] == ["StatefulSet", "Deployment"]


def test_tier_policy_overrides_annotations() -> None:
    manifests = [statefulset("db", **{TIER_ANNOTATION: "3"}), deployment("web")]
    policy = TierPolicy.from_dict({"tiers": {"db": 0}, "after": {"Deployment/web": "db"}})
    assert {r.name: t for r, t in compute_tiers(manifests, policy).items()} == {"db": 0, "web": 1}


def test_cycle_is_reported_with_its_path() -> None:
    manifests = [
        deployment("a", annotations={AFTER_ANNOTATION: "b"}),
        deployment("b", annotations={AFTER_ANNOTATION: "c"}),
        deployment("c", annotations={AFTER_ANNOTATION: "a"}),
    ]
    with pytest.raises(TierCycleError, match=r"cycle: Deployment.apps shop/a -> .* -> Deployment.apps shop/a"):
        order_manifests(manifests)
    with pytest.raises(TierCycleError, match="after itself"):
        compute_tiers([deployment("a", annotations={AFTER_ANNOTATION: "a"})])


def test_unknown_ambiguous_and_malformed_references() -> None:
    with pytest.raises(UnknownTierReferenceError, match="'postgres' names no workload"):
        compute_tiers([deployment("web", annotations={AFTER_ANNOTATION: "postgres"})])
    with pytest.raises(TierError, match="ambiguous"):
        compute_tiers([deployment("web", annotations={AFTER_ANNOTATION: "db"}), deployment("db"), statefulset("db")])
    with pytest.raises(TierError, match="not a non-negative integer"):
        compute_tiers([deployment("web", annotations={TIER_ANNOTATION: "high"})])
    with pytest.raises(TierError, match="is not 'name'"):
        compute_tiers([deployment("web", annotations={AFTER_ANNOTATION: "a/b/c/d"})])
    with pytest.raises(UnknownTierReferenceError, match="no restored workload"):
        compute_tiers([deployment("web")], TierPolicy(tiers={"nope": 1}))
    with pytest.raises(TierError, match="non-negative"):
        TierPolicy.from_dict({"tiers": {"web": -1}})


def test_custom_priorities() -> None:
    priorities = parse_priorities([
        "ConfigMap",
        {"match": "*.example.com", "reason": "operator resources early", "wait": "none"},
        {"match": "Deployment.apps", "tiered": True},
    ])
    assert priorities[-1].match == "*"
    manifests = [deployment("web"), obj("v1", "Secret", "s"), obj("example.com/v1", "Widget", "w"),
                 obj("v1", "ConfigMap", "c")]
    phases = order_manifests(manifests, priorities=priorities)
    assert flat(phases) == ["ConfigMap/c", "Widget/w", "Deployment/web", "Secret/s"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["Deployment.Apps"], "is not 'Kind.group'"),
        (["ConfigMap", "ConfigMap"], "listed twice"),
        ([{"match": "Pod", "wait": "forever"}], "wait 'forever'"),
        ([{"match": "Pod", "colour": "red"}], "unknown keys"),
        ([{"match": "*", "tiered": True}], "cannot be tiered"),
        ([{"match": "Pod", "tiered": True, "wait": "ready"}], "do not also set wait"),
        ([42], "expected a string or a mapping"),
    ],
)
def test_bad_priority_specs(spec: list[Any], message: str) -> None:
    with pytest.raises(PrioritySpecError, match=message):
        parse_priorities(spec)


def test_real_world_examples() -> None:
    manifests = load_fixture_manifests()
    phases = order_manifests(manifests)
    ordered = [o.manifest for p in phases for o in p.objects]
    assert sorted(map(id, ordered)) == sorted(map(id, manifests))
    kinds = [m["kind"] for m in ordered]
    assert kinds.index("StorageClass") < kinds.index("PersistentVolume") < kinds.index("PersistentVolumeClaim")
    assert kinds.index("ServiceAccount") < kinds.index("StatefulSet")
    workloads = next(p for p in phases if p.tier == 0)
    assert {o.ref.kind for o in workloads.objects} == {"StatefulSet", "Deployment", "ReplicationController"}
    # PodSecurityPolicy is not in the list: it goes with the rest
    assert phases[-1].objects[-1].ref.kind == "PodSecurityPolicy" or "PodSecurityPolicy" in flat(phases[-1:])
