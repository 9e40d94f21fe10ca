"""`kubekeep apps`: what auto-discovery finds on the cluster."""

from __future__ import annotations

from rich.table import Table

from .app import app
from .common import ContextOpt, KubeconfigOpt, VerboseOpt, cluster_connection, out, session


@app.command("apps")
def apps_cmd(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, verbose: VerboseOpt = False) -> None:
    """Discover the cluster's applications: namespaces, Helm releases, part-of label groups."""
    with session("apps", verbose=verbose):
        from kubekeep.backup.scope import discover_applications

        with cluster_connection(kubeconfig, context).connect() as cluster:
            found = discover_applications(cluster)
    table = Table("application", "source", "namespaces", "selector")
    for a in found:
        table.add_row(a.name, a.source, ", ".join(a.namespaces), a.label_selector or "")
    out.print(table)
