"""`kubekeep copy` / `kubekeep dr-copy` as a user runs it: two S3 sites with different credentials, skips on
re-run, and one clear line for each bad input (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from kubekeep.drcopy import CopyMode, choose_points, copy_point, init_destination, present_points
from kubekeep.location import open_location
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from tests.unit.drcopy.helpers import make_point

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "Starting temporary server", "Encountered exception")


def kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess[str], phrase: str, code: int = 1) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    for noise in NOISE:
        assert noise not in output, output[-3000:]
    assert phrase in output, output[-3000:]


def test_copy_between_two_s3_sites_with_their_own_credentials(prefect_api: str, two_sites,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    site_a, site_b = two_sites
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f.bin").write_bytes(os.urandom(300_000))
    src = Repository.init(FilesystemStorage(tmp_path / "a", create=True), passphrase="pw-a", kdf=KdfParams.cheap())
    make_point(src, vol, "shop-1")
    prefix = uuid.uuid4().hex[:8]
    env = {"PREFECT_API_URL": prefect_api, "KUBEKEEP_PASSWORD": "pw-a", "KUBEKEEP_TEST_CHEAP_KDF": "1",
           "COLUMNS": "250", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs"),
           **site_a.cli_environment(),
           **{f"KUBEKEEP_TO_{k}": v for k, v in site_b.cli_environment().items()}}
    a_loc = f"s3://{site_a.plain_bucket}/{prefix}/"
    b_loc = f"s3://{site_b.plain_bucket}/{prefix}/"

    # site A holds a replica of the filesystem repository (made by the core: this test is about the command)
    init_destination(src, open_location(a_loc, site_a.cli_environment()), CopyMode.REPLICA, passphrase="pw-a",
                     key_wrapper=None, kdf=KdfParams.cheap()).close()
    site_a_repo = Repository.open(open_location(a_loc, site_a.cli_environment()), passphrase="pw-a")
    (point,) = choose_points(src, all_points=True)
    assert copy_point(src, site_a_repo, point, CopyMode.REPLICA).status == "copied"
    site_a_repo.close()

    # site A (the plain variables) -> site B (KUBEKEEP_TO_*: another endpoint, other keys), independent
    result = kubekeep(["copy", "--from", a_loc, "--to", b_loc, "--app", "shop", "--mode", "independent", "--init",
                       "--limit-upload", "100"], {**env, "KUBEKEEP_TO_PASSWORD": "pw-b"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("shop-1: copied (") and "verified" in result.stdout, result.stdout
    site_b_repo = Repository.open(open_location(b_loc, site_b.cli_environment()), passphrase="pw-b")
    assert list(present_points(site_b_repo)) == ["shop-1"]
    assert not site_b_repo.shares_master_key(src)
    site_b_repo.close()
    src.close()


def test_bad_inputs_get_one_clear_line_and_write_nothing(prefect_api: str, two_sites,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    site_a, site_b = two_sites
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f.bin").write_bytes(os.urandom(1000))
    src = Repository.init(FilesystemStorage(tmp_path / "a", create=True), passphrase="pw-a", kdf=KdfParams.cheap())
    make_point(src, vol, "shop-1")
    b_loc = f"s3://{site_b.plain_bucket}/{uuid.uuid4().hex[:8]}/"
    init_destination(src, open_location(b_loc, site_b.cli_environment()), CopyMode.REPLICA, passphrase="pw-b",
                     key_wrapper=None, kdf=KdfParams.cheap()).close()
    src.close()
    a_loc = str(tmp_path / "a")
    env = {"PREFECT_API_URL": prefect_api, "KUBEKEEP_PASSWORD": "pw-a", "KUBEKEEP_TEST_CHEAP_KDF": "1",
           "COLUMNS": "250", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs"),
           **{f"KUBEKEEP_TO_{k}": v for k, v in site_b.cli_environment().items()}}
    one_line_error(kubekeep(["copy", "--from", a_loc, "--to", b_loc], env), "exactly one of", code=2)
    one_line_error(kubekeep(["copy", "--from", a_loc, "--to", b_loc, "--all"], {**env, "KUBEKEEP_TO_PASSWORD": "no"}),
                   "wrong passphrase")
    one_line_error(kubekeep(["copy", "--from", a_loc, "--to", str(tmp_path / "nowhere"), "--all"], env),
                   "--init")
    assert not (tmp_path / "nowhere").exists()
