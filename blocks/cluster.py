"""ClusterConnection: how the worker reaches a cluster's API."""

from __future__ import annotations

import yaml
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from kubekeep.cluster import Cluster


class ClusterConnection(Block):
    """A kubeconfig (inline, as a secret, or a path on the worker), a context, or in-cluster credentials."""

    _block_type_name = "Kubekeep Cluster Connection"
    _block_type_slug = "kubekeep-cluster-connection"

    name: str | None = Field(default=None, description="The cluster's name in restore points, reports and the "
                             "catalog (empty: the kubeconfig context, else the API server URL).")
    kubeconfig: SecretStr | None = Field(default=None, description="Kubeconfig content (YAML or JSON).")
    kubeconfig_path: str | None = Field(default=None, description="Kubeconfig file on the worker.")
    context: str | None = Field(default=None, description="Kubeconfig context (empty: the current one).")
    in_cluster: bool = Field(default=False, description="Use the pod's service account.")

    def connect(self) -> Cluster:
        if self.in_cluster:
            cluster = Cluster.in_cluster()
        elif self.kubeconfig is not None:
            cluster = Cluster.from_kubeconfig_dict(yaml.safe_load(self.kubeconfig.get_secret_value()),
                                                   context=self.context)
        else:
            cluster = Cluster.from_kubeconfig(self.kubeconfig_path, context=self.context)
        if self.name:
            cluster.name = self.name
        return cluster

    def cluster_name(self) -> str:
        """The name reports and restore points give this cluster: ``name``, else the kubeconfig context,
        else the API server URL (``in-cluster`` inside a pod)."""
        if self.name:
            return self.name
        with self.connect() as cluster:
            return cluster.name
