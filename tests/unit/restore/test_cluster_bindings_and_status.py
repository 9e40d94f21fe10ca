"""Namespace mapping of ClusterRoleBindings (copies for the target), and custom-resource status in the plan."""

from __future__ import annotations

from typing import Any

from kubekeep.restore import PlanOptions, SanitizeOptions, TransformChain, plan_restore
from kubekeep.restore.transforms import COPIED_FROM_ANNOTATION, SUBJECTS_NOT_COPIED_ANNOTATION, copied_binding_name


def _crb(name: str, *subjects: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": list(subjects)}


def _map(*manifests: dict[str, Any], mapping: dict[str, str] | None = None) -> list[dict[str, Any]]:
    chain = TransformChain.from_dict([{"type": "namespace-map", "map": mapping or {"shop": "shop-copy"}}])
    return chain.apply(manifests)


def test_binding_of_a_mapped_service_account_becomes_a_copy_under_its_own_name() -> None:
    (copy,) = _map(_crb("shop-shop-view", {"kind": "ServiceAccount", "name": "shop", "namespace": "shop"}))
    assert copy["metadata"]["name"] == "shop-copy-shop-view"
    assert copy["subjects"] == [{"kind": "ServiceAccount", "name": "shop", "namespace": "shop-copy"}]
    assert copy["metadata"]["annotations"] == {COPIED_FROM_ANNOTATION: "shop-shop-view"}


def test_mixed_subjects_keep_only_the_mapped_ones_and_say_which_were_left() -> None:
    (copy,) = _map(_crb("view-all", {"kind": "ServiceAccount", "name": "shop", "namespace": "shop"},
                        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                        {"kind": "Group", "name": "system:serviceaccounts:shop"}))
    assert copy["metadata"]["name"] == "view-all-shop-copy"
    assert [s["name"] for s in copy["subjects"]] == ["shop", "system:serviceaccounts:shop-copy"]
    assert copy["metadata"]["annotations"][SUBJECTS_NOT_COPIED_ANNOTATION] == "User alice"


def test_binding_without_mapped_subjects_is_left_alone() -> None:
    original = _crb("ops", {"kind": "ServiceAccount", "name": "ops", "namespace": "kube-system"})
    (same,) = _map(original)
    assert same == original


def test_copied_names_are_deterministic_and_valid() -> None:
    assert copied_binding_name("shop-view", [("shop", "prod")]) == "prod-view"
    assert copied_binding_name("view.shop", [("shop", "prod")]) == "view.prod"
    assert copied_binding_name("admin", [("a", "b")]) == "admin-b"  # no substring surgery
    long = copied_binding_name("x" * 250, [("shop", "shop-copy")])
    assert len(long) == 253 and long == copied_binding_name("x" * 250, [("shop", "shop-copy")])


def _coupon(status: dict[str, Any] | None) -> dict[str, Any]:
    m: dict[str, Any] = {"apiVersion": "demo.kubekeep.io/v1", "kind": "Coupon",
                         "metadata": {"name": "welcome", "namespace": "shop"}, "spec": {"percent": 10}}
    if status is not None:
        m["status"] = status
    return m


def test_custom_resource_status_is_dropped_with_a_note_unless_kept() -> None:
    plan = plan_restore([_coupon({"redeemed": 3})])
    (obj,) = [o for p in plan.phases for o in p.objects]
    assert "status" not in obj.manifest and "__kubekeep_plan_notes__" not in obj.manifest
    assert len(obj.notes) == 1 and "status not restored" in obj.notes[0] and "Coupon.demo.kubekeep.io" in obj.notes[0]

    kept = plan_restore([_coupon({"redeemed": 3})],
                        options=PlanOptions(sanitize=SanitizeOptions(keep_status=frozenset({"Coupon.demo.kubekeep.io"})),
                                            transforms=TransformChain.from_dict(
                                                [{"type": "namespace-map", "map": {"shop": "shop-copy"}}])))
    (obj,) = [o for p in kept.phases for o in p.objects]
    assert obj.manifest["status"] == {"redeemed": 3} and obj.notes == ()
    assert obj.ref.namespace == "shop-copy"

    (quiet,) = [o for p in plan_restore([_coupon(None)]).phases for o in p.objects]
    assert quiet.notes == ()
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "shop"},
                  "spec": {"selector": {}, "template": {"spec": {"containers": []}}}, "status": {"replicas": 1}}
    (builtin,) = [o for p in plan_restore([deployment]).phases for o in p.objects]
    assert builtin.notes == ()  # built-in kinds' status is the controllers' business, no note
