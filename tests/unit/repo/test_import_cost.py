"""A process that never talks to S3 does not pay for importing boto3 (~0.9 s of CPU per process on this
machine: every CLI call, every DR copy, every mover)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_repository_and_the_blocks_import_without_boto3() -> None:
    probe = ("import sys, kubekeep.repo, kubekeep.location, kubekeep.drcopy, blocks; "
             "print(sorted(m for m in ('boto3', 'botocore.config', 's3transfer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_copy_core_imports_without_the_catalogs_pyarrow() -> None:
    """The copy process reads and writes a repository only (the flow's catalog task writes the rows):
    pyarrow, pyarrow.compute and pyarrow.dataset cost ~0.3-0.5 s of its fixed start-up."""
    probe = ("import sys, kubekeep.location, kubekeep.drcopy, kubekeep.repo.repository, kubekeep.restorepoint; "
             "from kubekeep.drcopy import CopyMode, choose_points, copy_point, init_destination, present_points; "
             "from kubekeep.restorepoint import read_restore_point, RestorePointNotFoundError; "
             "print(sorted(m for m in ('pyarrow', 'kubekeep.catalog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
