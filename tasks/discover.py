"""Discovery tasks: thin wrappers over kubekeep.cluster."""

from __future__ import annotations

from prefect import task

from kubekeep.cluster import Cluster
from kubekeep.cluster.collect import namespaced_objects


@task(retries=2, retry_delay_seconds=2)
def count_namespace_objects(kubeconfig: str | None, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with Cluster.from_kubeconfig(kubeconfig) as cluster:
        for obj in namespaced_objects(cluster, namespace):
            key = f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"]
            counts[key] = counts.get(key, 0) + 1
    return counts
