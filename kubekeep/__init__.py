"""Kubekeep: application-consistent backup, DR, migration and restore verification for Kubernetes."""
__version__ = "0.1.0"
