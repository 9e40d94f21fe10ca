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


_VERSION_HELP = ("Kubernetes version: vX.Y.Z, or 'older' for the test bed's older minor "
                 "(default: the newest the test bed builds; env KUBEKEEP_K8S_VERSION)")


def _testbed_version(version: str | None) -> str:
    from kubekeep.testbed.controlplane import VersionError, resolve_version

    try:
        return resolve_version(version)
    except VersionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@testbed_app.command("build")
def testbed_build(version: str | None = typer.Option(None, "--version", help=_VERSION_HELP)) -> None:
    """Build (or find cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok."""
    from kubekeep.testbed.controlplane import ensure_binaries

    for name, path in sorted(ensure_binaries(version=_testbed_version(version)).items()):
        typer.echo(f"{name}: {path}")


@testbed_app.command("up")
def testbed_up(version: str | None = typer.Option(None, "--version", help=_VERSION_HELP)) -> None:
    """Start the control plane and keep it running until Ctrl-C; prints the kubeconfig path."""
    from kubekeep.testbed.controlplane import ControlPlane

    chosen = _testbed_version(version)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane(version=chosen) as cp:
        typer.echo(f"Kubernetes {cp.version}, kube-apiserver: {cp.server}\n"
                   f"export KUBECONFIG={cp.kubeconfig_path}\n(Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
