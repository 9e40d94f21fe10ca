"""One location parser for every CLI command, the blocks and the mover (kubekeep.location)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from blocks import LocationProfile
from flows.cli import app
from kubekeep.location import LocationError, parse_location
from kubekeep.repo.storage import S3Storage

S3_ENV = {"KUBEKEEP_S3_ENDPOINT": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk",
          "AWS_SESSION_TOKEN": "token", "KUBEKEEP_S3_ADDRESSING_STYLE": "virtual", "KUBEKEEP_S3_DEADLINE": "9"}


def test_the_location_block_reads_what_the_repo_commands_read() -> None:
    """The block path used to drop the session token, the addressing style and the timeouts."""
    profile = LocationProfile.from_location("s3://bucket/some/prefix", env=S3_ENV)
    parsed = parse_location("s3://bucket/some/prefix", S3_ENV)
    assert not isinstance(parsed, Path)
    storage = profile.storage()
    assert isinstance(storage, S3Storage)
    assert storage.config == parsed
    assert (parsed.prefix, parsed.session_token, parsed.addressing_style, parsed.deadline) == (
        "some/prefix/", "token", "virtual", 9.0)
    assert profile.describe() == "s3://bucket/some/prefix/"


@pytest.mark.parametrize("text, message", [
    ("gs://bucket/x", "unsupported location scheme 'gs'"),
    ("s3:///prefix", "no bucket"),
    ("", "no location given"),
])
def test_bad_locations_are_one_clear_error_everywhere(text: str, message: str) -> None:
    with pytest.raises(LocationError, match=message):
        parse_location(text, {})
    with pytest.raises(ValueError, match=message):
        LocationProfile.from_location(text, env={})


def test_bad_s3_settings_name_the_variable() -> None:
    with pytest.raises(LocationError, match="KUBEKEEP_S3_ADDRESSING_STYLE"):
        parse_location("s3://b/p", {"KUBEKEEP_S3_ADDRESSING_STYLE": "sideways"})
    with pytest.raises(LocationError, match="KUBEKEEP_S3_READ_TIMEOUT"):
        parse_location("s3://b/p", {"KUBEKEEP_S3_READ_TIMEOUT": "-1"})


def test_directories_and_file_urls(tmp_path: Path) -> None:
    assert parse_location(f"file://{tmp_path}") == tmp_path
    assert parse_location(str(tmp_path)) == tmp_path
    assert LocationProfile.from_location(f"file://{tmp_path}").path == str(tmp_path)


def test_every_command_takes_location_and_the_older_repo_names(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    missing = tmp_path / "not-mounted"
    monkeypatch.setenv("KUBEKEEP_PASSWORD", "pw")
    for args, env in [(["repo", "snapshots", "--location", str(missing)], {}),
                      (["repo", "snapshots", "-l", str(missing)], {}),
                      (["repo", "snapshots"], {"KUBEKEEP_LOCATION": str(missing)}),
                      (["restore-points", "--repo", str(missing)], {}),
                      (["restore-points", "-r", str(missing)], {}),
                      (["restore-points"], {"KUBEKEEP_REPOSITORY": str(missing)})]:
        result = runner.invoke(app, args, env={"COLUMNS": "200", **env})
        assert result.exit_code == 1, (args, result.output)
        assert str(missing) in result.output and "mounted" in result.output, (args, result.output)
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["repo", "snapshots", "-l", "gs://b/x"])
    assert result.exit_code == 1 and "unsupported location scheme 'gs'" in result.output
