"""Typed parameters shared by the flows and the tasks they call (the Prefect UI shows their descriptions)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from kubekeep.backup.csi import MoverSpec
from tasks.restore_parameters import JsonPatchOperation


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


class SignalOptions(BaseModel):
    """How the backup flow judges each new restore point against the app's baseline (ransomware and
    anomaly signals, docs/signals.md)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(default=True, description="Score every new restore point; off: no signals are "
                                                    "computed (the point is never suspect, nor known clean).")
    threshold: float = Field(default=6.0, gt=0, description="A point whose highest robust z-score reaches this "
                                                            "is suspect.")
    baseline_points: int = Field(default=30, ge=1, le=1000, description="Previous clean (or acknowledged) points "
                                                                        "of the app in the rolling baseline.")


class CopyAfterBackup(BaseModel):
    """A DR copy run as a subflow after each successful backup (docs/dr-copy.md, "After every backup")."""

    model_config = ConfigDict(frozen=True)

    destination: str = Field(description="Name of the destination's Kubekeep Location Profile block.")
    destination_key: str | None = Field(default=None, description="Name of the Encryption Key block that opens the "
                                                                 "destination (default: the backup's key).")
    mode: Literal["replica", "independent"] = Field(default="replica", description="replica (same master key, packs "
                                                    "byte for byte) or independent (own key, re-encrypted).")
    init: bool = Field(default=False, description="Create the destination repository when it holds none.")


class JsonPatchRule(BaseModel):
    """JSON patch operations applied to the selected manifests before they reach the target."""

    model_config = ConfigDict(frozen=True)

    operations: tuple[JsonPatchOperation, ...] = Field(min_length=1, description="RFC 6902 operations, in order.")
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
