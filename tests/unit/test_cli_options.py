"""`kubekeep` options: every one has help text, booleans are flags, every flow parameter has an option."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from flows.backup import backup
from flows.cli import app
from flows.cli.restore import load_transforms_file
from flows.dr_copy import dr_copy
from flows.migrate import migrate
from flows.restore import restore

#: flow parameter -> the CLI option(s) that set it (blocks are built from --location, --password-file, ...)
RESTORE_PARAMETERS = {
    "location": "--location", "encryption_key": "--password-file", "cluster": "--kubeconfig",
    "restore_point": "--restore-point", "app": "--app", "before": "--before", "kinds": "--kind", "names": "--name",
    "label_selector": "--selector", "pvcs": "--pvc", "namespace_map": "--namespace-map",
    "storage_class_map": "--storage-class-map", "image_rewrite": "--image-rewrite", "transforms": "--transforms",
    "priorities": "--transforms", "tiers": "--transforms", "existing": "--existing",
    "policy": "--recreate-pvcs", "preserve_node_ports": "--preserve-node-ports", "include_owned": "--include-owned",
    "dry_run": "--dry-run", "wait": "--no-wait", "restore_volumes": "--no-volumes",
    "verify_volumes": "--no-verify-volumes", "files": "--files", "mover": "--mover-image",
    "restore_status": "--restore-status", "last_clean": "--last-clean",
    # the UI's pause for an approval after the dry run: at the terminal, --dry-run first, then the restore
    "approval": "--dry-run", "approval_timeout": "--dry-run",
}
BACKUP_PARAMETERS = {
    "app": "--app", "namespaces": "--namespace", "location": "--location", "encryption_key": "--password-file",
    "cluster": "--kubeconfig", "label_selector": "--selector", "include_kinds": "--include-kind",
    "exclude_kinds": "--exclude-kind", "volume_concurrency": "--volume-concurrency", "nfs_mounts": "--nfs-mount",
    "hooks": "--hooks", "quiesce": "--quiesce", "mover": "--mover-image", "policy": "--policy",
    "include_crds": "--include-crd", "init": "--init", "copy_to": "--copy-to", "keep_quiesced": "--keep-quiesced",
    "defer_publish": "--defer-publish",
    "signals": "--signal-threshold",
}
DR_COPY_PARAMETERS = {
    "source": "--from", "destination": "--to", "source_key": "--password-file", "destination_key": "--to-password-file",
    "restore_point": "--restore-point", "app": "--app", "all_points": "--all", "mode": "--mode",
    "limit_upload_mib": "--limit-upload", "init": "--init",
}
MIGRATE_PARAMETERS = {
    "app": "--app", "namespaces": "--namespace", "target_cluster": "--to-kubeconfig",
    "source_cluster": "--from-kubeconfig", "location": "--location", "encryption_key": "--password-file",
    "action": "--plan", "namespace_map": "--namespace-map", "storage_class_map": "--storage-class-map",
    "image_rewrite": "--image-rewrite", "json_patches": "--json-patches", "quiesce": "--quiesce",
    "pre_seed_rounds": "--pre-seed-rounds", "bring_crds": "--no-bring-crds", "exclude_kinds": "--exclude-kind",
    "approval": "--yes", "approval_timeout": "--yes", "migration_id": "--migration-id", "init": "--init",
}
POLICY_OPTIONS = ("--recreate-pvcs", "--no-create-namespaces", "--node-port-conflicts", "--ready-timeout",
                  "--crd-timeout", "--delete-timeout")


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _options(name: str) -> dict[str, TyperOption]:
    return {opt: p for p in _command(name).params if isinstance(p, TyperOption) for opt in p.opts}


@pytest.mark.parametrize("flow, parameters, command", [(restore, RESTORE_PARAMETERS, "restore"),
                                                       (backup, BACKUP_PARAMETERS, "backup"),
                                                       (dr_copy, DR_COPY_PARAMETERS, "dr-copy"),
                                                       (migrate, MIGRATE_PARAMETERS, "migrate")])
def test_every_flow_parameter_has_an_option(flow: object, parameters: dict[str, str], command: str) -> None:
    signature = inspect.signature(flow.fn)  # type: ignore[attr-defined]
    assert set(signature.parameters) == set(parameters)
    options = _options(command)
    assert {opt for opt in parameters.values()} <= set(options)
    if command == "restore":
        assert set(POLICY_OPTIONS) <= set(options)


def test_flow_docstrings_document_every_parameter() -> None:
    for flow in (restore, backup, dr_copy, migrate):
        doc = inspect.getdoc(flow.fn) or ""
        assert "Args:" in doc
        for name in inspect.signature(flow.fn).parameters:
            assert f"    {name}:" in doc, name


@pytest.mark.parametrize("command", ["backup", "restore", "restores", "restore-points", "catalog-rebuild", "apps",
                                     "dr-copy", "copy", "migrate"])
def test_every_option_has_help_and_booleans_are_flags(command: str) -> None:
    for param in _command(command).params:
        if not isinstance(param, TyperOption) or param.name == "help":
            continue
        assert param.help, f"{command} {param.opts} has no help text"
        # typer 0.29 names the type bare_type(); 0.28 has only the click type's name
        kind = param.bare_type() if hasattr(param, "bare_type") else getattr(param.type, "name", "")
        if param.is_bool_flag or kind in ("bool", "boolean"):
            assert param.is_flag and not param.secondary_opts, f"{command} {param.opts} is not a plain flag"
    runner = CliRunner()
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert [line for line in result.output.splitlines() if "<bool>" in line] == []


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(group, "commands", {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


def test_no_help_screen_shows_a_flag_with_a_value() -> None:
    """``--help`` itself, and every flag of every command in the tree, reads as a flag; every option has help."""
    import typer.main

    runner = CliRunner()
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("repo", "init") in paths and ("restore",) in paths
    for path in paths:
        command: Any = root
        for name in path:
            command = command.commands[name]
        for param in command.params:
            if isinstance(param, TyperOption) and param.name != "help":
                assert param.help, f"{' '.join(path)} {param.opts} has no help text"
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        assert [line for line in result.output.splitlines() if "<bool>" in line] == [], path


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    for name in ("backup", "restore", "restores", "restore-points", "catalog-rebuild", "--verbose"):
        assert name in result.output


def test_transforms_file_is_validated_up_front(tmp_path: Path) -> None:
    good = tmp_path / "t.yaml"
    good.write_text("transforms:\n  - {type: labels, add: {a: b}}\ntiers: {StatefulSet/db: 0}\n"
                    "after: {web: [db]}\nexisting_by_kind: {Secret: update}\npriorities: [Namespace, '*']\n")
    loaded = load_transforms_file(good)
    assert loaded["tiers"] == {"tiers": {"StatefulSet/db": 0}, "after": {"web": ["db"]}}
    assert loaded["existing_by_kind"] == {"Secret": "update"} and loaded["priorities"] == ["Namespace", "*"]
    for text, message in [("transforms: [{type: nope}]", "nope"), ("colour: red", "unknown key"),
                          ("tiers: {db: -1}", "tier"), ("existing_by_kind: {Secret: maybe}", "maybe"),
                          ("transforms: [", "not valid YAML")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(typer.BadParameter, match=message):
            load_transforms_file(bad)
