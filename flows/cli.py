"""Entry point of the `kubekeep` console script: the core CLI plus the commands that run flows."""

from __future__ import annotations

import typer

from kubekeep.cli import app


@app.command("demo")
def demo(keep: bool = typer.Option(False, help="Keep the control plane running after the demo (Ctrl-C ends).")) -> None:
    """Start the local test bed, create a sample app and run the main job against it."""
    from flows.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


def main() -> None:
    app()
