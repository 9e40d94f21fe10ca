"""S3-compatible backend (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

How the contract in base.py maps onto S3 (docs/storage.md has the long form):

- put-if-absent is a conditional write, ``If-None-Match: *`` on PutObject and
  on CompleteMultipartUpload; the server answers 412 when the key exists.
  Servers that reject the header (501/NotImplemented) make the backend fall
  back to HEAD-then-PUT, which has a race window (see docs/storage.md);
  ``conditional_writes=False`` forces that fallback.
- Atomicity: one PutObject, or a multipart upload that only becomes visible
  on CompleteMultipartUpload; a failed multipart upload is aborted.
- Integrity: every body (and every part) carries Content-MD5, which the server
  verifies. botocore's own CRC32 on top (its default since 1.36) is turned
  off, on upload and on download: it hashed every byte a second time, and
  everything Kubekeep reads back is authenticated by its own keys (AEAD).
- Retention: Object Lock (mode + retain-until date) on PUT and via
  PutObjectRetention, only ever extended. In a versioned (Object Lock) bucket
  ``delete`` removes every version of the key, oldest first, so the key stays
  readable when a locked version refuses.
- Errors: botocore retries throttling, 5xx and connection errors itself
  (standard retry mode); what still fails is classified here once.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
import io
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, cast

import botocore.exceptions

from .base import (
    DeadlineExceededError,
    ObjectExistsError,
    ObjectInfo,
    ObjectLockedError,
    ObjectNotFoundError,
    ObjectVersion,
    Retention,
    RetentionMode,
    RetentionNotSupportedError,
    Storage,
    StorageError,
    TransientStorageError,
    check_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
else:
    S3Client = Any

MiB = 1024 * 1024
_MIN_PART_SIZE = 5 * MiB
_MAX_PARTS = 10_000

# Error codes worth a retry. botocore's standard retry mode already retried
# most of them; they stay transient so that an outer retry (a Prefect task,
# RetryingStorage) may try again later.
_TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded", "EC2ThrottledException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalServerError",
    "OperationAborted", "ConditionalRequestConflict",
    # the body arrived damaged; the data in memory is fine, so sending it again can succeed
    "BadDigest", "XAmzContentChecksumMismatch", "IncompleteBody",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchVersion"})
_NO_LOCK_CONFIG_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"})
_UNSUPPORTED_CONDITION_CODES = frozenset({"NotImplemented", "501"})
_TRANSIENT_BOTOCORE = (
    botocore.exceptions.ConnectionError,  # endpoint unreachable, connect/read timeouts, resets
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.FlexibleChecksumError,  # response body did not match its checksum
)


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach a bucket. Credentials left empty use boto3's default chain."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    verify_tls: bool | str | None = None
    #: objects at least this large go up as multipart uploads
    multipart_threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    #: attempts per request, botocore's standard retry mode (first try included)
    max_attempts: int = 5
    #: seconds to establish a connection
    connect_timeout: float = 5.0
    #: seconds a request may wait for the next bytes of an answer (not a bound on a whole transfer)
    read_timeout: float = 20.0
    #: seconds one request may take with its retries: no new attempt starts that could end past it
    deadline: float = 30.0
    #: uploads of at least ``transfer_size`` bytes (a pack, a multipart part, completing a multipart
    #: upload) wait for the server's answer after sending their body: a loaded server may take
    #: longer to store megabytes than to answer a metadata request, so they get their own bounds
    transfer_read_timeout: float = 120.0
    transfer_deadline: float = 300.0
    transfer_size: int = MiB
    max_pool_connections: int = 16
    #: use If-None-Match for put-if-absent; False forces HEAD-then-PUT (racy)
    conditional_writes: bool = True

    def __post_init__(self) -> None:
        if self.prefix and (self.prefix.startswith("/") or not self.prefix.endswith("/")):
            raise ValueError(f"S3 key prefix must be relative and end with '/': {self.prefix!r}")
        if self.part_size < _MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {_MIN_PART_SIZE} bytes")
        if self.multipart_threshold < self.part_size:
            raise ValueError("multipart_threshold must be at least part_size")
        if min(self.connect_timeout, self.read_timeout, self.deadline, self.transfer_read_timeout,
               self.transfer_deadline) <= 0:
            raise ValueError("S3 timeouts and deadlines must be positive")

    def make_session(self) -> Any:
        """A boto3 session with these credentials; clients made from one session share its loaded models."""
        # imported here: boto3 costs ~0.9 s of CPU to import, which a process that never talks to S3
        # (a filesystem backup, most CLI calls, the mover) should not pay
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            region_name=self.region,
        )

    def make_client(self, *, transfer: bool = False, session: Any = None) -> S3Client:
        """A boto3 client; ``transfer`` gives it the bounds for large uploads. A client made from
        ``session`` (:meth:`make_session`) shares its data: each new session parses botocore's endpoint
        and S3 models again, ~12 MiB of Python objects per client."""
        from botocore.config import Config

        read_timeout = self.transfer_read_timeout if transfer else self.read_timeout
        if session is None:
            session = self.make_session()
        config = Config(
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=self.max_pool_connections,
            s3={"addressing_style": self.addressing_style},
            # every upload names its own checksum (put: CRC32; multipart parts: Content-MD5), which the server
            # verifies, and Kubekeep authenticates what it reads: botocore's automatic CRC32 of each body, both
            # ways, on top of that was a second hash of every byte (11 % of a replica copy's samples to S3)
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client: S3Client = session.client(
            "s3", endpoint_url=self.endpoint_url, verify=self.verify_tls, config=config
        )
        deadline = _Deadline(self.transfer_deadline if transfer else self.deadline, read_timeout,
                             self.endpoint_url or "the S3 endpoint")
        client.meta.events.register("before-call.s3", deadline.start)
        client.meta.events.register_first("needs-retry.s3", deadline.check)
        return client


class _DeadlineReached(botocore.exceptions.BotoCoreError):
    fmt = "{message}"


class _Deadline:
    """Bounds one API call with its botocore retries: ``before-call`` notes the start; before a
    retry, ``needs-retry`` gives up when another attempt could end past the deadline."""

    def __init__(self, seconds: float, read_timeout: float, endpoint: str) -> None:
        self.seconds = seconds
        self.read_timeout = read_timeout
        self.endpoint = endpoint

    def start(self, context: dict[str, Any], **_: Any) -> None:
        context["kubekeep_started"] = time.monotonic()

    def check(self, response: Any = None, caught_exception: Exception | None = None,
              request_dict: dict[str, Any] | None = None, **_: Any) -> None:
        failed = caught_exception is not None or (
            response is not None and getattr(response[0], "status_code", 0) in (429, 500, 502, 503, 504))
        started = ((request_dict or {}).get("context") or {}).get("kubekeep_started")
        if not failed or started is None:
            return
        elapsed = time.monotonic() - started
        if elapsed + self.read_timeout > self.seconds:
            cause = caught_exception or f"HTTP {getattr(response[0], 'status_code', '?')}"
            raise _DeadlineReached(message=(
                f"{self.endpoint} did not answer in time: gave up after {elapsed:.0f} s (deadline {self.seconds:g} s, "
                f"read timeout {self.read_timeout:g} s; last error: {cause})"))


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error: Mapping[str, Any] = exc.response.get("Error", {})
    meta: Mapping[str, Any] = exc.response.get("ResponseMetadata", {})
    return str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)


def classify_error(exc: Exception, what: str, key: str | None = None) -> StorageError:
    """Map a botocore exception onto the storage error hierarchy (transient vs permanent)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, _DeadlineReached):
        return DeadlineExceededError(f"{what}: {exc}")
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _error_code(exc)
        if key is not None and code in _NOT_FOUND_CODES:
            return ObjectNotFoundError(key)
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientStorageError(f"{what}: {code or status}: {exc}")
        if code == "NoSuchBucket":
            return StorageError(f"{what}: bucket does not exist: {exc}")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{what}: access denied ({code}): {exc}")
        return StorageError(f"{what}: {code or status}: {exc}")
    if isinstance(exc, _TRANSIENT_BOTOCORE):
        return TransientStorageError(f"{what}: {exc}")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return StorageError(f"{what}: {exc}")  # credentials, parameter validation, ...
    if isinstance(exc, OSError | TimeoutError):
        return TransientStorageError(f"{what}: {exc}")  # socket errors while streaming a body
    return StorageError(f"{what}: {exc!r}")


