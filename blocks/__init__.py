"""Kubekeep."""
