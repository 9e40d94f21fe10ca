"""The cluster facts policy matching needs beyond discovery: the labels of every namespace."""

from __future__ import annotations

from kubekeep.cluster import Cluster


def namespace_labels(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Namespace name -> its labels (terminating namespaces left out, as discovery does)."""
    resource = cluster.resource_for("v1", "Namespace")
    out: dict[str, dict[str, str]] = {}
    for ns in cluster.list_pages(resource):
        if (ns.get("status") or {}).get("phase") == "Terminating":
            continue
        metadata = ns.get("metadata") or {}
        out[str(metadata["name"])] = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    return out