class _ViewReader(io.RawIOBase):
    """A read-only, seekable file over a memoryview (what botocore needs to upload, checksum and retry)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._view.nbytes}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._pos:self._pos + len(buffer)]
        n = chunk.nbytes
        memoryview(buffer).cast("B")[:n] = chunk
        self._pos += n
        return n

    def __len__(self) -> int:
        return self._view.nbytes


def _crc32_b64(data: bytes | memoryview) -> str:
    """The CRC32 header of a body, computed here over the caller's buffer (left to botocore, it reads the
    body through the stream once more, 1 MiB copies at a time: +1 s of system time per GiB uploaded)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def _md5_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _check_retain_until(retain_until: datetime) -> datetime:
    if retain_until.tzinfo is None:
        raise ValueError("retain_until must be timezone-aware")
    return retain_until.astimezone(UTC)


class S3Storage(Storage):
    """Objects in one bucket, under an optional key prefix."""

    remote = True

    def __init__(self, config: S3Config, *, client: S3Client | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.url = f"s3://{config.bucket}/{config.prefix}"
        #: one session for both clients: the transfer client then costs ~1 MiB instead of ~13
        self._session: Any = None if client is not None else config.make_session()
        self._client = client if client is not None else config.make_client(session=self._session)
        self._given_client = client is not None
        self._transfer: S3Client | None = client
        self._conditional = config.conditional_writes
        self._lock = threading.Lock()
        self._lock_enabled: bool | None = None
        self._versioned: bool | None = None

    def _transfer_client(self, size: int) -> S3Client:
        """The client for an upload of ``size`` bytes (made on first use)."""
        if size < self.config.transfer_size:
            return self._client
        if self._transfer is None:
            with self._lock:
                if self._transfer is None:
                    self._transfer = self.config.make_client(transfer=True, session=self._session)
        return self._transfer

    # -- bucket properties, probed once -------------------------------------------------

    @property
    def supports_retention(self) -> bool:
        if self._lock_enabled is None:
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except botocore.exceptions.ClientError as exc:
                code, _ = _error_code(exc)
                if code not in _NO_LOCK_CONFIG_CODES:
                    raise classify_error(exc, f"read object lock configuration of {self.bucket}") from exc
                enabled = False
            except botocore.exceptions.BotoCoreError as exc:
                raise classify_error(exc, f"read object lock configuration of {self.bucket}") from exc
            with self._lock:
                self._lock_enabled = enabled
        return self._lock_enabled

    @supports_retention.setter
    def supports_retention(self, value: bool) -> None:
        self._lock_enabled = value

    def _is_versioned(self) -> bool:
        if self._versioned is None:
            try:
                status = self._client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                raise classify_error(exc, f"read versioning of {self.bucket}") from exc
            with self._lock:
                self._versioned = status in ("Enabled", "Suspended")
        return self._versioned

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    # -- writes -------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        full = self._full(key)
        extra: dict[str, Any] = {}
        if retention is not None:
            mode, until = retention
            until = _check_retain_until(until)
            if not self.supports_retention:
                raise RetentionNotSupportedError(f"{self.url}: bucket has no Object Lock")
            extra["ObjectLockMode"] = RetentionMode(mode).value
            extra["ObjectLockRetainUntilDate"] = until
        view = memoryview(data).cast("B")
        if not self._conditional and self.exists(key):
            raise ObjectExistsError(key)
        if view.nbytes >= self.config.multipart_threshold:
            self._put_multipart(key, full, view, extra)
            return
        conditional = self._conditional
        try:
            if conditional:
                extra["IfNoneMatch"] = "*"
            # a seekable reader over the caller's buffer: no 16 MiB copy per pack (the caller keeps the
            # buffer unchanged until put returns). The server checks the body against its CRC32 before
            # storing it (as it would a Content-MD5, which S3 also accepts for Object Lock uploads): MD5 cost
            # ~0.4 s of CPU per 256 MiB uploaded, CRC32 about a third of that (docs/benchmarks.md)
            body = cast(IO[bytes], _ViewReader(view))
            self._transfer_client(view.nbytes).put_object(Bucket=self.bucket, Key=full, Body=body,
                                                          ChecksumAlgorithm="CRC32", ChecksumCRC32=_crc32_b64(view),
                                                          **extra)
        except botocore.exceptions.ClientError as exc:
            code, status = _error_code(exc)
            if status == 412 or code == "PreconditionFailed":
                raise ObjectExistsError(key) from None
            if conditional and (code in _UNSUPPORTED_CONDITION_CODES or status == 501):
                self._disable_conditional_writes()
                self.put(key, data, retention=retention)
                return
            raise classify_error(exc, f"put {self.url}{key}", key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise classify_error(exc, f"put {self.url}{key}", key) from exc

    def _disable_conditional_writes(self) -> None:
        with self._lock:
            self._conditional = False

    def _put_multipart(self, key: str, full: str, view: memoryview, extra: dict[str, Any]) -> None:
        # Checking first saves uploading gigabytes that the conditional complete would refuse.
        if self.exists(key):
            raise ObjectExistsError(key)
        size = view.nbytes
        part_size = max(self.config.part_size, -(-size // _MAX_PARTS))
        what = f"multipart put {self.url}{key}"
        try:
            created = self._client.create_multipart_upload(Bucket=self.bucket, Key=full, **extra)
            upload_id = created["UploadId"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, what, key) from exc
        try:
            parts: builtins.list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, size, part_size), start=1):
                chunk = bytes(view[offset:offset + part_size])
                response = self._transfer_client(len(chunk)).upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                    Body=chunk, ContentMD5=_md5_b64(chunk),
                )
                fields: Mapping[str, Any] = response
                part: dict[str, Any] = {"PartNumber": number, "ETag": fields["ETag"]}
                # echo the part checksums botocore added, which the complete call must repeat
                part.update({name: value for name, value in fields.items() if name.startswith("Checksum")
                             and name != "ChecksumType"})
                parts.append(part)
            complete: dict[str, Any] = {"IfNoneMatch": "*"} if self._conditional else {}
            self._transfer_client(size).complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                **complete,
            )
        except BaseException as exc:
            self._abort_upload(full, upload_id)
            if isinstance(exc, botocore.exceptions.ClientError):
                code, status = _error_code(exc)
                if status == 412 or code == "PreconditionFailed":
                    raise ObjectExistsError(key) from None
            if isinstance(exc, botocore.exceptions.ClientError | botocore.exceptions.BotoCoreError):
                raise classify_error(exc, what, key) from exc
            raise

    def _abort_upload(self, full: str, upload_id: str) -> None:
        # best effort; a bucket lifecycle rule should reap what is left
        with contextlib.suppress(botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        full = self._full(key)
        what = f"get {self.url}{key}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            data = response["Body"].read()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, OSError) as exc:
            raise classify_error(exc, what, key) from exc
        if len(data) != response.get("ContentLength", len(data)):
            raise TransientStorageError(f"{what}: short read ({len(data)} of {response['ContentLength']})")
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        full = self._full(key)
        if length == 0:
            self.stat(key)  # still report a missing key
            return b""
        what = f"get range {self.url}{key}"
        try:
            response = self._client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes={offset}-{offset + length - 1}"
            )
            data = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            code, status = _error_code(exc)
            if status == 416 or code == "InvalidRange":
                self.stat(key)  # past the end of an existing object: nothing there
                return b""
            raise classify_error(exc, what, key) from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise classify_error(exc, what, key) from exc
        if len(data) != response.get("ContentLength", len(data)):
            raise TransientStorageError(f"{what}: short read")
        return data[:length]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        skip = len(self.prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][skip:], item["Size"], _utc(item.get("LastModified")))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, f"list {self.url}{prefix}") from exc

    def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, f"stat {self.url}{key}", key) from exc
        return ObjectInfo(key, head["ContentLength"], _utc(head.get("LastModified")),
                          _utc(head.get("ObjectLockRetainUntilDate")))

    # -- delete and retention -----------------------------------------------------------

    def delete(self, key: str) -> None:
        full = self._full(key)
        what = f"delete {self.url}{key}"
        try:
            if not self._is_versioned():
                self._client.delete_object(Bucket=self.bucket, Key=full)
                return
            # A plain DELETE in a versioned bucket only adds a delete marker and keeps
            # the data: remove each version instead, oldest first, so that the current
            # version goes last and the key stays readable if a locked one refuses.
            for version_id in self._versions_oldest_first(full):
                self._delete_one_version(key, full, version_id)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, what) from exc

    def _delete_one_version(self, key: str, full: str, version_id: str) -> None:
        """DeleteObject of one version; ObjectLockedError (with its date) when a lock refuses it."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)
        except botocore.exceptions.ClientError as exc:
            code, _ = _error_code(exc)
            if code in ("AccessDenied", "403", "InvalidRequest"):
                retained = self._retained_until(full, version_id)
                if retained is not None:
                    raise ObjectLockedError(key, retained) from None
            raise

    def _versions_oldest_first(self, full: str) -> builtins.list[str]:
        found: builtins.list[tuple[bool, datetime, str]] = []
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            entries: builtins.list[Any] = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            for entry in entries:
                if entry["Key"] == full:
                    modified = entry.get("LastModified") or datetime.min.replace(tzinfo=UTC)
                    found.append((bool(entry.get("IsLatest")), modified, entry["VersionId"]))
        found.sort(key=lambda item: (item[0], item[1]))
        return [version_id for _, _, version_id in found]

    def _retained_until(self, full: str, version_id: str) -> datetime | None:
        """The date a version is retained until (None when it is not locked now)."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full, VersionId=version_id)
        except botocore.exceptions.ClientError:
            return None
        until = _utc(head.get("ObjectLockRetainUntilDate"))
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return until or datetime.max.replace(tzinfo=UTC)
        if until is not None and until > datetime.now(UTC):
            return until
        return None

    def _current_retention(self, key: str) -> Retention | None:
        try:
            response = self._client.get_object_retention(Bucket=self.bucket, Key=self._full(key))
        except botocore.exceptions.ClientError as exc:
            code, _ = _error_code(exc)
            if code in _NO_LOCK_CONFIG_CODES:
                return None
            raise classify_error(exc, f"read retention of {self.url}{key}", key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise classify_error(exc, f"read retention of {self.url}{key}", key) from exc
        retention = response.get("Retention", {})
        until = _utc(retention.get("RetainUntilDate"))
        if "Mode" not in retention or until is None:
            return None
        return RetentionMode(retention["Mode"]), until

    def set_retention(self, key: str, mode: RetentionMode, retain_until: datetime) -> datetime:
        retain_until = _check_retain_until(retain_until)
        mode = RetentionMode(mode)
        if not self.supports_retention:
            raise RetentionNotSupportedError(f"{self.url}: bucket has no Object Lock")
        what = f"set retention of {self.url}{key}"
        current = self._current_retention(key)
        if current is not None:
            if current[1] >= retain_until:
                return current[1]  # only ever extend
            if current[0] is RetentionMode.COMPLIANCE:
                mode = RetentionMode.COMPLIANCE  # never weaken the mode either
        try:
            self._client.put_object_retention(
                Bucket=self.bucket, Key=self._full(key),
                Retention={"Mode": mode.value, "RetainUntilDate": retain_until},
            )
        except botocore.exceptions.ClientError as exc:
            code, _ = _error_code(exc)
            if code in ("AccessDenied", "403"):
                # Someone extended it further meanwhile, or the server refuses the
                # change (SeaweedFS will not turn GOVERNANCE into COMPLIANCE).
                now_in_force = self._current_retention(key)
                if now_in_force is not None and now_in_force[1] >= retain_until:
                    return now_in_force[1]
                until = now_in_force[1] if now_in_force else None
                raise ObjectLockedError(key, until) from exc
            raise classify_error(exc, what, key) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise classify_error(exc, what, key) from exc
        return retain_until

    # -- the bucket ------------------------------------------------------------------------

    missing_hint = ("check the bucket name, the endpoint and the credentials; "
                    "`kubekeep repo init --create-bucket` creates a missing bucket")

    def location_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("NoSuchBucket", "NotFound", "404"):
                return False
            raise classify_error(exc, f"look up bucket {self.bucket}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise classify_error(exc, f"look up bucket {self.bucket}") from exc
        return True

    def create_location(self, *, object_lock: bool = False) -> None:
        create_bucket(self._client, self.bucket, object_lock=object_lock)
        with self._lock:
            self._lock_enabled = None
            self._versioned = None

    # -- versions ---------------------------------------------------------------------------

    def versioned(self) -> bool:
        return self._is_versioned()

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        paginator = self._client.get_paginator("list_object_versions")
        skip = len(self.prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                entries: builtins.list[tuple[bool, Any]] = [
                    *((False, v) for v in page.get("Versions", [])),
                    *((True, m) for m in page.get("DeleteMarkers", []))]
                # one page may split a key's entries over its two lists: merge them back in S3's
                # order (by key, newest first; the latest entry first among equal times)
                entries.sort(key=lambda e: (e[1]["Key"], not e[1].get("IsLatest", False),
                                            -(e[1]["LastModified"].timestamp() if e[1].get("LastModified")
                                              else 0.0)))
                for marker, entry in entries:
                    yield ObjectVersion(entry["Key"][skip:], entry["VersionId"], _utc(entry.get("LastModified")),
                                        bool(entry.get("IsLatest")), marker, int(entry.get("Size", 0) or 0))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, f"list versions {self.url}{prefix}") from exc

    def get_version(self, key: str, version_id: str) -> bytes:
        what = f"get {self.url}{key} version {version_id}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key), VersionId=version_id)
            data = response["Body"].read()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, OSError) as exc:
            raise classify_error(exc, what, key) from exc
        if len(data) != response.get("ContentLength", len(data)):
            raise TransientStorageError(f"{what}: short read")
        return data

    def version_retained_until(self, key: str, version_id: str) -> datetime | None:
        return self._retained_until(self._full(key), version_id)

    def delete_version(self, key: str, version_id: str) -> None:
        try:
            self._delete_one_version(key, self._full(key), version_id)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, f"delete {self.url}{key} version {version_id}") from exc

    def restore_version(self, key: str, version_id: str) -> None:
        full = self._full(key)
        try:
            self._client.copy_object(Bucket=self.bucket, Key=full,
                                     CopySource={"Bucket": self.bucket, "Key": full, "VersionId": version_id})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, f"restore {self.url}{key} version {version_id}", key) from exc

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        """Abort multipart uploads under the prefix started before ``older_than`` (their parts
        cost storage and are never visible); bytes are not counted (0)."""
        what = f"list multipart uploads of {self.url}"
        count = 0
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    initiated = _utc(upload.get("Initiated"))
                    if initiated is None or initiated >= older_than:
                        continue
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                        UploadId=upload["UploadId"])
                    count += 1
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise classify_error(exc, what) from exc
        return count, 0

    def close(self) -> None:
        self._client.close()
        if self._transfer is not None and not self._given_client:
            self._transfer.close()


