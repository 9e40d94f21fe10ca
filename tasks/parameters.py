"""Typed parameters shared by the flows and the tasks they call (the Prefect UI shows their descriptions)."""

from __future__ import annotations

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
