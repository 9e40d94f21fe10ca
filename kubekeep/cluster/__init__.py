"""The only package that talks to the Kubernetes API."""

from .client import ApiResource, Cluster, split_api_version
from .errors import ApiError

__all__ = ["ApiError", "ApiResource", "Cluster", "split_api_version"]
