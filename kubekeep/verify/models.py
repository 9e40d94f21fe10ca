"""What a verification is told to do: typed checks, isolation and timeouts (pydantic, so the Prefect UI
renders them as forms), and what a check reports back.

Checks come from three places, merged by name (the first wins): the run's parameters, a
:class:`VerificationPolicy` (a YAML file or a block), and annotations on the app's objects
(:mod:`kubekeep.verify.annotations`).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: a check's name: what the verdict, the catalog and an annotation key call it
CHECK_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_LABEL_TERM_RE = re.compile(r"^[A-Za-z0-9./_-]+(=|==|!=)[A-Za-z0-9._-]*$|^!?[A-Za-z0-9./_-]+$")

#: how much of a check's output the verdict keeps
OUTPUT_TAIL_CHARS = 2048


class VerificationSpecError(ValueError):
    """A check, policy or annotation that cannot be used as given (the message names the place)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not CHECK_NAME_RE.match(value):
        raise ValueError(f"check name {value!r}: use 1-63 lowercase letters, digits, '-', '_' and '.', "
                         "starting and ending with a letter or digit")
    return value


def _check_selector(value: str) -> str:
    terms = [t.strip() for t in value.split(",")]
    if not value.strip() or any(not _LABEL_TERM_RE.match(t) for t in terms):
        raise ValueError(f"pod_selector {value!r} is not a label selector like 'app=web' or 'app=db,tier!=cache'")
    return ",".join(terms)


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
    return value


class _PodCheck(_Model):
    name: str = Field(description="Name of the check in the verdict (lowercase letters, digits, '-', '_', '.').")
    pod_selector: str = Field(description="Label selector of the pod to run in, e.g. 'app=db' (a Ready pod "
                                          "is chosen, the first by name).")
    namespace: str | None = Field(default=None, description="Namespace of the pod in the restore point (mapped "
                                  "to its sandbox namespace); may be left out when the app has one namespace.")
    container: str | None = Field(default=None, description="Container to run in (default: the pod's "
                                  "kubectl.kubernetes.io/default-container, else its first container).")
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600, description="The check passes if one attempt "
                                   "passes within this time; attempts repeat until then.")
    interval_seconds: float = Field(default=2.0, gt=0, le=300, description="Pause between attempts.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("pod_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return _check_selector(value)


class ExecCheck(_PodCheck):
    """Run a command in a pod of the sandbox; it passes on the expected exit code (and stdout regex)."""

    type: Literal["exec"] = Field(default="exec", description="exec: run a command in a pod.")
    command: list[str] = Field(min_length=1, description="The command and its arguments (no shell: give "
                               "['sh', '-c', '...'] for one).")
    expected_exit_code: int = Field(default=0, ge=0, le=255, description="The exit code that passes.")
    stdout_regex: str | None = Field(default=None, description="A regular expression stdout must contain "
                                     "(Python syntax, searched line by line with MULTILINE).")

    @field_validator("stdout_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)


class HttpClient(StrEnum):
    AUTO = "auto"
    CURL = "curl"
    WGET = "wget"
    PYTHON3 = "python3"


class HttpCheck(_PodCheck):
    """A GET from inside the sandbox: a client (curl, wget or python3) is exec'd in a pod, so a Service name
    resolves the way the app's own pods resolve it."""

    type: Literal["http"] = Field(default="http", description="http: a GET from inside the sandbox.")
    service: str = Field(description="Name of the Service (in the check's namespace) to GET from.")
    port: int = Field(default=80, ge=1, le=65535, description="Service port.")
    path: str = Field(default="/", description="Path and query, starting with '/'.")
    scheme: Literal["http", "https"] = Field(default="http", description="http or https.")
    insecure: bool = Field(default=False, description="https: do not verify the server's certificate.")
    expected_status: int = Field(default=200, ge=100, le=599, description="The HTTP status that passes.")
    body_regex: str | None = Field(default=None, description="A regular expression the body must contain "
                                   "(Python syntax, MULTILINE; the last 64 KiB of the body are searched).")
    client: HttpClient = Field(default=HttpClient.AUTO, description="The client exec'd in the pod: auto tries "
                               "curl, then wget, then python3.")

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"path {value!r} must start with '/' and hold no whitespace")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", value):
            raise ValueError(f"service {value!r} is not a Service name")
        return value


UserCheck = Annotated[ExecCheck | HttpCheck, Field(discriminator="type")]


class BuiltinChecks(_Model):
    """The checks every verification runs unless switched off."""

    objects_present: bool = Field(default=True, description="Every object of the restore point is in the "
                                  "sandbox (counted by kind; objects left out on purpose are listed, not missed).")
    workloads_ready: bool = Field(default=True, description="Every workload of the sandbox is Ready when the "
                                  "checks run (not only when its readiness tier passed).")
    volume_data: bool = Field(default=True, description="The data of every volume matches the snapshot, file by "
                              "file (verified as the restore writes it, before any workload starts).")
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600, description="Time limit of each built-in check.")


