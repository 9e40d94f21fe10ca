"""The migration plan: what a restore point will become on the target cluster, and what stops it.

A :class:`MigrationPlan` is plain data. It holds one :class:`ObjectRow` per
object of the restore point (the apiVersion it is stored at and the one it
will be created with on the target, or why it is left out), one
:class:`StorageClassDecision` per StorageClass the claims use, and the
:class:`PlanItem` findings: **blocking** items refuse the plan (nothing may
be written to the target), **warnings** are shown and accepted with it,
**info** items say what will happen. It renders as a text table (CLI), JSON
and markdown (Prefect artifact), and reads back from its JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

PLAN_FORMAT = 1


class Severity(StrEnum):
    #: the plan is refused: the migration stops before anything is written to the target
    BLOCKING = "blocking"
    #: shown with the plan and accepted with it (something will differ on the target)
    WARNING = "warning"
    #: what will happen (a conversion, a CRD brought along, a class mapped)
    INFO = "info"


class Topic(StrEnum):
    API_VERSION = "api-version"
    CRD = "crd"
    STORAGE_CLASS = "storage-class"
    VOLUME = "volume"
    NAMESPACE = "namespace"
    SCHEDULING = "scheduling"
    LOAD_BALANCER = "load-balancer"
    INGRESS_CLASS = "ingress-class"
    REFERENCES = "references"
    LEFT_OUT = "left-out"


class Verdict(StrEnum):
    """What happens to one object of the restore point on the target."""

    #: created with the apiVersion it is stored at
    SERVED = "served"
    #: converted to an apiVersion the target serves
    CONVERT = "convert"
    #: the target serves no version it can be converted to (the reason says why)
    NOT_CONVERTIBLE = "not-convertible"
    #: left out by the restore plan: recreated by a restored owner, an event, ...
    LEFT_OUT = "left-out"
    #: left out because the run excludes its kind
    EXCLUDED = "excluded"


class ClassResolution(StrEnum):
    """How a StorageClass of the restore point is resolved on the target."""

    #: the target has a class of the same name
    EXACT = "exact"
    #: an explicit storage-class map names the target class
    MAPPED = "mapped"
    #: the restore point holds the StorageClass and it is created on the target
    BROUGHT = "brought"
    #: claims without a class: the target's default class provisions them
    DEFAULT = "default"
    #: claims with class "": they bind to pre-created PersistentVolumes
    STATIC = "static"
    #: nothing on the target; a blocking item carries the suggestion
    MISSING = "missing"


_SEVERITY_ORDER = {Severity.BLOCKING: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class PlanItem:
    """One finding of the plan."""

    severity: Severity
    topic: Topic
    #: what it is about: an object (``Deployment.apps shop/web``), a class, a namespace
    subject: str
    message: str
    #: what would resolve it (a CLI option, an action on the target)
    suggestion: str | None = None
    #: the objects concerned (target refs), when more than the subject
    objects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "topic": self.topic.value, "subject": self.subject,
                "message": self.message, "suggestion": self.suggestion, "objects": list(self.objects)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanItem:
        return cls(Severity(data["severity"]), Topic(data["topic"]), str(data["subject"]), str(data["message"]),
                   data.get("suggestion"), tuple(data.get("objects") or ()))


@dataclass(frozen=True)
class ObjectRow:
    """One object of the restore point and what it becomes on the target."""

    #: the object as stored (``Deployment.apps shop/web``)
    source: str
    stored_api_version: str
    verdict: Verdict
    #: the object on the target after the transforms (None when it is not created)
    target: str | None = None
    #: the apiVersion it is created with (None when it is not created)
    target_api_version: str | None = None
    #: why (conversion notes, the reason it is left out)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectRow:
        return cls(str(data["source"]), str(data["stored_api_version"]), Verdict(data["verdict"]),
                   data.get("target"), data.get("target_api_version"), str(data.get("note") or ""))


@dataclass(frozen=True)
class StorageClassDecision:
    """A StorageClass the restore point's claims use, and the class they get on the target."""

    #: the class in the restore point ("" for claims that name none)
    source: str
    resolution: ClassResolution
    #: the class the claims name on the target (None: the target's default, or nothing)
    target: str | None = None
    source_provisioner: str | None = None
    target_provisioner: str | None = None
    #: for MISSING: the class this plan suggests mapping to (never applied without being asked)
    suggestion: str | None = None
    claims: tuple[str, ...] = ()

    @property
    def shown_source(self) -> str:
        if self.resolution is ClassResolution.STATIC:
            return '(class "")'
        return self.source or "(no class)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resolution": self.resolution.value, "claims": list(self.claims)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageClassDecision:
        return cls(str(data["source"]), ClassResolution(data["resolution"]), data.get("target"),
                   data.get("source_provisioner"), data.get("target_provisioner"), data.get("suggestion"),
                   tuple(data.get("claims") or ()))


