"""The migration plan's checks on plain manifests and target facts (no cluster)."""

from __future__ import annotations

import json

import pytest

from kubekeep.migrate import (
    ClassResolution,
    MigrationOptions,
    MigrationPlan,
    MigrationRefusedError,
    NodeInfo,
    Severity,
    Taint,
    Verdict,
    prepare,
)
from kubekeep.migrate.planner import VolumeData
from kubekeep.migrate.target import IngressClassInfo, LimitRangeInfo, NamespaceInfo, QuotaInfo
from kubekeep.restore import PlanOptions, TransformChain
from kubekeep.restore.policy import ConflictPolicy, RestorePolicy

from .helpers import NEW_SERVED, deployment, existing, facts, items, obj, old_served, plan, pvc, storage_class


def _with_transforms(spec: list[dict[str, object]], **options: object) -> MigrationOptions:
    return MigrationOptions(plan=PlanOptions(transforms=TransformChain.from_dict(spec)), **options)  # type: ignore[arg-type]


def _row(result: MigrationPlan, source: str) -> object:
    return next(r for r in result.objects if r.source == source)


# ---------------------------------------------------------------- API versions


def test_each_object_gets_the_api_version_the_target_serves_and_drift_is_converted() -> None:
    manifests = [
        deployment(),
        obj("storage.k8s.io/v1", "VolumeAttributesClass", "gold", None, driverName="csi.example.com",
            parameters={"iops": "100"}),
        obj("resource.k8s.io/v1", "ResourceClaimTemplate", "gpu", spec={"spec": {"devices": {"requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}}}),
        obj("apps/v1beta2", "StatefulSet", "legacy", spec={"template": {"metadata": {"labels": {"app": "l"}},
                                                                       "spec": {"containers": []}}}),
    ]
    result = plan(manifests, facts(served=old_served()))
    rows = {r.source: r for r in result.objects}
    assert rows["Deployment.apps shop/web"].verdict is Verdict.SERVED
    assert rows["Deployment.apps shop/web"].target_api_version == "apps/v1"
    vac = rows["VolumeAttributesClass.storage.k8s.io gold"]
    assert (vac.verdict, vac.stored_api_version, vac.target_api_version) == (
        Verdict.CONVERT, "storage.k8s.io/v1", "storage.k8s.io/v1beta1")
    assert rows["ResourceClaimTemplate.resource.k8s.io shop/gpu"].target_api_version == "resource.k8s.io/v1beta2"
    legacy = rows["StatefulSet.apps shop/legacy"]
    assert legacy.target_api_version == "apps/v1" and "selector" in legacy.note
    conversions = items(result, "api-version", "info")
    assert {i.subject for i in conversions} == {"VolumeAttributesClass.storage.k8s.io",
                                                "ResourceClaimTemplate.resource.k8s.io", "StatefulSet.apps"}
    assert not result.refused


def test_an_object_the_target_cannot_take_blocks_the_plan_with_the_reason() -> None:
    policy = obj("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy", "defaults", None,
                 spec={"matchConstraints": {}})
    vac = obj("storage.k8s.io/v1", "VolumeAttributesClass", "gold", None, driverName="d")
    result = plan([policy, vac, deployment()], facts(served=old_served(betas=False)))
    assert result.refused
    blocking = {i.subject: i for i in items(result, "api-version", "blocking")}
    assert set(blocking) == {"MutatingAdmissionPolicy.admissionregistration.k8s.io defaults",
                             "VolumeAttributesClass.storage.k8s.io gold"}
    assert "not convertible" in blocking["VolumeAttributesClass.storage.k8s.io gold"].message
    row = _row(result, "MutatingAdmissionPolicy.admissionregistration.k8s.io defaults")
    assert row.verdict is Verdict.NOT_CONVERTIBLE and row.target is None  # type: ignore[attr-defined]
    with pytest.raises(MigrationRefusedError) as err:
        result.raise_if_refused()
    assert "nothing was written to target" in str(err.value) and "\n" not in str(err.value)


def test_excluded_kinds_are_listed_and_do_not_block() -> None:
    psp = obj("policy/v1beta1", "PodSecurityPolicy", "restricted", None, spec={})
    result = plan([psp, deployment()], facts(served=NEW_SERVED),
                  MigrationOptions(exclude_kinds=("PodSecurityPolicy.policy",)))
    assert not result.refused
    assert _row(result, "PodSecurityPolicy.policy restricted").verdict is Verdict.EXCLUDED  # type: ignore[attr-defined]
    blocked = plan([psp], facts(served=NEW_SERVED))
    assert blocked.refused and "without a successor" in blocked.blocking[0].message


def test_owned_objects_are_left_out_with_the_reason() -> None:
    web = deployment()
    web["metadata"]["uid"] = "u-web"
    rs = obj("apps/v1", "ReplicaSet", "web-1", spec={}, metadata={"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u-web", "controller": True}]})
    result = plan([web, rs], facts(served=NEW_SERVED))
    row = _row(result, "ReplicaSet.apps shop/web-1")
    assert row.verdict is Verdict.LEFT_OUT and "owned by" in row.note  # type: ignore[attr-defined]


# ---------------------------------------------------------------- CRDs


def _crd(versions: tuple[str, ...] = ("v1",)) -> dict[str, object]:
    return obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "coupons.demo.io", None, spec={
        "group": "demo.io", "scope": "Namespaced", "names": {"kind": "Coupon", "plural": "coupons"},
        "versions": [{"name": v, "served": True, "storage": v == versions[0]} for v in versions]})


def test_a_missing_crd_comes_from_the_restore_point() -> None:
    coupon = obj("demo.io/v1", "Coupon", "welcome", spec={"percent": 10})
    result = plan([_crd(), coupon], facts())
    assert not result.refused
    assert result.crds_from_restore_point == ["coupons.demo.io"]
    assert _row(result, "Coupon.demo.io shop/welcome").verdict is Verdict.SERVED  # type: ignore[attr-defined]
    assert "created from the restore point" in items(result, "crd", "info")[0].message


def test_a_missing_crd_with_no_way_to_bring_it_refuses_the_plan() -> None:
    coupons = [obj("demo.io/v1", "Coupon", n, spec={}) for n in ("a", "b")]
    result = plan([*coupons, deployment()], facts())
    blocking = items(result, "crd", "blocking")
    assert result.refused and [i.subject for i in blocking] == ["Coupon.demo.io"]
    assert "holds no CustomResourceDefinition" in blocking[0].message and len(blocking[0].objects) == 2
    assert not items(result, "api-version", "blocking")  # reported once, by the CRD check
    forbidden = plan([_crd(), coupons[0]], facts(), MigrationOptions(bring_crds=False))
    assert forbidden.refused and "does not bring CRDs" in items(forbidden, "crd", "blocking")[0].message


def test_a_crd_on_the_target_that_does_not_serve_the_stored_version_blocks_under_skip() -> None:
    coupon = obj("demo.io/v2", "Coupon", "welcome", spec={})
    served = old_served()
    served["demo.io"] = {"Coupon": ["v1"]}
    target = facts(served=served, existing=existing(("apiextensions.k8s.io", "CustomResourceDefinition", "",
                                                     "coupons.demo.io"), crd_versions=("v1",)))
    result = plan([_crd(("v2", "v1")), coupon], target)
    assert result.refused and "serves only v1" in items(result, "crd", "blocking")[0].message
    update = MigrationOptions(policy=RestorePolicy(existing_by_kind={
        "CustomResourceDefinition.apiextensions.k8s.io": ConflictPolicy.UPDATE}))
    replaced = plan([_crd(("v2", "v1")), coupon], target, update)
    assert not replaced.refused and items(replaced, "crd", "warning")


# ---------------------------------------------------------------- StorageClasses


def test_storage_class_exact_match_and_explicit_map() -> None:
    target = facts(classes=[storage_class("fast"), storage_class("gold", default=True)])
    result = plan([pvc("data", storage_class="fast"), pvc("logs", storage_class="slow")], target,
                  _with_transforms([{"type": "storage-class-map", "map": {"slow": "gold"}}]))
    decisions = {d.source: d for d in result.storage_classes}
    assert decisions["fast"].resolution is ClassResolution.EXACT and decisions["fast"].target == "fast"
    assert decisions["slow"].resolution is ClassResolution.MAPPED and decisions["slow"].target == "gold"
    assert not result.refused


def test_a_missing_class_is_blocking_with_the_same_provisioner_suggested() -> None:
    source_fast = storage_class("fast", "ebs.csi.aws.com", parameters={"type": "gp3"})
    target = facts(classes=[storage_class("standard", default=True),
                            storage_class("ebs-io", "ebs.csi.aws.com", parameters={"type": "io2"}),
                            storage_class("ebs-gp3", "ebs.csi.aws.com", parameters={"type": "gp3"})])
    result = plan([pvc("data", storage_class="fast")], target,
                  MigrationOptions(source_storage_classes={"fast": _info(source_fast)}))
    decision = result.storage_classes[0]
    assert decision.resolution is ClassResolution.MISSING and decision.suggestion == "ebs-gp3"
    item = items(result, "storage-class", "blocking")[0]
    assert result.refused and "does not guess" in item.message
    assert item.suggestion is not None and item.suggestion.startswith("--storage-class-map fast=ebs-gp3")
    assert "same provisioner and parameters" in item.suggestion


def test_without_a_class_of_that_provisioner_the_default_is_suggested_never_applied() -> None:
    target = facts(classes=[storage_class("standard", "other.example.com", default=True)])
    result = plan([storage_class("fast", "k8s.io/minikube-hostpath"), pvc("data", storage_class="fast")], target)
    item = items(result, "storage-class", "blocking")[0]
    assert "knows no provisioner k8s.io/minikube-hostpath" in item.message  # brought, but useless there
    assert item.suggestion is not None and "fast=standard" in item.suggestion and "default" in item.suggestion
    assert result.storage_classes[0].target is None
    nothing = plan([pvc("data", storage_class="fast")], facts(classes=[]))
    assert nothing.refused and nothing.storage_classes[0].suggestion is None


def test_a_brought_class_whose_provisioner_the_target_knows_is_created() -> None:
    target = facts(classes=[storage_class("standard", default=True)])
    result = plan([storage_class("fast"), pvc("data", storage_class="fast")], target)
    assert result.storage_classes[0].resolution is ClassResolution.BROUGHT and not result.refused
    csi = facts(classes=[], csi_drivers=frozenset({"ebs.csi.aws.com"}))
    via_driver = plan([storage_class("fast", "ebs.csi.aws.com"), pvc("data", storage_class="fast")], csi)
    assert via_driver.storage_classes[0].resolution is ClassResolution.BROUGHT


def test_mapping_to_a_class_the_target_lacks_is_blocking() -> None:
    target = facts(classes=[storage_class("standard", default=True)])
    result = plan([pvc("data", storage_class="fast")], target,
                  _with_transforms([{"type": "storage-class-map", "map": {"fast": "nope"}}]))
    item = items(result, "storage-class", "blocking")[0]
    assert "mapped to StorageClass nope" in item.message


def test_claims_without_a_class_need_a_default_class_on_the_target() -> None:
    ok = plan([pvc("data", storage_class=None)], facts(classes=[storage_class("standard", default=True)]))
    assert ok.storage_classes[0].resolution is ClassResolution.DEFAULT and ok.storage_classes[0].target == "standard"
    refused = plan([pvc("data", storage_class=None)], facts(classes=[storage_class("standard")]))
    assert refused.refused and "no default class" in refused.blocking[0].message


def test_statefulset_templates_and_the_beta_annotation_are_claims_too() -> None:
    sts = obj("apps/v1", "StatefulSet", "db", spec={"replicas": 2, "selector": {}, "template": {"spec": {}},
                                                   "volumeClaimTemplates": [{"metadata": {
                                                       "name": "data", "annotations": {
                                                           "volume.beta.kubernetes.io/storage-class": "fast"}},
                                                       "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]})
    result = plan([sts], facts(classes=[storage_class("standard", default=True)]))
    assert result.storage_classes[0].source == "fast" and result.refused
    assert result.storage_classes[0].claims == ("StatefulSet.apps shop/db template data",)
    mapped = plan([sts], facts(classes=[storage_class("standard", default=True)]),
                  _with_transforms([{"type": "storage-class-map", "map": {"fast": "standard"}}]))
    assert not mapped.refused and mapped.storage_classes[0].resolution is ClassResolution.MAPPED


def _info(manifest: dict[str, object]):  # type: ignore[no-untyped-def]
    from kubekeep.migrate import StorageClassInfo

    return StorageClassInfo.from_object(manifest)


# ---------------------------------------------------------------- volumes


def test_volume_data_larger_than_its_claim_is_blocking() -> None:
    target = facts(classes=[storage_class("fast")])
    result = plan([pvc("data", size="1Gi")], target,
                  volumes=[VolumeData("shop", "data", 2 * 2**30, "snap")])
    assert result.refused and "(2 GiB) does not fit" in items(result, "volume", "blocking")[0].message
    fits = plan([pvc("data", size="3Gi")], target, volumes=[VolumeData("shop", "data", 2 * 2**30, "snap")])
    assert not fits.refused


def test_claims_beyond_a_quota_or_limit_range_are_blocking() -> None:
    target = facts(classes=[storage_class("fast")],
                   namespaces={"shop": NamespaceInfo("shop")},
                   quotas=[QuotaInfo("shop", "storage", {"requests.storage": "5Gi"}, {"requests.storage": "3Gi"}),
                           QuotaInfo("shop", "fast-only", {"fast.storageclass.storage.k8s.io/persistentvolumeclaims":
                                                           "1"})],
                   limit_ranges=[LimitRangeInfo("shop", "pvc-size", None, "2Gi")])
    result = plan([pvc("a", size="1Gi"), pvc("b", size="1500Mi"), pvc("c", size="3Gi")], target)
    messages = [i.message for i in items(result, "volume", "blocking")]
    assert any("requests.storage" in m and "allows 2 GiB more" in m for m in messages), messages
    assert any("persistentvolumeclaims" in m and "need 3" in m for m in messages), messages
    assert any("shop/c requests 3Gi" in m and "LimitRange pvc-size" in m for m in messages), messages


def test_a_quota_of_the_restore_point_counts_and_existing_claims_are_already_used() -> None:
    quota = obj("v1", "ResourceQuota", "q", spec={"hard": {"requests.storage": "1Gi"}})
    refused = plan([quota, pvc("a", size="1Gi"), pvc("b", size="1Gi")], facts(classes=[storage_class("fast")]))
    assert "from the restore point" in items(refused, "volume", "blocking")[0].message
    # claim a exists on the target (a pre-seed): only b is new, and the target's quota counts a as used
    target = facts(classes=[storage_class("fast")], namespaces={"shop": NamespaceInfo("shop", migration="m1")},
                   quotas=[QuotaInfo("shop", "q", {"requests.storage": "2Gi"}, {"requests.storage": "1Gi"})],
                   existing=existing(("", "PersistentVolumeClaim", "shop", "a"), migration="m1"))
    ok = plan([pvc("a", size="1Gi"), pvc("b", size="1Gi")], target, MigrationOptions(migration_id="m1"))
    assert not items(ok, "volume", "blocking")


# ---------------------------------------------------------------- namespaces


def test_existing_objects_that_are_not_the_migrations_conflict() -> None:
    cm = obj("v1", "ConfigMap", "settings", data={})
    sa = obj("v1", "ServiceAccount", "default")
    target = facts(namespaces={"shop": NamespaceInfo("shop")},
                   existing=existing(("", "ConfigMap", "shop", "settings"), ("", "ServiceAccount", "shop", "default")))
    result = plan([cm, sa], target)
    blocking = items(result, "namespace", "blocking")
    assert [i.subject for i in blocking] == ["Namespace shop"]
    assert blocking[0].objects == ("ConfigMap shop/settings (policy skip)",)  # default SA: every namespace has one
    update = plan([cm], target, MigrationOptions(policy=RestorePolicy(existing=ConflictPolicy.UPDATE)))
    assert not update.refused and items(update, "namespace", "warning")
    preseeded = facts(namespaces={"shop": NamespaceInfo("shop", migration="m1")},
                      existing=existing(("", "ConfigMap", "shop", "settings"), migration="m1"))
    ours = plan([cm], preseeded, MigrationOptions(migration_id="m1"))
    assert not ours.refused and any("pre-seed" in i.message for i in items(ours, "namespace", "info"))


def test_a_terminating_target_namespace_is_blocking() -> None:
    result = plan([deployment()], facts(namespaces={"shop": NamespaceInfo("shop", "Terminating")}))
    assert result.refused and "Terminating" in result.blocking[0].message
    mapped = plan([deployment()], facts(namespaces={"shop": NamespaceInfo("shop", "Terminating")}),
                  _with_transforms([{"type": "namespace-map", "map": {"shop": "shop-2"}}]))
    assert not mapped.refused and mapped.target_namespaces == ["shop-2"]
    assert _row(mapped, "Deployment.apps shop/web").target == "Deployment.apps shop-2/web"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- scheduling


def test_workloads_no_target_node_would_run_are_warnings() -> None:
    nodes = [NodeInfo("n1", {"disktype": "hdd", "zone": "a"}),
             NodeInfo("n2", {"zone": "b"}, (Taint("gpu", "NoSchedule"),))]
    manifests = [
        deployment("selector", nodeSelector={"disktype": "ssd"}),
        deployment("affinity", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}),
        deployment("fits", nodeSelector={"zone": "a"}),
        deployment("dedicated", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                              "effect": "NoSchedule"}]),
        deployment("managed", tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
    ]
    result = plan(manifests, facts(served=NEW_SERVED, nodes=nodes))
    warnings = {i.subject: i.message for i in items(result, "scheduling", "warning")}
    assert set(warnings) == {"Deployment.apps shop/selector", "Deployment.apps shop/affinity",
                             "Deployment.apps shop/dedicated"}
    assert "nodeSelector disktype=ssd does not match" in warnings["Deployment.apps shop/selector"]
    assert "taint gpu:NoSchedule is not tolerated" in warnings["Deployment.apps shop/affinity"]
    assert "which no target node carries" in warnings["Deployment.apps shop/dedicated"]
    assert not result.refused  # scheduling findings warn, they do not block


def test_a_cordoned_node_takes_only_pods_that_tolerate_it() -> None:
    nodes = [NodeInfo("n1", {}, (), unschedulable=True)]
    result = plan([deployment()], facts(served=NEW_SERVED, nodes=nodes))
    assert "unschedulable" in items(result, "scheduling", "warning")[0].message


# ---------------------------------------------------------------- network


def test_load_balancers_and_missing_ingress_classes_are_warnings() -> None:
    lb = obj("v1", "Service", "shop-lb", spec={"type": "LoadBalancer", "loadBalancerIP": "203.0.113.7",
                                               "ports": [{"port": 80}]},
             status={"loadBalancer": {"ingress": [{"ip": "198.51.100.4"}]}})
    named = obj("networking.k8s.io/v1", "Ingress", "named", spec={"ingressClassName": "nginx", "rules": []})
    annotated = obj("networking.k8s.io/v1", "Ingress", "annotated", spec={"rules": []},
                    metadata={"annotations": {"kubernetes.io/ingress.class": "traefik"}})
    plain = obj("networking.k8s.io/v1", "Ingress", "plain", spec={"rules": []})
    target = facts(served=NEW_SERVED, ingress_classes={"haproxy": IngressClassInfo("haproxy", "haproxy.org/c")})
    result = plan([lb, named, annotated, plain], target)
    lb_item = items(result, "load-balancer", "warning")[0]
    assert "198.51.100.4" in lb_item.message and "203.0.113.7" in lb_item.message
    ingress = {i.subject: i.message for i in items(result, "ingress-class", "warning")}
    assert "IngressClass nginx" in ingress["Ingress.networking.k8s.io shop/named"]
    assert "annotation kubernetes.io/ingress.class" in ingress["Ingress.networking.k8s.io shop/annotated"]
    assert "no default IngressClass" in ingress["Ingress.networking.k8s.io shop/plain"]
    with_default = facts(served=NEW_SERVED, ingress_classes={"nginx": IngressClassInfo("nginx", "k8s.io/ingress-nginx",
                                                                                       default=True)})
    assert not items(plan([named, plain], with_default), "ingress-class")


# ---------------------------------------------------------------- the model


def test_the_plan_renders_as_json_markdown_and_a_table_and_reads_back() -> None:
    result = plan([pvc("data", storage_class="fast"), deployment(),
                   obj("storage.k8s.io/v1", "VolumeAttributesClass", "gold", None, driverName="d")],
                  facts(classes=[storage_class("standard", default=True)]))
    doc = json.loads(result.to_json())
    assert doc["refused"] is True and doc["counts"]["blocking"] == 1 and doc["items"][0]["severity"] == "blocking"
    again = MigrationPlan.from_json(result.to_json())
    assert again.to_dict() == result.to_dict()
    md = result.markdown()
    assert md.startswith("# Migration plan: **REFUSED**") and "## Blocking (1)" in md and "| storage-class |" in md
    table = result.render_table()
    assert table.splitlines()[0].startswith("SEVERITY") and "-> --storage-class-map fast=standard" in table
    assert "storage.k8s.io/v1 -> storage.k8s.io/v1beta1" in table and "REFUSED" in table.splitlines()[-1]
    assert result.table_rows()[0]["severity"] == "blocking"
    assert result.summary().startswith("migration plan REFUSED: restore point rp-1 (source) -> target (v1.33.13)")
    assert {"severity": Severity.BLOCKING.value} .items() <= result.table_rows()[0].items()


def test_an_excluded_storage_class_still_tells_the_source_provisioner() -> None:
    target = facts(classes=[storage_class("standard", default=True),
                            storage_class("same", "ebs.csi.aws.com", parameters={"type": "gp3"})])
    result = plan([storage_class("fast", "ebs.csi.aws.com", parameters={"type": "gp3"}), pvc("data")], target,
                  MigrationOptions(exclude_kinds=("StorageClass",)))
    decision = result.storage_classes[0]
    assert (decision.resolution, decision.suggestion, decision.source_provisioner) == (
        ClassResolution.MISSING, "same", "ebs.csi.aws.com")


def test_what_the_pods_need_must_come_with_the_plan_or_be_on_the_target() -> None:
    web = deployment(serviceAccountName="web", priorityClassName="high", runtimeClassName="gvisor",
                     imagePullSecrets=[{"name": "pull"}],
                     volumes=[{"name": "a", "configMap": {"name": "settings"}},
                              {"name": "b", "secret": {"secretName": "maybe", "optional": True}},
                              {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                              {"name": "d", "projected": {"sources": [{"secret": {"name": "tls"}}]}}],
                     containers=[{"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "env"}}],
                                  "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "kube-root-ca.crt",
                                                                                          "key": "ca.crt"}}}]}])
    target = facts(served=NEW_SERVED, classes=[storage_class("fast")],
                   existing=existing(("scheduling.k8s.io", "PriorityClass", "", "high"), ("", "Secret", "shop", "tls")))
    result = plan([web, obj("v1", "ConfigMap", "settings", data={}), pvc("data")], target)
    needed = sorted(i.message.split(", which")[0].removeprefix("its pods need ")
                    for i in items(result, "references", "warning"))
    assert needed == ["RuntimeClass.node.k8s.io gvisor", "Secret shop/env", "Secret shop/pull",
                      "ServiceAccount shop/web"]
    assert not result.refused
    _, scope = prepare([web], NEW_SERVED).scope()
    assert ("shop", "env") in scope[("", "Secret")]  # looked up on the target


def test_claims_of_statefulset_replicas_that_exist_on_the_target_are_not_new() -> None:
    sts = obj("apps/v1", "StatefulSet", "db", spec={"replicas": 2, "selector": {}, "template": {"spec": {}},
                                                   "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                                                       "storageClassName": "fast",
                                                       "resources": {"requests": {"storage": "1Gi"}}}}]})
    prepared = prepare([sts], NEW_SERVED)
    assert prepared.scope()[1][("", "PersistentVolumeClaim")] == {("shop", "data-db-0"), ("shop", "data-db-1")}
    quota = [QuotaInfo("shop", "q", {"persistentvolumeclaims": "2"}, {"persistentvolumeclaims": "1"})]
    base = {"served": NEW_SERVED, "classes": [storage_class("fast")], "namespaces": {"shop": NamespaceInfo("shop")},
            "quotas": quota}
    assert plan([sts], facts(**base)).refused  # two new claims, one more allowed
    seeded = plan([sts], facts(**base, existing=existing(("", "PersistentVolumeClaim", "shop", "data-db-0"))))
    assert not seeded.refused  # data-db-0 is there already (and counted in used)
