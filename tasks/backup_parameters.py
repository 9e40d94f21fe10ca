"""Typed parameters of the backup flow: what the Prefect UI renders as forms (docs/ui.md).

Hooks and NFS mounts are lists of small models with a description on every field; the older
plain-data forms (a hook rule as kubekeep.backup.hooks reads it, ``{"server:/export": "/mnt"}``)
are still accepted, so Python callers and the CLI keep working. The core validates the meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .restore_parameters import Strings


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _command(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class HookCommand(_Model):
    """One command run in a container of each matching pod."""

    command: Annotated[list[str], BeforeValidator(_command)] = Field(
        min_length=1, description='The argv, one word per item, e.g. /bin/sh, -c, "pg_ctl checkpoint".')
    container: str | None = Field(default=None, description="Container to run it in (empty: the pod's first).")
    timeout: float | str = Field(default=30.0, description="Seconds, or a duration such as 30s, 2m, 1h.")
    on_error: Literal["fail", "continue"] = Field(
        default="fail", description="fail: stop the backup (post hooks still run); continue: record and go on.")

    def to_spec(self) -> dict[str, Any]:
        return {"command": list(self.command), "container": self.container, "timeout": self.timeout,
                "on_error": self.on_error}


class HookRuleParameter(_Model):
    """Commands run before (pre) and after (post) the volumes are read, in the pods a rule selects
    (pod annotations add more; docs/backup.md)."""

    name: str = Field(min_length=1, description="Name of the rule (in the restore point's hook record).")
    pre: list[HookCommand] = Field(default=[], description="Run before the volumes are read (flush, freeze).")
    post: list[HookCommand] = Field(default=[], description="Run after (thaw); always once pre hooks ran.")
    namespaces: Strings = Field(default=[], description="Only pods in these namespaces (shell patterns; "
                                                        "empty: every namespace of the backup).")
    label_selector: str | None = Field(default=None, description="Only pods with these labels (app=db,...).")

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "pre": [h.to_spec() for h in self.pre], "post": [h.to_spec() for h in self.post],
                "namespaces": list(self.namespaces), "label_selector": self.label_selector}


class NfsMount(_Model):
    """Where the worker has an NFS export mounted (volumes on it are read from there)."""

    export: str = Field(min_length=1, description="The export as PersistentVolumes name it: server:/path.")
    mount: str = Field(min_length=1, description="Its mount point on the worker, e.g. /mnt/nfs.")


def _mounts(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{"export": k, "mount": v} for k, v in value.items()]
    return value


HookRules = Annotated[list[HookRuleParameter], BeforeValidator(lambda v: v or [])]
NfsMounts = Annotated[list[NfsMount], BeforeValidator(_mounts)]
