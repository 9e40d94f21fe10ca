"""The run forms of the backup and restore flows: typed parameters the Prefect UI renders as inputs.

Pure checks of the parameter schemas Prefect builds (prefect.utilities.callables.parameter_schema)
and of the typed models' conversion to the data the core reads; the browser test
(tests/ui/test_kubekeep_ui.py) shows the same forms in Chromium.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from flows.backup import backup
from flows.dr_copy import dr_copy
from flows.migrate import migrate
from flows.protect import protect
from flows.restore import restore
from flows.restore_points import restore_points
from flows.retention import prune_flow, retention
from flows.verify import verify, verify_latest
from kubekeep.backup.hooks import HookRule
from kubekeep.restore import TierPolicy, TransformChain, parse_priorities
from kubekeep.restore.policy import RestorePolicy
from tasks.restore_parameters import ReadinessTiers, RestoreOptions, TransformStep

FLOWS = [restore, backup]
#: every flow a user starts from the UI: no raw JSON editor in any run form
ALL_FLOWS = [*FLOWS, dr_copy, migrate, protect, restore_points, retention, prune_flow, verify, verify_latest]


def _untyped(schema: dict[str, Any], definitions: dict[str, Any], where: str) -> list[str]:
    """Places in a schema where the form can only offer a raw JSON editor: an object without properties
    (``dict[str, Any]``) or a value of any type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = definitions[name]
        if name in ("LocationProfile", "EncryptionKey", "ClusterConnection"):
            return []  # blocks: the form offers a block picker
    found = []
    for option in schema.get("anyOf", []) + schema.get("allOf", []) + schema.get("oneOf", []):
        found += _untyped(option, definitions, where)
    if schema.get("type") == "object" and not schema.get("properties") and "$ref" not in schema:
        found.append(where)
    if not any(k in schema for k in ("type", "$ref", "anyOf", "allOf", "oneOf", "enum", "const")):
        found.append(where)  # Any
    if schema.get("type") == "array" and "items" in schema:
        found += _untyped(schema["items"], definitions, where + "[]")
    for name, prop in (schema.get("properties") or {}).items():
        if name == "value" and where.endswith(("patch[]", "operations[]")):
            continue  # a JSON patch value is any JSON by definition
        found += _untyped(prop, definitions, f"{where}.{name}")
    return found


@pytest.mark.parametrize("flow", ALL_FLOWS, ids=lambda f: f.name)
def test_no_parameter_is_an_untyped_mapping(flow: Any) -> None:
    schema = parameter_schema(flow.fn).model_dump()
    definitions = schema.get("definitions", {})
    assert _untyped({"type": "object", "additionalProperties": True}, {}, "x") == ["x"]  # the check can fail
    found = [w for name, prop in schema["properties"].items() for w in _untyped(prop, definitions, name)]
    assert found == []


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_parameter_and_model_field_has_a_description(flow: Any) -> None:
    schema = parameter_schema(flow.fn).model_dump()
    missing = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    for model, definition in schema.get("definitions", {}).items():
        if model in ("LocationProfile", "EncryptionKey", "ClusterConnection"):
            continue
        missing += [f"{model}.{name}" for name, prop in definition.get("properties", {}).items()
                    if not prop.get("description")]
    assert missing == []


def test_choices_are_selects() -> None:
    props = parameter_schema(restore.fn).model_dump()["properties"]
    assert props["existing"]["enum"] == ["skip", "update", "recreate"]


def test_collections_default_to_empty_so_the_form_shows_them_directly() -> None:
    props = parameter_schema(restore.fn).model_dump()["properties"]
    for name in ("namespace_map", "storage_class_map", "image_rewrite", "transforms", "priorities", "kinds"):
        assert props[name]["default"] == [] and props[name]["type"] == "array", name
    assert props["tiers"]["default"] == {"tiers": [], "after": []}


