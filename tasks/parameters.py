"""Typed parameters shared by the flows and the tasks they call (the Prefect UI shows their descriptions)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from kubekeep.backup.csi import MoverSpec


class MoverOptions(BaseModel):
    """A mover Job: how volume data this worker cannot reach (CSI volumes, remote claims) is moved, by a Job
    next to the volume that runs ``python -m kubekeep.mover``."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    image: str = Field(description="Image of the mover Job (this project's image).")
    location: str = Field(validation_alias=AliasChoices("location", "repository"),
                          description="The location as the cluster sees it (a path inside the Job, or "
                                      "s3://bucket/prefix/); ``repository`` is accepted as an alias.")
    env_from_secrets: tuple[str, ...] = Field(
        default=(), description="Secrets whose keys become the Job's environment: KUBEKEEP_PASSWORD and the "
                                "storage credentials (AWS_ACCESS_KEY_ID, ...).")
    service_account: str | None = Field(default=None, description="Service account of the mover Job.")

    def spec(self, *args: str) -> MoverSpec:
        """The Job that runs ``kubekeep.mover <args> --location <location>``."""
        return MoverSpec(image=self.image, env_from_secrets=self.env_from_secrets,
                         service_account=self.service_account,
                         args=(*args[:1], "--location", self.location, *args[1:]))


class FilesToRestore(BaseModel):
    """Files of one volume restored to a local directory (the cluster is not touched)."""

    model_config = ConfigDict(frozen=True)

    pvc: str = Field(pattern=r"^[^/]+/[^/]+$", description="The claim in the restore point: namespace/name.")
    target: str = Field(description="Local directory on the worker to restore into.")
    path: str | None = Field(default=None, description="Only this file or directory of the volume.")


class PatchOperation(BaseModel):
    """One RFC 6902 operation."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    op: Literal["add", "remove", "replace", "move", "copy", "test"] = Field(description="The operation.")
    path: str = Field(description="JSON pointer of the field it changes (``/spec/replicas``).")
    value: Any = Field(default=None, description="The value for add, replace and test.")
    from_: str | None = Field(default=None, alias="from", description="Source pointer for move and copy.")

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op in ("add", "replace", "test"):
            spec["value"] = self.value
        if self.op in ("move", "copy"):
            spec["from"] = self.from_
        return spec


class JsonPatchRule(BaseModel):
    """JSON patch operations applied to the selected manifests before they reach the target."""

    model_config = ConfigDict(frozen=True)

    operations: tuple[PatchOperation, ...] = Field(min_length=1, description="RFC 6902 operations, in order.")
    kinds: tuple[str, ...] = Field(default=(), description="Only objects of these kinds (``Kind`` or "
                                                           "``Kind.group``); none: every kind.")
    names: tuple[str, ...] = Field(default=(), description="Only objects with these names (shell patterns).")
    namespaces: tuple[str, ...] = Field(default=(), description="Only objects in these namespaces (before "
                                                                "namespace mapping).")

    def to_spec(self) -> dict[str, Any]:
        """The restore's transform step (kubekeep.restore.transforms, ``json-patch``)."""
        selector: dict[str, Any] = {k: list(v) for k, v in (("kind", self.kinds), ("name", self.names),
                                                            ("namespace", self.namespaces)) if v}
        spec: dict[str, Any] = {"type": "json-patch", "patch": [op.to_spec() for op in self.operations]}
        if selector:
            spec["selector"] = selector
        return spec


class MigrateAction(StrEnum):
    """What a migration run does."""

    #: resolve the plan against the target and stop; nothing is written anywhere
    PLAN = "plan"
    #: plan, pre-seed, cut over, prove
    RUN = "run"
    #: un-quiesce the source (after a cutover, or one that was abandoned); the target is left as it is
    ROLLBACK = "rollback"
