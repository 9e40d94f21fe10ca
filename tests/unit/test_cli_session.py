"""`kubekeep` commands: what a command's session does with errors, and what starting a command imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from flows.cli.common import session

ROOT = Path(__file__).resolve().parents[2]


def test_a_usage_error_inside_a_session_stays_a_usage_error() -> None:
    app = typer.Typer()

    @app.command()
    def probe() -> None:
        with session("probe"):
            raise typer.BadParameter("no such thing", param_hint="'--thing'")

    result = CliRunner().invoke(app, [])
    # typer's vendored click raises its own exception classes: the session must let them through
    # (exit code 2 and the usage message), not report them as a failure of the command
    assert result.exit_code == 2, result.output
    assert "no such thing" in result.output
    assert "probe failed" not in result.output


def test_starting_a_command_does_not_import_what_only_some_commands_need() -> None:
    """YAML (transforms and hooks files) and urllib (the Prefect API's health check) cost ~90 ms of
    every command's start-up; `repo backup` needs neither."""
    probe = ("import sys; from flows.cli import main; "
             "print(sorted(m for m in ('yaml', 'urllib.request', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
