from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.repo import repo_app
from kubekeep.location import open_location

from .conftest import snapshot_of


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("KUBEKEEP_TEST_CHEAP_KDF", "1")
    monkeypatch.setenv("KUBEKEEP_PASSWORD", "pw-one")
    monkeypatch.delenv("KUBEKEEP_REPOSITORY", raising=False)
    return CliRunner()


def test_cli_lifecycle(runner: CliRunner, tmp_path: Path, source: Path) -> None:
    repo = str(tmp_path / "repo")
    r = runner.invoke(repo_app, ["init", "--repo", repo])
    assert r.exit_code == 0, r.output
    r = runner.invoke(repo_app, ["backup", "--repo", repo, str(source), "--tag", "t1", "--meta", "ns=shop"])
    assert r.exit_code == 0, r.output
    sid = r.stdout.strip().splitlines()[-1]
    r = runner.invoke(repo_app, ["backup", "--repo", repo, "--stdin-name", "manifests"], input=b'{"kind":"Pod"}\n')
    assert r.exit_code == 0, r.output
    r = runner.invoke(repo_app, ["snapshots", "--repo", repo])
    assert r.exit_code == 0 and sid[:12] in r.stdout
    r = runner.invoke(repo_app, ["restore", "--repo", repo, sid, "--target", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert snapshot_of(tmp_path / "out") == snapshot_of(source)
    r = runner.invoke(repo_app, ["restore", "--repo", repo, "latest", "--stream", "manifests",
                                 "--target", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.json").read_bytes() == b'{"kind":"Pod"}\n'
    for cmd in (["check", "--read-data"], ["stats"], ["repair-index"], ["prune", sid, "--wait", "0"]):
        r = runner.invoke(repo_app, [cmd[0], "--repo", repo, *cmd[1:]])
        assert r.exit_code == 0, (cmd, r.output)
    pwfile = tmp_path / "pw2"
    pwfile.write_text("pw-two\n")
    r = runner.invoke(repo_app, ["key", "add", "--repo", repo, "--new-password-file", str(pwfile)])
    assert r.exit_code == 0, r.output
    new_slot = r.stdout.split()[-1]
    r = runner.invoke(repo_app, ["key", "list", "--repo", repo, "--password-file", str(pwfile)])
    assert r.exit_code == 0 and new_slot in r.stdout
    old_slot = next(line.split()[0] for line in r.stdout.splitlines() if line and new_slot not in line)
    r = runner.invoke(repo_app, ["key", "remove", "--repo", repo, old_slot, "--password-file", str(pwfile)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(repo_app, ["snapshots", "--repo", repo])  # old passphrase from env no longer works
    assert r.exit_code == 1 and "wrong passphrase" in r.output


def test_cli_bad_input(runner: CliRunner, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    r = runner.invoke(repo_app, ["snapshots", "--repo", str(repo)])
    assert r.exit_code == 1 and "does not exist" in r.output
    assert not repo.exists()
    r = runner.invoke(repo_app, ["init", "--repo", "s3x://bucket"])
    assert r.exit_code == 1 and "unsupported location" in r.output
    assert runner.invoke(repo_app, ["init", "--repo", str(repo)]).exit_code == 0
    before = sorted(p.name for p in repo.rglob("*"))
    r = runner.invoke(repo_app, ["backup", "--repo", str(repo), str(tmp_path / "missing")])
    assert r.exit_code == 1 and "not a directory" in r.output
    r = runner.invoke(repo_app, ["backup", "--repo", str(repo), str(tmp_path), "--meta", "novalue"])
    assert r.exit_code == 1 and "key=value" in r.output
    r = runner.invoke(repo_app, ["snapshots", "--repo", str(repo)], env={"KUBEKEEP_PASSWORD": "wrong"})
    assert r.exit_code == 1 and "wrong passphrase" in r.output
    r = runner.invoke(repo_app, ["restore", "--repo", str(repo), "abcdef", "--target", str(tmp_path / "o")])
    assert r.exit_code == 1 and "not found" in r.output
    r = runner.invoke(repo_app, ["init", "--repo", str(repo)])
    assert r.exit_code == 1 and "already holds a repository" in r.output
    assert sorted(p.name for p in repo.rglob("*")) == before


def test_open_location_is_the_one_parser(tmp_path: Path) -> None:
    storage = open_location(f"file://{tmp_path}")
    assert storage.url.startswith("file://")
