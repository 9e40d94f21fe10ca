"""Backup: selection, collection, hooks, quiesce, volume export, restore-point records (no Prefect)."""
