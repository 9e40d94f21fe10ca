from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kubekeep.restore import (
    ImageRewrite,
    TransformChain,
    TransformError,
    TransformSpecError,
)
from kubekeep.restore.transforms import split_image

from .helpers import deployment, load_fixture_manifests, obj


def chain(*transforms: dict[str, Any]) -> TransformChain:
    return TransformChain.from_dict({"transforms": list(transforms)})


def test_namespace_map_moves_objects_and_references() -> None:
    ns = obj("v1", "Namespace", "shop", None, metadata={"labels": {"kubernetes.io/metadata.name": "shop"}})
    binding = obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "b", None, subjects=[
        {"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
        {"kind": "ServiceAccount", "name": "x", "namespace": "kube-system"},
        {"kind": "Group", "name": "devs"},
    ])
    pv = obj("v1", "PersistentVolume", "pv", None, spec={"claimRef": {"namespace": "shop", "name": "data"}})
    netpol = obj("networking.k8s.io/v1", "NetworkPolicy", "allow", spec={"ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}]}]})
    webhook = obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "v", None,
                  webhooks=[{"name": "w", "clientConfig": {"service": {"namespace": "shop", "name": "hook"}}}])
    out = chain({"type": "namespace-map", "map": {"shop": "shop-dr"}}).apply(
        [ns, binding, pv, netpol, webhook, obj("v1", "ConfigMap", "c"), obj("v1", "ConfigMap", "d", "other")])
    assert out[0]["metadata"] == {"name": "shop-dr", "labels": {"kubernetes.io/metadata.name": "shop-dr"}}
    # a ClusterRoleBinding of a mapped subject becomes a copy holding only the mapped subjects
    # (docs/restore-order.md; test_cluster_bindings_and_status.py)
    assert out[1]["metadata"]["name"] == "b-shop-dr"
    assert [s.get("namespace") for s in out[1]["subjects"]] == ["shop-dr"]
    assert out[2]["spec"]["claimRef"]["namespace"] == "shop-dr"
    assert out[3]["metadata"]["namespace"] == "shop-dr"
    selector = out[3]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": "shop-dr"}
    assert out[4]["webhooks"][0]["clientConfig"]["service"]["namespace"] == "shop-dr"
    assert [m["metadata"]["namespace"] for m in out[5:]] == ["shop-dr", "other"]


def test_storage_class_map() -> None:
    pvc = obj("v1", "PersistentVolumeClaim", "data", spec={"storageClassName": "standard"})
    old_pvc = obj("v1", "PersistentVolumeClaim", "old",
                  metadata={"annotations": {"volume.beta.kubernetes.io/storage-class": "standard"}}, spec={})
    pv = obj("v1", "PersistentVolume", "pv", None, spec={"storageClassName": "standard"})
    sts = obj("apps/v1", "StatefulSet", "db", spec={
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "standard"}},
                                 {"metadata": {"name": "logs"}, "spec": {"storageClassName": "slow"}}],
        "template": {"spec": {"containers": [], "volumes": [
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"storageClassName": "standard"}}}}]}},
    })
    out = chain({"type": "storage-class-map", "map": {"standard": "gp3"}}).apply([pvc, old_pvc, pv, sts])
    assert out[0]["spec"]["storageClassName"] == "gp3"
    assert out[1]["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"] == "gp3"
    assert out[2]["spec"]["storageClassName"] == "gp3"
    assert [t["spec"]["storageClassName"] for t in out[3]["spec"]["volumeClaimTemplates"]] == ["gp3", "slow"]
    ephemeral = out[3]["spec"]["template"]["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]
    assert ephemeral["spec"]["storageClassName"] == "gp3"


@pytest.mark.parametrize(
    ("image", "normalised", "suffix"),
    [
        ("busybox", "docker.io/library/busybox", ""),
        ("nginx:1.25", "docker.io/library/nginx", ":1.25"),
        ("bitnami/redis:7@sha256:abcd", "docker.io/bitnami/redis", ":7@sha256:abcd"),
        ("registry.k8s.io/redis:e2e", "registry.k8s.io/redis", ":e2e"),
        ("localhost:5000/app", "localhost:5000/app", ""),
        ("my.reg:5000/team/app:v2", "my.reg:5000/team/app", ":v2"),
    ],
)
def test_split_image(image: str, normalised: str, suffix: str) -> None:
    assert split_image(image) == (normalised, suffix)


def test_image_rewrite_rules() -> None:
    rewrite = ImageRewrite.from_spec({"rules": [
        {"from": "docker.io", "to": "mirror.example.com/hub"},
        {"from": "gcr.io/google-samples", "to": "registry.example.com/samples"},
        {"from": "library/nginx", "to": "registry.example.com/web/nginx"},
    ]}, "t")
    assert rewrite.rewrite("busybox") == "mirror.example.com/hub/library/busybox"
    assert rewrite.rewrite("nginx:1.25") == "registry.example.com/web/nginx:1.25"  # longest prefix wins
    assert rewrite.rewrite("gcr.io/google-samples/gb-frontend:v5") == "registry.example.com/samples/gb-frontend:v5"
    assert rewrite.rewrite("gcr.io/google-samplesX/a") == "gcr.io/google-samplesX/a"  # whole path components
    assert rewrite.rewrite("quay.io/x/y@sha256:ff") == "quay.io/x/y@sha256:ff"


def test_image_rewrite_reaches_every_pod_template() -> None:
    pod_spec = {"initContainers": [{"name": "i", "image": "busybox"}],
                "containers": [{"name": "c", "image": "nginx:1"}],
                "ephemeralContainers": [{"name": "e", "image": "alpine"}]}
    manifests = [
        obj("v1", "Pod", "p", spec=copy.deepcopy(pod_spec)),
        *[obj(av, kind, "w", spec={"template": {"spec": copy.deepcopy(pod_spec)}}) for av, kind in [
            ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
            ("apps/v1", "ReplicaSet"), ("batch/v1", "Job"), ("v1", "ReplicationController"),
            ("extensions/v1beta1", "Deployment")]],
        obj("batch/v1", "CronJob", "cj",
            spec={"jobTemplate": {"spec": {"template": {"spec": copy.deepcopy(pod_spec)}}}}),
    ]
    out = chain({"type": "image-rewrite", "rules": [{"from": "docker.io", "to": "mirror.local"}]}).apply(manifests)
    for m in out:
        text = yaml.safe_dump(m)
        assert text.count("mirror.local/library/") == 3, m["kind"]


def test_labels_and_annotations_with_selector() -> None:
    manifests = [deployment("web", labels={"tier": "frontend", "old": "x"}), deployment("db", labels={"old": "y"}),
                 obj("v1", "ConfigMap", "web")]
    out = chain(
        {"type": "labels", "selector": {"kind": "Deployment", "labels": {"tier": "frontend"}},
         "add": {"restored": "yes"}, "remove": ["old"]},
        {"type": "annotations", "selector": {"name": "w*", "namespace": "sho?"}, "add": {"note": "dr"}},
    ).apply(manifests)
    assert out[0]["metadata"]["labels"] == {"tier": "frontend", "restored": "yes"}
    assert out[1]["metadata"]["labels"] == {"old": "y"}
    assert out[0]["metadata"]["annotations"] == {"note": "dr"} == out[2]["metadata"]["annotations"]
    assert "annotations" not in out[1]["metadata"]


def test_json_patch() -> None:
    spec = yaml.safe_load("""
    version: 1
    transforms:
      - type: json-patch
        selector: {kind: Deployment.apps, name: web}
        patch:
          - {op: replace, path: /spec/replicas, value: 1}
          - {op: add, path: /spec/template/spec/containers/0/env, value: [{name: MODE, value: dr}]}
          - {op: add, path: /metadata/labels/a~1b, value: "c"}
    """)
    web = deployment("web", labels={"x": "y"})
    web["spec"]["replicas"] = 3
    out = TransformChain.from_dict(spec).apply([web, deployment("api")])
    assert out[0]["spec"]["replicas"] == 1
    assert out[0]["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "dr"}]
    assert out[0]["metadata"]["labels"] == {"x": "y", "a/b": "c"}
    assert "replicas" not in out[1]["spec"]
    assert web["spec"]["replicas"] == 3  # input untouched


def test_json_patch_failures_name_the_object() -> None:
    bad = chain({"type": "json-patch", "selector": {"kind": "Deployment"},
                 "patch": [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]})
    with pytest.raises(TransformError) as info:
        bad.apply([deployment("web"), deployment("api")])
    assert len(info.value.failures) == 2
    assert "Deployment.apps shop/web: transforms[0] (json-patch)" in str(info.value)
    test_op = chain({"type": "json-patch", "patch": [{"op": "test", "path": "/kind", "value": "Secret"}]})
    with pytest.raises(TransformError, match="ConfigMap shop/c"):
        test_op.apply([obj("v1", "ConfigMap", "c")])
    unname = chain({"type": "json-patch", "patch": [{"op": "remove", "path": "/metadata/name"}]})
    with pytest.raises(TransformError, match="without metadata.name"):
        unname.apply([obj("v1", "ConfigMap", "c")])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "json-patch", "patch": [{"op": "replace", "path": "/a"}]}, r"patch\[0\]: op 'replace' needs"),
        ({"type": "json-patch", "patch": [{"op": "frobnicate", "path": "/a"}]}, "op 'frobnicate' is not one of"),
        ({"type": "json-patch", "patch": [{"op": "remove", "path": "a/b"}]}, "is not a JSON pointer"),
        ({"type": "json-patch", "patch": [{"op": "remove", "path": "/a~2"}]}, "is not a JSON pointer"),
        ({"type": "json-patch", "patch": [{"op": "move", "path": "/a"}]}, r"needs \['from'\]"),
        ({"type": "json-patch", "patch": [{"op": "remove", "path": "/a", "value": 1}]}, "does not take"),
        ({"type": "json-patch", "patch": {"op": "remove"}}, "expected a non-empty list"),
        ({"type": "json-patch", "patch": []}, "expected a non-empty list"),
        ({"type": "json-patch", "patch": [{"op": "remove", "path": "/a"}], "selector": {"kinds": "x"}},
         "unknown keys"),
        ({"type": "teleport"}, "unknown type 'teleport'"),
        ({"type": "namespace-map", "map": {"a": "Not_Valid"}}, "not a valid namespace name"),
        ({"type": "namespace-map", "map": ["a"]}, "expected a mapping"),
        ({"type": "image-rewrite", "rules": [{"from": "docker.io/"}]}, "exactly the keys"),
        ({"type": "image-rewrite", "rules": [{"from": "gcr.io/x:v1", "to": "y"}]}, "has a tag"),
        ({"type": "labels"}, "nothing to do"),
        ({"type": "labels", "add": {"a": 1}}, "expected str values"),
    ],
)
def test_bad_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TransformSpecError, match=message):
        chain(spec)


