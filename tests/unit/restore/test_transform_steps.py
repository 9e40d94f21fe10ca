"""The step types that isolate a restore: service-type, replicas, remove-fields, drop (and drops in the plan)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubekeep.manifest import ObjectRef
from kubekeep.restore import PlanOptions, TransformChain, TransformSpecError, plan_restore

from .helpers import MODERN_SERVED, deployment, obj


def chain(*transforms: dict[str, Any]) -> TransformChain:
    return TransformChain.from_dict({"transforms": list(transforms)})


def service(name: str, type_: str, **spec: Any) -> dict[str, Any]:
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
             {"name": "metrics", "port": 9090, "nodePort": 30090}]
    return obj("v1", "Service", name, spec={"type": type_, "selector": {"app": name}, "ports": ports, **spec})


def test_service_type_turns_node_ports_and_load_balancers_into_cluster_ips() -> None:
    lb = service("lb", "LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                 loadBalancerIP="203.0.113.9", loadBalancerSourceRanges=["10.0.0.0/8"], loadBalancerClass="x",
                 allocateLoadBalancerNodePorts=True, sessionAffinity="ClientIP")
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    node_port = service("np", "NodePort")
    cluster_ip = obj("v1", "Service", "plain", spec={"type": "ClusterIP", "ports": [{"port": 80}]})
    external = obj("v1", "Service", "ext", spec={"type": "ExternalName", "externalName": "db.example.com"})
    before = [copy.deepcopy(m) for m in (lb, node_port, cluster_ip, external)]
    out = chain({"type": "service-type", "from": ["NodePort", "LoadBalancer"], "to": "ClusterIP"}).apply(
        [lb, node_port, cluster_ip, external])
    for converted, old in ((out[0], "LoadBalancer"), (out[1], "NodePort")):
        spec = converted["spec"]
        assert spec["type"] == "ClusterIP"
        assert all("nodePort" not in p for p in spec["ports"]) and [p["port"] for p in spec["ports"]] == [80, 9090]
        assert converted["metadata"]["annotations"]["kubekeep.io/original-service-type"] == old
    assert set(out[0]["spec"]) == {"type", "selector", "ports", "sessionAffinity"} and "status" not in out[0]
    assert out[2:] == before[2:]
    # the inputs are never changed (the chain works on copies)
    assert [lb, node_port] == before[:2]


def test_service_type_only_from_the_listed_types_and_with_a_selector() -> None:
    t = chain({"type": "service-type", "from": "LoadBalancer", "selector": {"name": "lb"}})
    out = t.apply([service("lb", "LoadBalancer"), service("np", "NodePort"), service("other", "LoadBalancer")])
    assert [s["spec"]["type"] for s in out] == ["ClusterIP", "NodePort", "LoadBalancer"]
    assert TransformChain.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("spec, message", [
    ({"from": []}, "expected NodePort and/or LoadBalancer"),
    ({"from": ["ClusterIP"]}, "expected NodePort and/or LoadBalancer"),
    ({"from": ["NodePort"], "to": "LoadBalancer"}, "only ClusterIP"),
    ({"from": ["NodePort"], "ports": 1}, "unknown keys ['ports']"),
])
def test_service_type_bad_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TransformSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        chain({"type": "service-type", **spec})


def test_replicas_cap() -> None:
    big = deployment("web")
    big["spec"]["replicas"] = 5
    small = deployment("api")
    small["spec"]["replicas"] = 1
    default = deployment("worker")  # no replicas: the API server's default is 1
    sts = obj("apps/v1", "StatefulSet", "db", spec={"replicas": 3})
    rc = obj("v1", "ReplicationController", "old", spec={"replicas": 4})
    widget = obj("example.com/v1", "Widget", "w", spec={"replicas": 9})
    config = obj("v1", "ConfigMap", "c", data={"replicas": "9"})
    out = chain({"type": "replicas", "max": 2}).apply([big, small, default, sts, rc, widget, config])
    assert [m["spec"].get("replicas") for m in out[:5]] == [2, 1, None, 2, 2]
    assert out[0]["metadata"]["annotations"] == {"kubekeep.io/original-replicas": "5"}
    assert "annotations" not in out[1]["metadata"]
    assert out[5]["spec"]["replicas"] == 9, "kinds the selector does not name are left alone"
    assert out[6] == config
    # to zero: even the defaulted one; and a kind named by the selector
    zero = chain({"type": "replicas", "max": 0}).apply([default])
    assert zero[0]["spec"]["replicas"] == 0
    named = chain({"type": "replicas", "max": 1, "selector": {"kind": "Widget.example.com"}}).apply([widget, big])
    assert named[0]["spec"]["replicas"] == 1 and named[1]["spec"]["replicas"] == 5
    with pytest.raises(TransformSpecError, match="max: expected an integer >= 0"):
        chain({"type": "replicas", "max": -1})
    with pytest.raises(TransformSpecError, match="max: expected an integer >= 0"):
        chain({"type": "replicas", "max": True})


def test_remove_fields_where_present() -> None:
    claim = obj("v1", "PersistentVolumeClaim", "data", spec={"volumeName": "pv-1", "resources": {}})
    bare = obj("v1", "PersistentVolumeClaim", "bare", spec={})
    svc = obj("v1", "Service", "s", spec={"externalIPs": ["198.51.100.1"], "ports": [{"port": 1, "name": "a/b"}]})
    t = chain({"type": "remove-fields", "paths": ["/spec/volumeName"], "selector": {"kind": "PersistentVolumeClaim"}},
              {"type": "remove-fields", "paths": ["/spec/externalIPs", "/spec/ports/0/name", "/spec/ports/7/name",
                                                  "/nothing/here"]})
    out = t.apply([claim, bare, svc])
    assert out[0]["spec"] == {"resources": {}} and out[1]["spec"] == {}
    assert out[2]["spec"] == {"ports": [{"port": 1}]}
    assert TransformChain.from_dict(t.to_dict()) == t
    for paths, message in ((["spec"], "not a JSON pointer"), (["/metadata/name"], "without its identity"),
                           (["/kind"], "without its identity"), ([], "at least one")):
        with pytest.raises(TransformSpecError, match=message):
            chain({"type": "remove-fields", "paths": paths})


def test_drop_leaves_objects_out_and_says_why() -> None:
    hpa = obj("autoscaling/v2", "HorizontalPodAutoscaler", "web")
    ingress = obj("networking.k8s.io/v1", "Ingress", "web")
    web = deployment("web")
    t = chain({"type": "labels", "add": {"seen": "yes"}},
              {"type": "drop", "selector": {"kind": ["HorizontalPodAutoscaler", "Ingress.networking.k8s.io"]},
               "reason": "a sandbox takes no outside traffic"},
              {"type": "labels", "add": {"after": "yes"}})
    result = t.apply_with_drops([hpa, web, ingress])
    assert [m["kind"] for m in result.manifests] == ["Deployment"]
    assert result.manifests[0]["metadata"]["labels"] == {"seen": "yes", "after": "yes"}
    assert [(d.ref, d.step) for d in result.dropped] == [
        (ObjectRef("autoscaling", "HorizontalPodAutoscaler", "shop", "web", "v2"), 1),
        (ObjectRef("networking.k8s.io", "Ingress", "shop", "web", "v1"), 1)]
    assert result.dropped[0].describe() == "left out by transforms[1] (drop): a sandbox takes no outside traffic"
    assert t.apply([hpa, web, ingress]) == result.manifests
    assert TransformChain.from_dict(t.to_dict()) == t
    with pytest.raises(TransformSpecError, match="a drop needs a selector"):
        chain({"type": "drop"})
    with pytest.raises(TransformSpecError, match="reason: expected a string"):
        chain({"type": "drop", "selector": {"kind": "Ingress"}, "reason": 3})


def test_plan_lists_dropped_objects_with_their_reason() -> None:
    manifests = [obj("v1", "Namespace", "shop", None), deployment("web"),
                 obj("autoscaling/v2", "HorizontalPodAutoscaler", "web", spec={"maxReplicas": 3})]
    options = PlanOptions(transforms=chain({"type": "drop", "selector": {"kind": "HorizontalPodAutoscaler"},
                                            "reason": "no autoscaling in a sandbox"}))
    plan = plan_restore(manifests, served=MODERN_SERVED, options=options)
    planned = [o.ref.kind for p in plan.phases for o in p.objects]
    assert "HorizontalPodAutoscaler" not in planned and "Deployment" in planned
    assert [(s.ref.kind, s.reason) for s in plan.skipped] == [
        ("HorizontalPodAutoscaler", "left out by transforms[0] (drop): no autoscaling in a sandbox")]


def test_chains_add_up() -> None:
    a = chain({"type": "labels", "add": {"a": "1"}})
    b = chain({"type": "replicas", "max": 1})
    assert (a + b).to_dict()["transforms"] == a.to_dict()["transforms"] + b.to_dict()["transforms"]


def test_every_transform_example_in_the_docs_parses() -> None:
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[3] / "docs" / "restore-order.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)]
    chains = [TransformChain.from_dict(b) for b in blocks if isinstance(b, dict) and "transforms" in b]
    types = {t.type_name for c in chains for t in c.transforms}
    assert {"service-type", "replicas", "remove-fields", "drop"} <= types
