"""The `kubekeep` command line: one command tree (``kubekeep --help``), the console script ``main``.

Each module below adds its commands to the root app (flows/cli/app.py) when imported; a new command
group is a new module here plus one line below. Commands that run flows import Prefect only when they
run; ``repo`` and ``testbed`` never do.
"""

from . import (  # noqa: F401 - each registers its commands
    apps,
    backup,
    catalog,
    demo,
    drcopy,
    migrate,
    policy,
    repo,
    restore,
    retention,
    signals,
    testbed,
    ui,
    verify,
)
from .app import app, finish_tree, main

finish_tree(app)

__all__ = ["app", "main"]
