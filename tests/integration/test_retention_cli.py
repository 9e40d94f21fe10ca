"""`kubekeep forget` and `kubekeep prune` as a user runs them, against a real repository and a real
Prefect API: the dry run's JSON lists every point with keep/drop and the rule or reason, a plan over
the approval share needs --yes (one line, nothing deleted), --yes deletes exactly the plan's drops,
prune frees their space (measured) and what is kept still restores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubekeep.catalog import Catalog, list_restore_points
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from tests.integration.retention_points import CHUNKER, PACK_SIZE, WrittenPoint, data_bytes, digest_tree, write_point

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "cli-pass"
START = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


@pytest.fixture
def cli_env(prefect_api: str, tmp_path: Path) -> dict[str, str]:
    return {"PREFECT_API_URL": prefect_api, "KUBEKEEP_PASSWORD": PASSWORD, "KUBEKEEP_TEST_CHEAP_KDF": "1",
            "COLUMNS": "250", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}


@pytest.fixture
def location(tmp_path: Path) -> tuple[Path, list[WrittenPoint]]:
    """Ten daily points of app shop (day 6 failed) and three of app blog, written like a backup writes them."""
    path = tmp_path / "location"
    repo = Repository.init(FilesystemStorage(path, create=True), passphrase=PASSWORD, kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    points = [write_point(repo, catalog, tmp_path, app="shop", started=START + timedelta(days=n), seed=n,
                          status="failed" if n == 6 else "succeeded") for n in range(10)]
    points += [write_point(repo, catalog, tmp_path, app="blog", started=START + timedelta(days=n, hours=1),
                           seed=100 + n) for n in range(3)]
    repo.close()
    return path, points


def _open(path: Path, tmp_path: Path) -> tuple[Repository, Catalog]:
    repo = Repository.open(FilesystemStorage(path), passphrase=PASSWORD)
    return repo, Catalog(repo.storage, cache_dir=tmp_path / "cache-check", codec=repo.catalog_codec())


def _json(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_forget_dry_run_json_lists_every_point_with_keep_or_drop_and_why(
        cli_env: dict[str, str], location: tuple[Path, list[WrittenPoint]], tmp_path: Path) -> None:
    path, points = location
    doc = _json(_kubekeep(["forget", "-l", str(path), "--keep-daily", "3", "--keep-weekly", "2",
                           "--timezone", "Europe/Berlin", "--dry-run", "--json"], cli_env))
    assert doc["approval"] == "dry run" and "expired" not in doc
    listed = {p["id"]: p for g in doc["plan"]["groups"] for p in g["points"]}
    assert set(listed) == {p.id for p in points}
    for entry in listed.values():
        assert entry["action"] in ("keep", "drop")
        assert entry["reasons"], entry
        assert all(r["rule"] and r["detail"] for r in entry["reasons"])
    shop = {p.id: listed[p.id] for p in points if p.app == "shop"}
    by_day = [shop[p.id] for p in points if p.app == "shop"]
    # Mar 1 (Sunday, ISO week 9) .. Mar 10: days 9, 8, 7 by the daily rule; weeks 11 and 10 by their newest
    # succeeded points (days 9 and 7); day 6 failed: kept as the newest failed point, filling no bucket
    assert [e["action"] for e in by_day] == ["drop"] * 6 + ["keep"] * 4, by_day
    assert {r["rule"] for r in by_day[9]["reasons"]} >= {"daily"}
    assert any(r["rule"] == "newest-failed" for r in by_day[6]["reasons"]), by_day[6]
    assert any(r["rule"] == "weekly" and "2026-W10" in r["detail"] for r in by_day[7]["reasons"]), by_day[7]
    assert any(r["rule"] == "weekly" and "2026-W11" in r["detail"] for r in by_day[9]["reasons"]), by_day[9]
    assert all(r["rule"] for e in by_day if e["action"] == "drop" for r in e["reasons"])
    # nothing was deleted
    repo, catalog = _open(path, tmp_path)
    try:
        assert {p.id for p in list_restore_points(catalog, statuses=None)} == {p.id for p in points}
    finally:
        repo.close()


def test_forget_over_the_approval_share_needs_yes_then_deletes_the_drops_and_prune_frees_space(
        cli_env: dict[str, str], location: tuple[Path, list[WrittenPoint]], tmp_path: Path) -> None:
    path, points = location
    refused = _kubekeep(["forget", "-l", str(path), "--app", "shop", "--keep-last", "2"], cli_env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "approve it" in lines[0] and "shop (7 of 10)" in lines[0], refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    repo, catalog = _open(path, tmp_path)
    before_bytes = data_bytes(repo)
    repo.close()

    doc = _json(_kubekeep(["forget", "-l", str(path), "--app", "shop", "--keep-last", "2", "--yes", "--prune",
                           "--json"], cli_env))
    shop = [p for p in points if p.app == "shop"]
    kept = {shop[9].id, shop[8].id, shop[6].id}  # the two newest succeeded, and the newest failed
    dropped = {p.id for p in shop} - kept
    assert doc["approval"] == "given"
    assert set(doc["expired"]["deleted"]) == dropped
    assert doc["prune"]["packs_deleted"] + doc["prune"]["packs_repacked"] > 0 and doc["prune"]["bytes_freed"] > 0

    repo, catalog = _open(path, tmp_path)
    try:
        remaining = {p.id for p in list_restore_points(catalog, statuses=None)}
        assert remaining == kept | {p.id for p in points if p.app == "blog"}
        after_bytes = data_bytes(repo)
        # seven points with ~200 kB of incompressible unique data each are gone
        assert before_bytes - after_bytes >= 7 * 150_000, (before_bytes, after_bytes)
        assert repo.check(read_data=True).ok
        for point in [p for p in points if p.id in remaining]:
            target = tmp_path / f"restore-{point.id}"
            repo.restore(point.volume_snapshot, target)
            assert digest_tree(target) == point.digest
    finally:
        repo.close()

    # applying the same rules again drops nothing more
    again = _json(_kubekeep(["forget", "-l", str(path), "--app", "shop", "--keep-last", "2", "--json"], cli_env))
    assert again["approval"] == "not needed" and again["expired"]["deleted"] == []


def test_forget_and_prune_errors_are_one_line(cli_env: dict[str, str], tmp_path: Path,
                                              location: tuple[Path, list[WrittenPoint]]) -> None:
    path, _ = location
    cases = [
        (["forget", "-l", str(path)], "give at least one keep rule"),
        (["forget", "-l", str(path), "--keep-daily", "2", "--timezone", "Mars/Olympus"], "unknown timezone"),
        (["forget", "-l", str(path), "--keep-within", "3 fortnights"], "keep_within"),
        (["forget", "-l", str(tmp_path / "nowhere"), "--keep-daily", "2"], "does not exist"),
        (["prune", "-l", str(tmp_path / "nowhere")], "does not exist"),
    ]
    for args, phrase in cases:
        result = _kubekeep(args, cli_env)
        output = result.stdout + result.stderr
        assert result.returncode != 0, (args, output)
        assert "Traceback" not in output, (args, output)
        assert phrase in output, (args, output)
