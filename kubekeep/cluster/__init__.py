"""The only package that talks to the Kubernetes API."""

from .client import ApiResource, Cluster, has_condition, split_api_version
from .errors import ApiError
from .exec import ExecResult, exec_in_pod

__all__ = ["ApiError", "ApiResource", "Cluster", "ExecResult", "exec_in_pod", "has_condition", "split_api_version"]
