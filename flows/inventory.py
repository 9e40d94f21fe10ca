"""A small flow: what objects does an application (a namespace) consist of?"""

from __future__ import annotations

from prefect import flow

from tasks.discover import count_namespace_objects


@flow(name="inventory", log_prints=True)
def inventory(kubeconfig: str | None = None, namespace: str = "default") -> dict[str, int]:
    """Count the objects of every served kind in ``namespace``."""
    return count_namespace_objects(kubeconfig, namespace)
