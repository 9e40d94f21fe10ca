"""ProtectionPolicy: what to protect, when, how long to keep it, where, and its DR copy and verification.

One model, two doors: the Prefect Block of the same name wraps it (and validates on save), and the
CLI reads it from YAML (:func:`load_policies`). Every mistake is one clear line naming the field.

.. code-block:: yaml

    name: production
    apps:
      namespaces: ["shop-*", billing]      # shell patterns; or names: ["helm:*/postgres"]
      namespace_selector: "tier=prod"      # labels of the namespaces
      exclude: ["shop-scratch"]            # app names or namespaces
    schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
    retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_within: 2d}
    location: primary                      # a LocationProfile block (flows) or a location (CLI)
    dr_copy: {location: dr-site, mode: replica, retention: {keep_daily: 7, keep_monthly: 24}}
    verify: {frequency: weekly}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubekeep.retention.plan import DEFAULT_APPROVAL_SHARE
from kubekeep.retention.rules import RetentionError, RetentionRules, zone

from .selector import LabelSelector, SelectorError

AppSource = Literal["namespace", "helm", "label"]
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PolicyError(ValueError):
    """A policy that cannot be used as written; the message names the file and the field."""


class AppSelector(BaseModel):
    """Which discovered applications a policy protects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    all: bool = Field(default=False, description="Every discovered application (of the chosen sources), "
                                                 "except those excluded.")
    namespaces: tuple[str, ...] = Field(default=(), description="Namespace names or shell patterns: an app whose "
                                                                "namespaces all match is selected.")
    names: tuple[str, ...] = Field(default=(), description="Application names or shell patterns "
                                                           "(shop, helm:shop/*, label:billing).")
    namespace_selector: str | None = Field(default=None, description="Label selector on the namespaces of the "
                                                                     "app (tier=prod,team in (a,b)).")
    exclude: tuple[str, ...] = Field(default=(), description="Application names or namespaces (shell patterns) "
                                                             "never selected.")
    sources: tuple[AppSource, ...] = Field(
        default=("namespace",), description="Kinds of discovered applications: namespace, helm (releases), "
                                            "label (app.kubernetes.io/part-of groups).")

    @field_validator("namespaces", "names", "exclude", "sources", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("namespace_selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            LabelSelector.parse(value)
        except SelectorError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _criteria(self) -> AppSelector:
        given = [n for n in ("namespaces", "names", "namespace_selector") if getattr(self, n)]
        if self.all and given:
            raise ValueError(f"all: true selects every app; it cannot be combined with {', '.join(given)} "
                             "(use exclude to leave apps out)")
        if not self.all and not given:
            raise ValueError("say which apps: all: true, namespaces, names or namespace_selector")
        if not self.sources:
            raise ValueError("sources must name at least one of namespace, helm, label")
        for pattern in (*self.namespaces, *self.names, *self.exclude):
            if not pattern or pattern != pattern.strip():
                raise ValueError(f"empty or padded pattern {pattern!r}")
        return self

    def selects(self, name: str, source: str, namespaces: Iterable[str],
                namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Whether an application (its name, source, namespaces) is selected. Criteria that are given
        must all hold (namespace patterns AND names AND the namespace selector)."""
        spaces = tuple(namespaces)
        if source not in self.sources or not spaces:
            return False
        if any(fnmatch.fnmatchcase(item, pattern) for pattern in self.exclude for item in (name, *spaces)):
            return False
        if self.all:
            return True
        if self.namespaces and not all(any(fnmatch.fnmatchcase(ns, p) for p in self.namespaces) for ns in spaces):
            return False
        if self.names and not any(fnmatch.fnmatchcase(name, p) for p in self.names):
            return False
        if self.namespace_selector:
            selector = LabelSelector.parse(self.namespace_selector)
            if not all(selector.matches(namespace_labels.get(ns, {})) for ns in spaces):
                return False
        return True


class Schedule(BaseModel):
    """When the policy's backups run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str = Field(description="Cron expression (minute hour day-of-month month day-of-week).")
    timezone: str = Field(default="UTC", description="IANA timezone of the cron expression; retention counts "
                                                     "hours, days, weeks, months and years in it too.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"cron expression {value!r} is not valid: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except RetentionError as exc:
            raise ValueError(str(exc)) from None
        return value

    def next_runs(self, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` run times strictly after ``after`` (aware, in the schedule's timezone)."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        times = CronSim(self.cron, after.astimezone(zone(self.timezone)))
        return [next(times) for _ in range(count)]


class DrCopy(BaseModel):
    """The copy of every restore point to a second site (the DR copy flow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    location: str = Field(description="The DR location: a LocationProfile block name (flows) or a location (CLI).")
    mode: Literal["replica", "independent"] = Field(
        default="replica", description="replica: same master key, packs copied byte for byte; independent: "
                                       "its own key, blobs re-encrypted.")
    retention: RetentionRules | None = Field(default=None, description="Retention at the DR site (default: the "
                                                                       "policy's own).")

    @field_validator("retention")
    @classmethod
    def _not_empty(cls, value: RetentionRules | None) -> RetentionRules | None:
        if value is not None and value.is_empty():
            raise ValueError("dr_copy.retention has no keep rule; leave it out to use the policy's retention")
        return value


_VERIFY_INTERVALS: dict[str, timedelta | None] = {
    "never": None, "every-backup": timedelta(0), "daily": timedelta(days=1), "weekly": timedelta(days=7),
    "monthly": timedelta(days=30)}


class Verify(BaseModel):
    """How often the newest restore point of each protected app is restored in a sandbox and checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frequency: Literal["never", "every-backup", "daily", "weekly", "monthly"] = Field(
        default="weekly", description="How often to verify the newest point of each app.")

    def interval(self) -> timedelta | None:
        """The longest a protected app goes without a newly verified point (None: never verified;
        ``every-backup``: zero)."""
        return _VERIFY_INTERVALS[self.frequency]

    def due(self, newest_verified: datetime | None, now: datetime) -> bool:
        """Whether the app's newest point is to be verified now, given when its newest verified point was
        taken (None: none is). A point within a tenth of the interval of being due counts as due, so a
        schedule at the same hour every day never skips a verification over a few minutes of jitter."""
        interval = self.interval()
        if interval is None:
            return False
        if newest_verified is None or not interval:
            return True
        if newest_verified.tzinfo is None or now.tzinfo is None:
            raise ValueError("the times must be timezone-aware")
        return now - newest_verified >= interval * 0.9


class ProtectionPolicy(BaseModel):
    """What to protect, when, how long to keep it and where (issue: protection policies)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Policy name, recorded with every restore point it makes (lowercase, digits, '-').")
    apps: AppSelector = Field(description="Which discovered applications the policy protects.")
    schedule: Schedule = Field(description="When backups run.")
    retention: RetentionRules = Field(description="Which restore points to keep (GFS, in the schedule's timezone).")
    location: str = Field(description="Where restore points go: a LocationProfile block name (flows) or a "
                                      "location such as /mnt/backups or s3://bucket/prefix (CLI).")
    dr_copy: DrCopy | None = Field(default=None, description="Copy every restore point to a second site.")
    verify: Verify = Field(default_factory=Verify, description="Restore verification.")
    approval_share: float = Field(default=DEFAULT_APPROVAL_SHARE, ge=0, le=1,
                                  description="A retention run that would delete more than this share of an app's "
                                              "points waits for approval.")
    backup_concurrency: int = Field(default=2, ge=1, le=32, description="Applications backed up at once.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"policy name {value!r} is not valid: use 1-63 lowercase letters, digits and '-'")
        return value

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: RetentionRules) -> RetentionRules:
        if value.is_empty():
            raise ValueError("retention has no keep rule: give at least one of keep_last, keep_hourly, keep_daily, "
                             "keep_weekly, keep_monthly, keep_yearly, keep_within")
        return value

    @property
    def timezone(self) -> str:
        return self.schedule.timezone

    def dr_retention(self) -> RetentionRules | None:
        if self.dr_copy is None:
            return None
        return self.dr_copy.retention or self.retention


def describe_errors(exc: ValidationError, where: str = "") -> str:
    """One line: ``where: field.path: message; other.field: message``."""
    parts = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{path}: {message}" if path else message)
    prefix = f"{where}: " if where else ""
    return prefix + "; ".join(parts)


def parse_policy(data: Any, where: str = "policy") -> ProtectionPolicy:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: a policy is a mapping of fields (name, apps, schedule, retention, location)")
    try:
        return ProtectionPolicy.model_validate(dict(data))
    except ValidationError as exc:
        raise PolicyError(describe_errors(exc, where)) from None


def load_policies(source: str | Path) -> list[ProtectionPolicy]:
    """Policies from a YAML file: one policy, or ``policies: [ ... ]``. PolicyError (one line) when the
    file is missing, not YAML, or a policy is invalid; names must be unique."""
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file ({exc.strerror or exc})") from None
    return policies_from_yaml(text, str(path))


def policies_from_yaml(text: str, where: str = "policy file") -> list[ProtectionPolicy]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise PolicyError(f"{where}: not valid YAML{at}") from None
    if isinstance(doc, Mapping) and set(doc) == {"policies"}:
        items = doc["policies"]
        if not isinstance(items, list) or not items:
            raise PolicyError(f"{where}: policies must be a non-empty list")
        policies = [parse_policy(item, f"{where}: policies[{n}]") for n, item in enumerate(items)]
    elif doc is None:
        raise PolicyError(f"{where}: the file is empty")
    else:
        policies = [parse_policy(doc, where)]
    seen: set[str] = set()
    for policy in policies:
        if policy.name in seen:
            raise PolicyError(f"{where}: two policies are named {policy.name!r}")
        seen.add(policy.name)
    return policies
