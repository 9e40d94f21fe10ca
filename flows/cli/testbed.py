"""`kubekeep testbed ...`: the local test bed (a real control plane on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import signal
import threading

import typer

from .app import app
from .common import fail

testbed_app = typer.Typer(no_args_is_help=True, help="The local test bed: a real control plane on 127.0.0.1.")
app.add_typer(testbed_app, name="testbed")


_VERSION_HELP = ("Kubernetes version: vX.Y.Z, or 'older' for the test bed's older minor "
                 "(default: the newest the test bed builds; env KUBEKEEP_K8S_VERSION)")


def _testbed_version(version: str | None) -> str:
    from kubekeep.testbed.controlplane import VersionError, resolve_version

    try:
        return resolve_version(version)
    except VersionError as exc:
        fail(str(exc), 2)


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