def test_spec_errors_are_located() -> None:
    with pytest.raises(TransformSpecError, match=r"transforms\[1\] \(json-patch\)\.patch\[0\]"):
        chain({"type": "labels", "add": {"a": "b"}},
              {"type": "json-patch", "patch": [{"op": "add", "path": "/x"}]})
    with pytest.raises(TransformSpecError, match="version 2"):
        TransformChain.from_dict({"version": 2, "transforms": []})
    with pytest.raises(TransformSpecError, match="not valid YAML"):
        TransformChain.from_yaml("transforms: [")


def test_round_trip_through_yaml() -> None:
    original = chain(
        {"type": "namespace-map", "map": {"a": "b"}},
        {"type": "storage-class-map", "map": {"standard": "gp3"}},
        {"type": "image-rewrite", "rules": [{"from": "docker.io", "to": "m.local"}], "selector": {"kind": "Pod"}},
        {"type": "labels", "add": {"x": "y"}, "remove": ["z"], "selector": {"namespace": "a"}},
        {"type": "annotations", "remove": ["z"]},
        {"type": "json-patch", "patch": [{"op": "remove", "path": "/status"}], "selector": {"name": ["a", "b"]}},
    )
    again = TransformChain.from_yaml(yaml.safe_dump(original.to_dict()))
    assert again == original and again.to_dict() == original.to_dict()


