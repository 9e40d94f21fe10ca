"""The root of the one `kubekeep` command tree: the Typer app, the global options, the console script.

Each command group lives in a module of this package that adds its commands to :data:`app` when
imported; ``flows/cli/__init__.py`` imports them (one line per module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

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


def main() -> None:
    """The console script: one line per error, never a traceback (details in the log file)."""
    from .common import describe

    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last guard: nothing reaches the user as a traceback
        log.error("kubekeep failed", exc_info=True)
        console.print(f"[bold red]kubekeep failed:[/] {describe(exc)}")
        raise SystemExit(1) from None