class MigrationRefusedError(Exception):
    """The plan has blocking items: nothing was written to the target."""

    def __init__(self, plan: MigrationPlan) -> None:
        blocking = plan.blocking
        shown = "; ".join(f"{i.subject}: {i.message}" for i in blocking[:3])
        more = f" (and {len(blocking) - 3} more)" if len(blocking) > 3 else ""
        super().__init__(f"migration plan refused, nothing was written to {plan.target_cluster}: "
                         f"{len(blocking)} blocking item(s): {shown}{more}")
        self.plan = plan


@dataclass
class MigrationPlan:
    restore_point_id: str
    #: the cluster the restore point was taken from
    source_cluster: str
    target_cluster: str
    #: the target API server's version (gitVersion)
    target_version: str
    objects: list[ObjectRow] = field(default_factory=list)
    items: list[PlanItem] = field(default_factory=list)
    storage_classes: list[StorageClassDecision] = field(default_factory=list)
    #: namespaces the restore writes into on the target
    target_namespaces: list[str] = field(default_factory=list)
    #: CustomResourceDefinitions the target lacks that are created from the restore point
    crds_from_restore_point: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    # ---- verdict ---------------------------------------------------------
    @property
    def blocking(self) -> list[PlanItem]:
        return [i for i in self.items if i.severity is Severity.BLOCKING]

    @property
    def warnings(self) -> list[PlanItem]:
        return [i for i in self.items if i.severity is Severity.WARNING]

    @property
    def refused(self) -> bool:
        return bool(self.blocking)

    def raise_if_refused(self) -> None:
        """Raise :class:`MigrationRefusedError` when any item blocks (call before the first write)."""
        if self.refused:
            raise MigrationRefusedError(self)

    def verdict_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.verdict.value for r in self.objects).items()))

    def sorted_items(self) -> list[PlanItem]:
        return sorted(self.items, key=lambda i: (_SEVERITY_ORDER[i.severity], i.topic.value, i.subject))

    def summary(self) -> str:
        state = "REFUSED" if self.refused else "ok"
        return (f"migration plan {state}: restore point {self.restore_point_id} ({self.source_cluster}) -> "
                f"{self.target_cluster} ({self.target_version}): {len(self.objects)} object(s) "
                f"[{', '.join(f'{k} {v}' for k, v in self.verdict_counts().items())}], "
                f"{len(self.blocking)} blocking, {len(self.warnings)} warning(s)")

    # ---- data --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "restore_point_id": self.restore_point_id,
            "source_cluster": self.source_cluster,
            "target_cluster": self.target_cluster,
            "target_version": self.target_version,
            "created_at": self.created_at.isoformat(),
            "refused": self.refused,
            "counts": {"blocking": len(self.blocking), "warning": len(self.warnings),
                       "objects": self.verdict_counts()},
            "items": [i.to_dict() for i in self.sorted_items()],
            "storage_classes": [d.to_dict() for d in self.storage_classes],
            "target_namespaces": list(self.target_namespaces),
            "crds_from_restore_point": list(self.crds_from_restore_point),
            "objects": [r.to_dict() for r in self.objects],
        }

    def to_json(self, *, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MigrationPlan:
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"migration plan format {data.get('format')!r} is not supported (want {PLAN_FORMAT})")
        return cls(
            restore_point_id=str(data["restore_point_id"]), source_cluster=str(data["source_cluster"]),
            target_cluster=str(data["target_cluster"]), target_version=str(data["target_version"]),
            objects=[ObjectRow.from_dict(r) for r in data.get("objects") or ()],
            items=[PlanItem.from_dict(i) for i in data.get("items") or ()],
            storage_classes=[StorageClassDecision.from_dict(d) for d in data.get("storage_classes") or ()],
            target_namespaces=list(data.get("target_namespaces") or ()),
            crds_from_restore_point=list(data.get("crds_from_restore_point") or ()),
            created_at=datetime.fromisoformat(str(data["created_at"])),
        )

    @classmethod
    def from_json(cls, text: str) -> MigrationPlan:
        return cls.from_dict(json.loads(text))

    # ---- rendering -----------------------------------------------------------
    def table_rows(self) -> list[dict[str, str]]:
        """One row per finding, blocking first (a Prefect table artifact, or the CLI's table)."""
        return [{"severity": i.severity.value, "topic": i.topic.value, "subject": i.subject,
                 "message": i.message, "suggestion": i.suggestion or ""} for i in self.sorted_items()]

    def render_table(self, *, width: int = 120, info: bool = True) -> str:
        """The findings as a text table for a terminal, then the summary line."""
        items = [i for i in self.sorted_items() if info or i.severity is not Severity.INFO]
        subject_width = min(48, max([len("SUBJECT"), *(len(i.subject) for i in items)]))
        topic_width = max([len("TOPIC"), *(len(i.topic.value) for i in items)])
        head = f"{'SEVERITY':<9} {'TOPIC':<{topic_width}} {'SUBJECT':<{subject_width}} MESSAGE"
        lines = [head]
        indent = " " * (9 + 1 + topic_width + 1 + subject_width + 1)
        room = max(30, width - len(indent))
        for i in items:
            subject = i.subject if len(i.subject) <= subject_width else i.subject[: subject_width - 1] + "…"
            text = _wrap(i.message, room)
            lines.append(f"{i.severity.value:<9} {i.topic.value:<{topic_width}} {subject:<{subject_width}} "
                         f"{text[0]}")
            lines += [indent + t for t in text[1:]]
            if i.suggestion:
                lines += [indent + ("-> " if n == 0 else "   ") + t
                          for n, t in enumerate(_wrap(i.suggestion, room - 3))]
        if self.storage_classes:
            lines.append("")
            lines.append("STORAGE CLASS                  ON THE TARGET                  HOW        CLAIMS")
            for d in self.storage_classes:
                target = d.target or (f"(suggest {d.suggestion})" if d.suggestion else "-")
                lines.append(f"{d.shown_source:<30} {target:<30} {d.resolution.value:<10} {len(d.claims)}")
        converted = [r for r in self.objects if r.verdict in (Verdict.CONVERT, Verdict.NOT_CONVERTIBLE)]
        if converted:
            lines.append("")
            lines.append("API VERSIONS")
            for r in converted:
                arrow = r.target_api_version or "not created"
                lines.append(f"  {r.source}: {r.stored_api_version} -> {arrow}")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def markdown(self, *, max_objects: int = 200) -> str:
        """The plan as a markdown document (the approval form and the artifact show it)."""
        state = "**REFUSED** (blocking items below)" if self.refused else "ready to run"
        out = [f"# Migration plan: {state}", "",
               f"Restore point `{self.restore_point_id}` from `{self.source_cluster}` to `{self.target_cluster}` "
               f"(Kubernetes {self.target_version}), made {self.created_at.isoformat(timespec='seconds')}.", "",
               f"Objects: {', '.join(f'{k} {v}' for k, v in self.verdict_counts().items()) or 'none'}; "
               f"target namespaces: {', '.join(f'`{n}`' for n in self.target_namespaces) or 'none'}.", ""]
        for severity, title in ((Severity.BLOCKING, "Blocking"), (Severity.WARNING, "Warnings"),
                                (Severity.INFO, "What will happen")):
            items = [i for i in self.sorted_items() if i.severity is severity]
            if not items:
                continue
            out += [f"## {title} ({len(items)})", "", "| topic | subject | message | suggestion |",
                    "|---|---|---|---|"]
            out += [f"| {i.topic.value} | {_md(i.subject)} | {_md(i.message)} | {_md(i.suggestion or '')} |"
                    for i in items]
            out.append("")
        if self.storage_classes:
            out += ["## Storage classes", "", "| restore point | target | how | provisioners | claims |",
                    "|---|---|---|---|---|"]
            for d in self.storage_classes:
                target = d.target or (f"suggested: {d.suggestion}" if d.suggestion else "-")
                provisioners = f"{d.source_provisioner or '?'} -> {d.target_provisioner or '?'}"
                out.append(f"| {_md(d.shown_source)} | {_md(target)} | {d.resolution.value} | "
                           f"{_md(provisioners)} | {len(d.claims)} |")
            out.append("")
        rows = [r for r in self.objects if r.verdict is not Verdict.SERVED] + \
            [r for r in self.objects if r.verdict is Verdict.SERVED]
        out += ["## Objects", "", "| object | stored as | on the target | created as | verdict | note |",
                "|---|---|---|---|---|---|"]
        for r in rows[:max_objects]:
            out.append(f"| {_md(r.source)} | {r.stored_api_version} | {_md(r.target or '-')} | "
                       f"{r.target_api_version or '-'} | {r.verdict.value} | {_md(r.note)} |")
        if len(rows) > max_objects:
            out.append(f"\n{len(rows) - max_objects} more object(s) in the plan's JSON.")
        return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current or not lines else lines


def merge_items(items: Iterable[PlanItem]) -> list[PlanItem]:
    """Items without exact duplicates, in their first order."""
    seen: set[PlanItem] = set()
    out: list[PlanItem] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
