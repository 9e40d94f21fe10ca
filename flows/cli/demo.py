"""`kubekeep demo`: the README's first command (flows/demo.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import Flag, app


@app.command("demo")
def demo(keep: Annotated[bool, Flag("--keep", help="Keep the control plane running after the demo "
                                                          "(Ctrl-C ends).")] = False) -> None:
    """Start the local test bed, create a sample app and run the main job against it."""
    from flows.demo import run_demo

    from .common import session

    with session("demo", flows=True):
        code = run_demo(keep=keep)
    raise typer.Exit(code)
