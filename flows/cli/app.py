"""The root of the one `kubekeep` command tree: the Typer app, the global options, the console script.

Each command group lives in a module of this package that adds its commands to :data:`app` when
imported; ``flows/cli/__init__.py`` imports them (one line per module).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_name
from typer.models import CommandInfo, DefaultPlaceholder, TyperInfo

log = logging.getLogger("kubekeep.cli")
console = Console(stderr=True, soft_wrap=True)

class _HelpIsAFlag:
    """``--help`` reads as a flag in every help screen (Typer shows its own help option as ``<bool>``)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Command(_HelpIsAFlag, TyperCommand):
    """Every command of the tree (set by :func:`finish_tree`)."""


class Group(_HelpIsAFlag, TyperGroup):
    """Every command group of the tree (set by :func:`finish_tree`)."""


def finish_tree(root: typer.Typer) -> typer.Typer:
    """Give every command and group of the tree the classes above (called once all modules registered)."""
    def unset(value: Any) -> bool:
        return value is None or isinstance(value, DefaultPlaceholder) or value in (TyperCommand, TyperGroup)

    if unset(root.info.cls):
        root.info.cls = Group
    for command in root.registered_commands:
        if unset(command.cls):
            command.cls = Command
    for group in root.registered_groups:
        if unset(group.cls):
            group.cls = Group
        if group.typer_instance is not None:
            finish_tree(group.typer_instance)
    return root


app = typer.Typer(name="kubekeep", no_args_is_help=True, add_completion=False,
                  help="Back up, restore, copy and verify Kubernetes applications.")


def Flag(*names: str, **kwargs: Any) -> Any:  # noqa: N802 - reads like typer.Option in signatures
    """A boolean option that is a flag (``--dry-run``), shown in help without a value."""
    return typer.Option(*names, metavar="", **kwargs)


@dataclass
class Options:
    verbose: bool = False


#: what the global options asked for (``kubekeep --verbose <command>``)
options = Options()


@app.callback()
def _main_options(verbose: Annotated[bool, Flag(
        "--verbose", "-v", envvar="KUBEKEEP_VERBOSE",
        help="Show Prefect's logs and full error details in the terminal (they always go to the log file).")]
        = False) -> None:
    """Back up, restore, copy and verify Kubernetes applications."""
    options.verbose = verbose


#: the root's own options, which may come before the command's name
_ROOT_FLAGS = frozenset({"--verbose", "-v"})


def command_branch(root: typer.Typer, argv: Sequence[str]) -> typer.Typer:
    """A copy of the tree holding only the branch ``argv`` names (``repo backup ...``: the ``repo`` group with
    its ``backup`` command), so that a command's start-up builds one command, not all of them (~0.23 s: a
    signature and its annotations per command). Where ``argv`` names nothing (the root's help, a typo, a
    group's own options before its command), that level keeps everything, and the help or error is the full
    tree's."""
    rest = list(argv)
    while rest and rest[0] in _ROOT_FLAGS:
        rest.pop(0)
    return _branch(root, rest)


def _branch(tree: typer.Typer, argv: list[str]) -> typer.Typer:
    if not argv:
        return tree
    for command in tree.registered_commands:
        if _command_name(command) == argv[0]:
            return _keep(tree, [command], [])
    for group in tree.registered_groups:
        if group.typer_instance is not None and _group_name(group) == argv[0]:
            kept = copy.copy(group)
            kept.typer_instance = _branch(group.typer_instance, argv[1:])
            return _keep(tree, [], [kept])
    return tree


def _command_name(command: CommandInfo) -> str | None:
    if command.name:
        return command.name
    return get_command_name(command.callback.__name__) if command.callback is not None else None


def _group_name(group: TyperInfo) -> str | None:
    for name in (group.name, group.typer_instance.info.name if group.typer_instance is not None else None):
        if isinstance(name, str):
            return name
    return None


def _keep(tree: typer.Typer, commands: list[CommandInfo], groups: list[TyperInfo]) -> typer.Typer:
    kept = copy.copy(tree)
    kept.registered_commands = commands
    kept.registered_groups = groups
    return kept


def derive_key_early(argv: Sequence[str]) -> None:
    """Start deriving a ``repo`` command's repository key on a thread of its own (Argon2id, ~0.3 s of one
    core, holds no lock): it runs while the command starts up. Only for a filesystem location and a passphrase
    in the environment (an S3 location would need a second client); the command's own opening of the
    repository takes the key, or derives it itself when this found nothing."""
    rest = list(argv)
    while rest and rest[0] in _ROOT_FLAGS:
        rest.pop(0)
    if len(rest) < 2 or rest[0] != "repo" or rest[1] == "init" or {"--password-file", "--key-file"} & set(rest):
        return
    from kubekeep.location import LOCATION_ENV

    from .common import PASSWORD_ENV, LocationOpt

    option = get_args(LocationOpt)[1]  # the typer.Option of Annotated[str, typer.Option(...)]
    names = tuple(n for n in (option.default, *option.param_decls) if isinstance(n, str) and n.startswith("-"))
    passphrase = os.environ.get(PASSWORD_ENV)
    location = _option_value(rest, names)
    if location is None:
        location = next((os.environ[name] for name in LOCATION_ENV if os.environ.get(name)), None)
    if not passphrase or not location or ("://" in location and not location.startswith("file://")):
        return

    def derive() -> None:
        try:
            from kubekeep.location import open_location
            from kubekeep.repo.keys import derive_key_early as derive_from

            derive_from(open_location(location), passphrase)
        except Exception:  # noqa: BLE001 - only a head start: the command opens the repository and reports
            log.debug("early key derivation skipped", exc_info=True)

    threading.Thread(target=derive, name="kubekeep-early-key", daemon=True).start()


def _option_value(argv: list[str], names: tuple[str, ...]) -> str | None:
    for i, token in enumerate(argv):
        if token in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and token.startswith(name + "="):
                return token[len(name) + 1:]
    return None


def main() -> None:
    """The console script: one line per error, never a traceback (details in the log file)."""
    from .common import describe

    argv = sys.argv[1:]
    try:
        derive_key_early(argv)
        command_branch(app, argv)(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last guard: nothing reaches the user as a traceback
        log.error("kubekeep failed", exc_info=True)
        console.print(f"[bold red]kubekeep failed:[/] {describe(exc)}")
        raise SystemExit(1) from None
