"""Fixtures of the ui unit tests: the catalog tests' real catalog on a local directory."""

from tests.unit.catalog.conftest import catalog, storage

__all__ = ["catalog", "storage"]