def _as_client(client_or_config: S3Client | S3Config) -> S3Client:
    return client_or_config.make_client() if isinstance(client_or_config, S3Config) else client_or_config


def create_bucket(client_or_config: S3Client | S3Config, name: str, *, object_lock: bool = False) -> None:
    """Create a bucket (an admin task, not part of the Storage interface).

    With ``object_lock`` the bucket is created with Object Lock enabled, which
    also turns versioning on; S3 cannot add Object Lock to a bucket later on
    every provider. An existing bucket owned by the caller is not an error.
    """
    client = _as_client(client_or_config)
    kwargs: dict[str, Any] = {"Bucket": name}
    if object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    region = client.meta.region_name
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except botocore.exceptions.ClientError as exc:
        code, _ = _error_code(exc)
        if code != "BucketAlreadyOwnedByYou":
            raise classify_error(exc, f"create bucket {name}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise classify_error(exc, f"create bucket {name}") from exc


def list_buckets(client_or_config: S3Client | S3Config) -> list[str]:
    """Names of the buckets the credentials can see (also a cheap liveness probe)."""
    client = _as_client(client_or_config)
    try:
        return [bucket["Name"] for bucket in client.list_buckets().get("Buckets", []) if "Name" in bucket]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise classify_error(exc, "list buckets") from exc
