"""`kubekeep restore-points ack ID` (the name issue 13 documents) and `kubekeep signals ack ID` are one command:
the same checks, the same one-line errors; `kubekeep restore-points -l LOC` still lists. A real repository on a
filesystem location; the acknowledgement of a truly suspect point is tested end to end in
test_signals_flow.py (test_ack_clears_the_suspect_point_and_it_joins_the_baseline)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from kubekeep.catalog import Catalog
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from tests.integration.retention_points import CHUNKER, PACK_SIZE, write_point

ROOT = Path(__file__).resolve().parents[2]


def _kubekeep(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEKEEP_PASSWORD": "ack-pass", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs"),
           "COLUMNS": "250"}
    env.pop("KUBEKEEP_LOCATION", None)
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_restore_points_ack_is_signals_ack(tmp_path: Path) -> None:
    path = tmp_path / "location"
    repo = Repository.init(FilesystemStorage(path, create=True), passphrase="ack-pass", kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "cache", codec=repo.catalog_codec())
    point = write_point(repo, catalog, tmp_path, app="shop", started=datetime(2026, 11, 1, 2, tzinfo=UTC), seed=1)
    repo.close()
    loc = str(path)

    # a point that was never scored: both names refuse it with the same one line
    documented = _one_line(_kubekeep(["restore-points", "ack", point.id, "-l", loc, "--reason", "drill"], tmp_path))
    assert documented.startswith("restore-points ack failed: ")
    assert f"restore point {point.id} has no signals" in documented
    old_name = _one_line(_kubekeep(["signals", "ack", point.id, "-l", loc], tmp_path))
    assert old_name.startswith("signals ack failed: ")
    assert old_name.split(" (details:")[0].removeprefix("signals") == documented.split(" (details:")[0].removeprefix(
        "restore-points")
    # the listing is still `restore-points -l LOC`
    listed = _kubekeep(["restore-points", "-l", loc, "--app", "shop"], tmp_path)
    assert listed.returncode == 0 and point.id in listed.stdout, listed.stdout + listed.stderr
    usage = _kubekeep(["restore-points"], tmp_path)
    assert usage.returncode == 2 and "-l LOCATION" in usage.stderr and "Traceback" not in usage.stderr
