"""The only package that talks to the Kubernetes API."""

from .client import ApiResource, Cluster, has_condition, split_api_version
from .errors import ApiError

__all__ = ["ApiError", "ApiResource", "Cluster", "has_condition", "split_api_version"]