def test_older_plain_data_forms_still_validate() -> None:
    """Python callers and the CLI pass mappings and the core's spec forms; they become the typed models."""
    params = restore.validate_parameters({
        "namespace_map": {"shop": "shop-copy"}, "storage_class_map": {"slow": "fast"},
        "image_rewrite": {"registry.example.com/shop": "mirror.example.com/shop"},
        "tiers": {"tiers": {"StatefulSet/db": 0}, "after": {"web": "db, cache"}},
        "policy": {"recreate_pvcs": True, "existing_by_kind": {"Service": "update"}, "ready_timeout": 30},
        "transforms": [{"type": "json-patch", "selector": {"kind": "Deployment", "name": "web"},
                        "patch": [{"op": "replace", "path": "/spec/replicas", "value": 2},
                                  {"op": "move", "from": "/a", "path": "/b"}]},
                       {"type": "labels", "add": {"team": "shop"}, "remove": ["old"]}],
        "priorities": ["CustomResourceDefinition.apiextensions.k8s.io", {"match": "*", "reason": "rest"}],
        "kinds": None, "names": None})
    assert [(m.source, m.target) for m in params["namespace_map"]] == [("shop", "shop-copy")]
    assert [(r.source, r.target) for r in params["image_rewrite"]] == [("registry.example.com/shop",
                                                                        "mirror.example.com/shop")]
    assert params["kinds"] == [] and params["names"] == []
    # each model turns into the data the core reads, and the core accepts it
    steps = [t.to_spec() for t in params["transforms"]]
    assert steps == [
        {"type": "json-patch", "selector": {"kind": ["Deployment"], "name": ["web"]},
         "patch": [{"op": "replace", "path": "/spec/replicas", "value": 2},
                   {"op": "move", "path": "/b", "from": "/a"}]},
        {"type": "labels", "add": {"team": "shop"}, "remove": ["old"]}]
    assert len(TransformChain.from_dict(steps).transforms) == 2
    tiers = params["tiers"].to_spec()
    assert tiers == {"tiers": {"StatefulSet/db": 0}, "after": {"web": ["db", "cache"]}}
    TierPolicy.from_dict(tiers)
    policy = RestorePolicy.from_dict(params["policy"].to_policy_data("skip"))
    assert policy.recreate_pvcs and policy.ready_timeout == 30
    assert {k: v.value for k, v in policy.existing_by_kind.items()} == {"Service": "update"}
    assert [e.match for e in parse_priorities([p.to_spec() for p in params["priorities"]])] == [
        "CustomResourceDefinition.apiextensions.k8s.io", "*"]


def test_the_form_data_the_ui_sends_validates() -> None:
    """What the run form posts (lists of {source, target}, nested models as objects) is accepted."""
    params = restore.validate_parameters({
        "namespace_map": [{"source": "shop", "target": "shop-copy"}], "existing": "update",
        "image_rewrite": [{"from": "a.io/x", "to": "b.io/x"}],
        "tiers": {"tiers": [{"workload": "StatefulSet/db", "tier": 0}], "after": []},
        "transforms": [{"type": "namespace-map", "map": [{"source": "a", "target": "b"}],
                        "selector": {"kind": [], "name": [], "namespace": [], "labels": []}}]})
    assert params["transforms"][0].to_spec() == {"type": "namespace-map", "map": {"a": "b"}}
    assert params["image_rewrite"][0].model_dump(by_alias=True) == {"from": "a.io/x", "to": "b.io/x"}


@pytest.mark.parametrize("bad", [
    {"existing": "overwrite"},
    {"namespace_map": [{"source": "shop"}]},
    {"tiers": {"tiers": [{"workload": "db", "tier": -1}]}},
    {"policy": {"unknown": 1}},
    {"policy": {"ready_timeout": 0}},
    {"transforms": [{"type": "rename"}]},
])
def test_bad_values_are_refused_before_the_run(bad: dict[str, Any]) -> None:
    with pytest.raises(ParameterTypeError):
        restore.validate_parameters(bad)


def test_empty_models_mean_the_defaults() -> None:
    assert ReadinessTiers().to_spec() is None
    assert RestorePolicy.from_dict(RestoreOptions().to_policy_data("skip")) == RestorePolicy()
    assert TransformStep(type="labels").to_spec() == {"type": "labels"}


def test_backup_hooks_and_mounts_accept_both_forms() -> None:
    rule = {"name": "db", "pre": [{"command": ["/bin/sh", "-c", "sync"], "timeout": "2m"}],
            "post": [{"command": "thaw", "on_error": "continue"}], "namespaces": ["shop"],
            "label_selector": "app=db"}
    params = backup.validate_parameters({"app": "shop", "namespaces": ["shop"], "hooks": [rule],
                                         "nfs_mounts": {"nfs.example:/export": "/mnt/nfs"}, "quiesce": None})
    parsed = HookRule.from_dict(params["hooks"][0].to_spec())
    assert parsed.pre[0].timeout == 120 and parsed.post[0].command == ("thaw",)
    assert [(m.export, m.mount) for m in params["nfs_mounts"]] == [("nfs.example:/export", "/mnt/nfs")]
    with pytest.raises(ParameterTypeError):
        backup.validate_parameters({"app": "shop", "namespaces": ["shop"], "hooks": [{"name": "x", "pre": [{}]}]})