def test_real_world_examples() -> None:
    manifests = load_fixture_manifests()
    before = copy.deepcopy(manifests)
    spec = TransformChain.from_yaml("""
    transforms:
      - type: namespace-map
        map: {volumes-nfs-nfs-pvc: storage, elasticsearch-rbac: search}
      - type: storage-class-map
        map: {fast: premium, "": manual}
      - type: image-rewrite
        rules:
          - {from: docker.io, to: mirror.example.com/hub}
          - {from: gcr.io, to: mirror.example.com/gcr}
          - {from: registry.k8s.io, to: mirror.example.com/k8s}
      - type: labels
        add: {kubekeep.io/restored: "true"}
      - type: json-patch
        selector: {kind: [Deployment, StatefulSet, ReplicationController]}
        patch: [{op: replace, path: /spec/replicas, value: 1}]
    """)
    out = spec.apply(manifests)
    assert manifests == before
    assert len(out) == len(manifests)
    images = [c["image"] for m in out for c in yaml.safe_load(yaml.safe_dump(m)).get("spec", {})
              .get("template", {}).get("spec", {}).get("containers", [])]
    assert images and all(i.startswith("mirror.example.com/") for i in images)
    assert all(m["metadata"]["labels"]["kubekeep.io/restored"] == "true" for m in out)
    pvc = next(m for m in out if m["kind"] == "PersistentVolumeClaim" and m["metadata"]["name"] == "nfs")
    assert pvc["metadata"]["namespace"] == "storage" and pvc["spec"]["storageClassName"] == "manual"
    cassandra = next(m for m in out if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "cassandra")
    template = cassandra["spec"]["volumeClaimTemplates"][0]
    assert template["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"] == "premium"
    binding = next(m for m in out if m["kind"] == "RoleBinding")
    assert binding["metadata"]["namespace"] == "search"
    assert binding["subjects"][0]["namespace"] == "default"  # not mapped: 'default' is not in the map
