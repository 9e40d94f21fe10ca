"""The one parser of a location string: every CLI command, the flows' blocks and the mover read it here.

A location is a directory (local disk or an NFS mount; ``file://path`` too) or
``s3://bucket/prefix``. For S3 the endpoint, region, keys, addressing style and
timeouts come from the environment (``KUBEKEEP_S3_ENDPOINT``, ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``KUBEKEEP_S3_ADDRESSING_STYLE``, ``KUBEKEEP_S3_CONNECT_TIMEOUT``,
``KUBEKEEP_S3_READ_TIMEOUT``, ``KUBEKEEP_S3_DEADLINE``); keys left unset fall
through to boto3's default credential chain (profiles, instance roles). A custom
endpoint (SeaweedFS, MinIO, Ceph) defaults to path-style addressing, which such
servers serve without wildcard DNS.

Nothing is created here: only ``repo init`` (or a first backup with ``init``)
creates a location; opening a missing one fails in ``Repository.open`` with a
hint (an unmounted volume, a mistyped path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from kubekeep.repo.storage import FilesystemStorage, S3Config, S3Storage, Storage

#: the environment variables that name a location (the first is the current name)
LOCATION_ENV = ("KUBEKEEP_LOCATION", "KUBEKEEP_REPOSITORY")
S3_ENDPOINT_ENV = "KUBEKEEP_S3_ENDPOINT"
S3_ADDRESSING_ENV = "KUBEKEEP_S3_ADDRESSING_STYLE"
S3_CONNECT_TIMEOUT_ENV = "KUBEKEEP_S3_CONNECT_TIMEOUT"
S3_READ_TIMEOUT_ENV = "KUBEKEEP_S3_READ_TIMEOUT"
S3_DEADLINE_ENV = "KUBEKEEP_S3_DEADLINE"
_ADDRESSING_STYLES: dict[str, Literal["auto", "virtual", "path"]] = {
    "auto": "auto", "virtual": "virtual", "path": "path"}


class LocationError(ValueError):
    """A location string (or its environment) that names no usable location; the message says why."""


def parse_location(location: str, env: Mapping[str, str] | None = None) -> Path | S3Config:
    """A directory (``file://`` prefix allowed, ``~`` expanded) or the S3 settings of ``s3://bucket/prefix``."""
    if not location:
        raise LocationError("no location given (--location, or KUBEKEEP_LOCATION)")
    if location.startswith("s3://"):
        return s3_config(location, env)
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise LocationError(f"unsupported location scheme {scheme!r} (supported: a directory path, file://, s3://)")
    return Path(location.removeprefix("file://")).expanduser()


def open_location(location: str, env: Mapping[str, str] | None = None) -> Storage:
    """The storage of a location string (see :func:`parse_location`)."""
    parsed = parse_location(location, env)
    return FilesystemStorage(parsed) if isinstance(parsed, Path) else S3Storage(parsed)


def s3_config(location: str, env: Mapping[str, str] | None = None) -> S3Config:
    """``s3://bucket/prefix`` plus endpoint, region, keys, addressing style and timeouts from ``env``."""
    env = os.environ if env is None else env
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise LocationError(f"no bucket in {location!r} (expected s3://bucket/prefix)")
    prefix = prefix.strip("/")
    endpoint = env.get(S3_ENDPOINT_ENV) or None
    raw_style = env.get(S3_ADDRESSING_ENV) or ("path" if endpoint else "auto")
    style = _ADDRESSING_STYLES.get(raw_style)
    if style is None:
        raise LocationError(f"{S3_ADDRESSING_ENV} must be auto, virtual or path, not {raw_style!r}")

    def seconds(variable: str, default: float) -> float:
        if not env.get(variable):
            return default
        try:
            value = float(env[variable])
        except ValueError:
            raise LocationError(f"{variable} must be a number of seconds, not {env[variable]!r}") from None
        if value <= 0:
            raise LocationError(f"{variable} must be more than 0 seconds, not {env[variable]!r}")
        return value

    defaults = S3Config(bucket=bucket)
    try:
        return S3Config(
            bucket=bucket, prefix=prefix + "/" if prefix else "", endpoint_url=endpoint,
            connect_timeout=seconds(S3_CONNECT_TIMEOUT_ENV, defaults.connect_timeout),
            read_timeout=seconds(S3_READ_TIMEOUT_ENV, defaults.read_timeout),
            deadline=seconds(S3_DEADLINE_ENV, defaults.deadline),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None, secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None, addressing_style=style)
    except ValueError as exc:
        raise LocationError(f"{location}: {exc}") from None
