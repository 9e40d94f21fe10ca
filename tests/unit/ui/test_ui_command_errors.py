"""`kubekeep ui` refuses what it cannot serve with one line, before it starts anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app


def test_a_location_without_repository_needs_init(tmp_path: Path) -> None:
    (tmp_path / "loc").mkdir()
    result = CliRunner().invoke(app, ["ui", "-l", str(tmp_path / "loc"), "--port", "1"],
                                env={"KUBEKEEP_PASSWORD": "pw", "KUBEKEEP_UI_HOME": str(tmp_path / "home")})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].endswith("(--init creates a repository)"), result.output
    assert not (tmp_path / "home").exists()  # nothing was started


def test_a_bad_port_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ui", "-l", str(tmp_path), "--port", "70000"],
                                env={"KUBEKEEP_PASSWORD": "pw", "COLUMNS": "200"})
    assert result.exit_code == 2 and "--port" in result.output
