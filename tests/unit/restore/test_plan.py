from __future__ import annotations

from kubekeep.restore import (
    AFTER_ANNOTATION,
    PlanOptions,
    TierPolicy,
    TransformChain,
    Wait,
    plan_restore,
)

from .helpers import MODERN_SERVED, deployment, load_fixture_manifests, obj


def test_plan_real_world_examples() -> None:
    manifests = load_fixture_manifests()
    for n, m in enumerate(manifests):
        m["metadata"].update(uid=f"u{n}", resourceVersion=str(n))
    options = PlanOptions(
        transforms=TransformChain.from_dict([{"type": "namespace-map", "map": {"cockroachdb-cockroachdb-statefulset":
                                                                            "crdb"}}]),
        tier_policy=TierPolicy.from_dict({"tiers": {"StatefulSet/cockroachdb": 0},
                                          "after": {"Deployment/tf-serving": ["crdb/StatefulSet/cockroachdb"]}}),
    )
    plan = plan_restore(manifests, served=MODERN_SERVED, options=options)
    assert sorted(s.ref.name for s in plan.skipped) == ["privileged", "restricted"]
    assert plan.object_count == len(manifests) - 2
    assert [c.ref.kind for c in plan.converted] == ["PodDisruptionBudget"]
    every = [o.manifest for p in plan.phases for o in p.objects]
    assert all("uid" not in m["metadata"] and "resourceVersion" not in m["metadata"] for m in every)
    tiers = {o.ref.name: o.tier for p in plan.phases for o in p.objects if o.tier is not None}
    assert tiers["cockroachdb"] == 0 and tiers["tf-serving"] == 1 and tiers["nfs-web"] == 0
    pdb = next(m for m in every if m["kind"] == "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["metadata"]["namespace"] == "crdb"


def test_plan_counts_crds_of_the_same_restore_as_served() -> None:
    crd = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com", None, spec={
        "group": "example.com", "names": {"kind": "Widget"},
        "versions": [{"name": "v1", "served": True}, {"name": "v0", "served": False}]})
    widget = obj("example.com/v1", "Widget", "w")
    old_widget = obj("example.com/v0", "Widget", "old")
    db = obj("apps/v1", "StatefulSet", "db", spec={})
    web = deployment("web", annotations={AFTER_ANNOTATION: "db"})
    plan = plan_restore([widget, old_widget, crd, web, db], served=MODERN_SERVED)
    assert [(p.wait, [o.ref.name for o in p.objects]) for p in plan.phases] == [
        (Wait.CRDS_ESTABLISHED, ["widgets.example.com"]),
        (Wait.READY, ["db"]),
        (Wait.READY, ["web"]),
        (Wait.NONE, ["w"]),
    ]
    assert [s.ref.name for s in plan.skipped] == ["old"]


def test_plan_without_served_versions_skips_the_check() -> None:
    psp = obj("policy/v1beta1", "PodSecurityPolicy", "p", None, spec={})
    plan = plan_restore([psp])
    assert plan.object_count == 1 and plan.skipped == []
