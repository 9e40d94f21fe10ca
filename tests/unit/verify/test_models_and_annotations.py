"""Typed checks, the verification policy and checks declared in annotations."""

from __future__ import annotations

import json

import pytest

from kubekeep.testbed import sample_app
from kubekeep.verify import (
    ExecCheck,
    HttpCheck,
    VerificationPolicy,
    VerificationSpecError,
    checks_from_annotations,
    merge_checks,
    parse_check,
)


def test_parse_checks_and_clear_errors() -> None:
    exec_check = parse_check({"type": "exec", "name": "db-ping", "pod_selector": "app=db",
                              "command": ["pg_isready"], "stdout_regex": "accepting"})
    assert isinstance(exec_check, ExecCheck) and exec_check.expected_exit_code == 0
    http = parse_check({"type": "http", "name": "home", "pod_selector": "app=web, tier!=x", "service": "web"})
    assert isinstance(http, HttpCheck) and http.pod_selector == "app=web,tier!=x"
    bad = [
        ({"type": "ping"}, "type 'ping' is not one of 'exec', 'http'"),
        ([], "expected a mapping"),
        ({"type": "exec", "name": "x", "pod_selector": "app=db", "command": []}, "command: List should have"),
        ({"type": "exec", "name": "Bad", "pod_selector": "app=db", "command": ["x"]}, "check name 'Bad'"),
        ({"type": "exec", "name": "x", "pod_selector": "app in (a)", "command": ["x"]}, "is not a label selector"),
        ({"type": "exec", "name": "x", "pod_selector": "a=b", "command": ["x"], "stdout_regex": "("},
         "is not a regular expression"),
        ({"type": "exec", "name": "x", "pod_selector": "a=b", "command": ["x"], "timeout_seconds": 0},
         "timeout_seconds: Input should be greater than 0"),
        ({"type": "exec", "name": "x", "pod_selector": "a=b", "command": ["x"], "surprise": 1},
         "surprise: Extra inputs are not permitted"),
        ({"type": "http", "name": "x", "pod_selector": "a=b", "service": "Web"}, "is not a Service name"),
        ({"type": "http", "name": "x", "pod_selector": "a=b", "service": "web", "path": "healthz"},
         "must start with '/'"),
        ({"type": "http", "name": "x", "pod_selector": "a=b", "service": "web", "client": "telnet"}, "client"),
    ]
    for data, message in bad:
        with pytest.raises(VerificationSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_check(data, where="checks[0]")


def test_policy_from_yaml_and_merge_order() -> None:
    policy = VerificationPolicy.from_yaml("""
checks:
  - {type: exec, name: db-ping, pod_selector: app=db, command: [pg_isready]}
  - {type: http, name: home, pod_selector: app=web, service: web, expected_status: 204}
builtin: {volume_data: false}
isolation: {max_replicas: 1}
ready_timeout_seconds: 90
""")
    assert [c.name for c in policy.checks] == ["db-ping", "home"]
    assert policy.builtin.volume_data is False and policy.builtin.objects_present is True
    assert policy.isolation.max_replicas == 1 and policy.isolation.allow_dns is True
    param = parse_check({"type": "exec", "name": "db-ping", "pod_selector": "app=db", "command": ["true"]})
    annotated = parse_check({"type": "exec", "name": "extra", "pod_selector": "app=db", "command": ["x"]})
    merged = merge_checks([param], policy.checks, [annotated])
    assert [c.name for c in merged] == ["db-ping", "home", "extra"] and merged[0] is param
    for text, message in (("checks: [{type: exec, name: a, pod_selector: a=b, command: [x]}, "
                           "{type: exec, name: a, pod_selector: a=b, command: [y]}]", "must be unique"),
                          ("isolation: {max_replicas: 0}", "max_replicas"), ("[unclosed", "not valid YAML"),
                          ("builtin: {volume: true}", "Extra inputs")):
        with pytest.raises(VerificationSpecError, match=message):
            VerificationPolicy.from_yaml(text, where="policy.yaml")
    # a policy round-trips through plain data (what a block or a flow parameter stores)
    assert VerificationPolicy.from_data(policy.model_dump(mode="json")) == policy


def test_checks_from_annotations_fill_in_what_the_object_implies() -> None:
    manifests = sample_app.manifests("shop")
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    by_name[("StatefulSet", "db")]["metadata"]["annotations"] = {
        "verify.kubekeep.io/check.db-ping": json.dumps({"type": "exec", "command": ["pg_isready"],
                                                        "stdout_regex": "accepting"}),
        "unrelated/annotation": "x"}
    by_name[("Service", "web")]["metadata"]["annotations"] = {
        "verify.kubekeep.io/check.home": "{type: http, pod_selector: app=web, body_regex: Shop}"}
    by_name[("Deployment", "web")]["metadata"]["annotations"] = {
        "verify.kubekeep.io/check.web-home": json.dumps({"type": "http", "service": "web", "path": "/healthz"}),
        "verify.kubekeep.io/check.Bad": "{}",
        "verify.kubekeep.io/check.broken": "{type: exec}",
        "verify.kubekeep.io/check.notmap": "[1, 2]",
        "verify.kubekeep.io/check.renamed": json.dumps({"type": "exec", "name": "other", "command": ["x"]}),
    }
    by_name[("ConfigMap", "shop-config")]["metadata"]["annotations"] = {
        "verify.kubekeep.io/check.db-ping": json.dumps({"type": "exec", "pod_selector": "app=db",
                                                        "command": ["x"]})}
    checks, errors = checks_from_annotations(manifests)
    by = {c.name: c for c in checks}
    assert set(by) == {"db-ping", "home", "web-home"}
    db = by["db-ping"]
    assert isinstance(db, ExecCheck) and db.pod_selector == "app=db" and db.namespace == "shop"
    home = by["home"]
    assert isinstance(home, HttpCheck) and home.service == "web" and home.pod_selector == "app=web"
    web_home = by["web-home"]
    assert isinstance(web_home, HttpCheck) and web_home.pod_selector == "app=web" and web_home.path == "/healthz"
    joined = "\n".join(errors)
    assert len(errors) == 5, joined
    assert "Deployment shop/web: annotation verify.kubekeep.io/check.Bad: 'Bad' is not a check name" in joined
    assert "check.broken" in joined and "command" in joined
    assert "check.notmap: expected a mapping" in joined
    assert "drop 'name' from the value" in joined
    # the first declaration (in the order of the manifests) wins; the second is an error
    assert "StatefulSet shop/db: annotation verify.kubekeep.io/check.db-ping: check db-ping is also " \
           "declared on ConfigMap shop/shop-config" in joined


def test_annotation_on_the_namespace_names_its_namespace() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "annotations": {
        "verify.kubekeep.io/check.any": '{"type": "exec", "pod_selector": "app=db", "command": ["true"]}'}}}
    checks, errors = checks_from_annotations([ns])
    assert not errors and checks[0].namespace == "shop"


def test_the_examples_in_docs_verification_parse() -> None:
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[3] / "docs" / "verification.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)]
    policy = VerificationPolicy.from_data(next(b for b in blocks if "checks" in b))
    assert [c.name for c in policy.checks] == ["db-ready", "home-page"] and policy.isolation.max_replicas == 1
    annotated = next(b for b in blocks if "metadata" in b)
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", **annotated["metadata"]},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    checks, errors = checks_from_annotations([manifest])
    assert not errors and [c.name for c in checks] == ["db-ready", "home-page"]
