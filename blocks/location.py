"""LocationProfile: where restore points are stored (a filesystem/NFS path or an S3 bucket)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from kubekeep.location import parse_location
from kubekeep.repo.storage import FilesystemStorage, RetentionMode, Storage
from kubekeep.repo.storage.s3 import S3Config, S3Storage


class LocationProfile(Block):
    """A backup location. On S3 with Object Lock, every object of a restore point is retained
    (COMPLIANCE or GOVERNANCE) for ``object_lock_days`` after it is written."""

    _block_type_name = "Kubekeep Location Profile"
    _block_type_slug = "kubekeep-location-profile"

    kind: Literal["filesystem", "s3"] = Field(default="filesystem", description="Storage backend.")
    path: str | None = Field(default=None, description="Directory (local disk or an NFS mount) for kind=filesystem.")
    bucket: str | None = Field(default=None, description="S3 bucket for kind=s3.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, ending with '/'.")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint (empty for AWS).")
    region: str | None = Field(default=None, description="S3 region (empty: the endpoint's default).")
    access_key_id: SecretStr | None = Field(default=None, description="S3 access key (empty: boto3's chain).")
    secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    session_token: SecretStr | None = Field(default=None, description="S3 session token (temporary credentials).")
    addressing_style: Literal["auto", "virtual", "path"] = Field(
        default="auto", description="S3 addressing: path style for most self-hosted servers.")
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] | None = Field(
        default=None, description="Require Object Lock retention of this mode on every object.")
    object_lock_days: int = Field(default=0, ge=0, le=36500, description="Retention in days when object_lock_mode "
                                  "is set (0 to 36500).")
    connect_timeout: float = Field(default=5.0, gt=0, description="S3: seconds to establish a connection.")
    read_timeout: float = Field(default=20.0, gt=0, description="S3: seconds to wait for the next bytes of an answer.")
    deadline: float = Field(default=30.0, gt=0, description="S3: seconds one request may take, retries included.")

    @model_validator(mode="after")
    def _check(self) -> LocationProfile:
        if self.kind == "filesystem" and not self.path:
            raise ValueError("a filesystem location needs a path")
        if self.kind == "s3" and not self.bucket:
            raise ValueError("an S3 location needs a bucket")
        if self.object_lock_mode and self.kind != "s3":
            raise ValueError("Object Lock needs an S3 location")
        if self.object_lock_mode and self.object_lock_days < 1:
            raise ValueError("object_lock_days must be at least 1 when object_lock_mode is set")
        return self

    @classmethod
    def from_location(cls, location: str, *, object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] | None = None,
                      object_lock_days: int = 0, env: Mapping[str, str] | None = None) -> LocationProfile:
        """A profile from a location string, parsed by the one parser (kubekeep.location; S3 settings from
        the environment). Raises ValueError (LocationError, or pydantic's) with a one-line reason."""
        parsed = parse_location(location, env)
        lock = {"object_lock_mode": object_lock_mode, "object_lock_days": object_lock_days}
        if isinstance(parsed, Path):
            return cls.model_validate({"kind": "filesystem", "path": str(parsed), **lock})
        return cls.model_validate({
            "kind": "s3", "bucket": parsed.bucket, "prefix": parsed.prefix, "endpoint_url": parsed.endpoint_url,
            "region": parsed.region, "access_key_id": parsed.access_key, "secret_access_key": parsed.secret_key,
            "session_token": parsed.session_token, "addressing_style": parsed.addressing_style,
            "connect_timeout": parsed.connect_timeout, "read_timeout": parsed.read_timeout,
            "deadline": parsed.deadline, **lock})

    def storage(self) -> Storage:
        if self.kind == "filesystem":
            assert self.path is not None
            return FilesystemStorage(self.path)
        assert self.bucket is not None
        return S3Storage(S3Config(
            bucket=self.bucket, prefix=self.prefix, endpoint_url=self.endpoint_url, region=self.region,
            access_key=self.access_key_id.get_secret_value() if self.access_key_id else None,
            secret_key=self.secret_access_key.get_secret_value() if self.secret_access_key else None,
            session_token=self.session_token.get_secret_value() if self.session_token else None,
            addressing_style=self.addressing_style, connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout, deadline=self.deadline))

    def retention(self, now: datetime | None = None) -> tuple[RetentionMode, datetime] | None:
        if not self.object_lock_mode:
            return None
        start = now or datetime.now(UTC)
        return RetentionMode(self.object_lock_mode), start + timedelta(days=self.object_lock_days)

    def describe(self) -> str:
        if self.kind == "filesystem":
            return f"file://{self.path}"
        return f"s3://{self.bucket}/{self.prefix}"
