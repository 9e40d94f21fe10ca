"""The migrate flow's typed parameters and the CLI's reading of them (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from pydantic import ValidationError

from flows.cli.migrate import load_json_patches
from kubekeep.restore import TransformChain
from tasks.parameters import JsonPatchRule, MigrateAction


def test_a_json_patch_rule_becomes_the_restores_transform_step() -> None:
    rule = JsonPatchRule.model_validate({"operations": [{"op": "replace", "path": "/spec/replicas", "value": 1},
                                                        {"op": "move", "from": "/a", "path": "/b"}],
                                         "kinds": ["Deployment"], "namespaces": ["shop"]})
    spec = rule.to_spec()
    assert spec == {"type": "json-patch", "selector": {"kind": ["Deployment"], "namespace": ["shop"]},
                    "patch": [{"op": "replace", "path": "/spec/replicas", "value": 1},
                              {"op": "move", "from": "/a", "path": "/b"}]}
    chain = TransformChain.from_dict([spec])
    out = chain.apply([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "shop"},
                        "spec": {"replicas": 3}, "a": 1}])[0]
    assert out["spec"]["replicas"] == 1 and out["b"] == 1 and "a" not in out


def test_bad_json_patch_rules_are_refused() -> None:
    with pytest.raises(ValidationError):
        JsonPatchRule.model_validate({"operations": []})
    with pytest.raises(ValidationError):
        JsonPatchRule.model_validate({"operations": [{"op": "frobnicate", "path": "/a"}]})
    assert [a.value for a in MigrateAction] == ["plan", "run", "rollback"]


def test_the_cli_reads_a_patch_file_or_says_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- operations: [{op: add, path: /metadata/labels/moved, value: 'yes'}]\n  kinds: [Service]\n")
    assert load_json_patches(good)[0]["operations"][0]["op"] == "add"
    for text, phrase in (("operations: []\n", "expected a list"),
                         ("- operations: [{op: nope, path: /a}]\n", "operations.0.op"),
                         ("- operations: [{op: replace, path: no-slash, value: 1}]\n", "not a JSON pointer")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(typer.BadParameter) as err:
            load_json_patches(bad)
        assert phrase in str(err.value) and "\n" not in str(err.value)
