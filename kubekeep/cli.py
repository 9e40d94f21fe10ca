"""The `kubekeep` command line: the Prefect-free commands.

Commands that run Prefect flows (demo, backup, restore) are added on top of
this app by ``flows/cli.py``, which is what the ``kubekeep`` console script
runs; the core stays importable without Prefect.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import typer

app = typer.Typer(name="kubekeep", no_args_is_help=True, add_completion=False,
                  help="Back up, restore, copy and verify Kubernetes applications.")
testbed_app = typer.Typer(no_args_is_help=True, help="The local test bed: a real control plane on 127.0.0.1.")
app.add_typer(testbed_app, name="testbed")

from kubekeep.repo.cli import repo_app  # noqa: E402 - after the app it extends

app.add_typer(repo_app, name="repo")


@testbed_app.command("build")
def testbed_build() -> None:
    """Build (or find cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok."""
    from kubekeep.testbed.controlplane import ensure_binaries

    for name, path in sorted(ensure_binaries().items()):
        typer.echo(f"{name}: {path}")


@testbed_app.command("up")
def testbed_up() -> None:
    """Start the control plane and keep it running until Ctrl-C; prints the kubeconfig path."""
    from kubekeep.testbed.controlplane import ControlPlane

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane() as cp:
        typer.echo(f"kube-apiserver: {cp.server}\nexport KUBECONFIG={cp.kubeconfig_path}\n(Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