class IsolationOptions(_Model):
    """How the sandbox is cut off from everything else (docs/verification.md)."""

    max_replicas: int | None = Field(default=None, ge=1, description="Cap the replicas of every workload "
                                     "(None: keep the restore point's counts).")
    allow_dns: bool = Field(default=True, description="The isolation NetworkPolicy lets pods look up names "
                            "(UDP/TCP 53 to kube-system), so Service names resolve inside the sandbox.")


class VerificationPolicy(_Model):
    """Everything about how an app is verified, kept in a file or a block (the run's parameters add to it)."""

    checks: list[UserCheck] = Field(default_factory=list, description="User checks (exec and http).")
    builtin: BuiltinChecks = Field(default_factory=BuiltinChecks, description="The built-in checks.")
    isolation: IsolationOptions = Field(default_factory=IsolationOptions, description="Sandbox isolation.")
    ready_timeout_seconds: float = Field(default=300.0, gt=0, le=86400, description="How long each readiness "
                                         "tier of the restore may take to become Ready.")
    sandbox_lifetime_seconds: float = Field(default=6 * 3600.0, gt=0, description="After this long a sandbox "
                                            "counts as abandoned and the next verification removes it, even "
                                            "if its heartbeat still runs.")
    annotation_checks: bool = Field(default=True, description="Also run the checks declared in annotations on "
                                    "the app's objects (verify.kubekeep.io/check.<name>).")

    @model_validator(mode="after")
    def _unique_names(self) -> VerificationPolicy:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names must be unique: {dupes} appear more than once")
        return self

    @classmethod
    def from_yaml(cls, text: str, *, where: str = "verification policy") -> VerificationPolicy:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise VerificationSpecError(f"{where}: not valid YAML: {exc}") from None
        return cls.from_data(data or {}, where=where)

    @classmethod
    def from_data(cls, data: Any, *, where: str = "verification policy") -> VerificationPolicy:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise VerificationSpecError(f"{where}: {describe_validation_error(exc)}") from None


def parse_check(data: Any, *, where: str = "check") -> ExecCheck | HttpCheck:
    """One check from plain data (``type: exec`` or ``type: http``)."""
    if not isinstance(data, dict):
        raise VerificationSpecError(f"{where}: expected a mapping with a 'type' (exec or http)")
    kind = data.get("type")
    model: type[ExecCheck] | type[HttpCheck]
    if kind == "exec":
        model = ExecCheck
    elif kind == "http":
        model = HttpCheck
    else:
        raise VerificationSpecError(f"{where}: type {kind!r} is not one of 'exec', 'http'")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise VerificationSpecError(f"{where}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """pydantic's errors on one line: ``field.path: message; ...``."""
    parts = []
    for error in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    more = f" (and {exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


def merge_checks(*sources: list[ExecCheck | HttpCheck]) -> list[ExecCheck | HttpCheck]:
    """Checks of several sources by name, the first source that names a check wins (parameters, then the
    policy, then annotations); order: first appearance."""
    merged: dict[str, ExecCheck | HttpCheck] = {}
    for source in sources:
        for check in source:
            merged.setdefault(check.name, check)
    return list(merged.values())


# --------------------------------------------------------------- results


class CheckType(StrEnum):
    RESTORE = "restore"
    OBJECTS_PRESENT = "objects-present"
    WORKLOADS_READY = "workloads-ready"
    VOLUME_DATA = "volume-data"
    EXEC = "exec"
    HTTP = "http"
    #: the checks declared in annotations that are not valid checks (a broken declaration is not silent)
    DECLARATIONS = "declarations"


class CheckResult(_Model):
    """What one check found."""

    name: str = Field(description="The check's name.")
    type: CheckType = Field(description="Built-in (restore, objects-present, workloads-ready, volume-data), "
                            "user (exec, http), or declarations (check annotations that are not valid checks).")
    passed: bool = Field(description="Whether the check passed.")
    reason: str = Field(default="", description="Why it passed or failed, in one line.")
    started_at: datetime | None = Field(default=None, description="When the check started.")
    duration_seconds: float = Field(default=0.0, ge=0, description="How long it took.")
    attempts: int = Field(default=1, ge=0, description="How many times it ran (user checks repeat until they "
                          "pass or time out).")
    output_tail: str = Field(default="", description=f"The last {OUTPUT_TAIL_CHARS} characters of its output.")

    def to_row(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.value, "passed": self.passed, "reason": self.reason,
                "started_at": self.started_at, "duration_seconds": self.duration_seconds,
                "attempts": self.attempts, "output_tail": self.output_tail}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CheckResult:
        return cls.model_validate({k: v for k, v in row.items() if v is not None})


def tail(text: str | bytes, limit: int = OUTPUT_TAIL_CHARS) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else "..." + text[-(limit - 3):]
