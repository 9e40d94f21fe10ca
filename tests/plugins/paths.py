"""Where the tests find the repository root and the project's shared/ directory.

shared/ lives beside the checkout (``<repo>/../shared``), wherever the checkout
is; ``KUBEKEEP_SHARED_DIR`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "kubekeep").is_dir():
            return parent
    raise RuntimeError(f"no repository root (a directory with pyproject.toml and kubekeep/) above {here}")


REPO_ROOT = _repo_root()


def shared_dir() -> Path:
    explicit = os.environ.get("KUBEKEEP_SHARED_DIR")
    return Path(explicit) if explicit else REPO_ROOT.parent / "shared"
