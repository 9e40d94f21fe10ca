"""What a restore (or its dry run) did with every object, and why.

One :class:`ObjectOutcome` per object of the backup, including those the plan
left out; per-phase timings (a readiness tier starts only after the previous
one is Ready, and the timestamps show it); counts; ``failed`` that is true
whenever anything was not restored as asked. Reports are plain data
(``to_dict``/``from_dict``) and render as markdown and table rows for
Prefect artifacts. They never carry object contents: a change is a field path
(and, for kinds other than Secret, a short scalar value), never a Secret value.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, overload

from kubekeep.catalog import RestoreRecord
from kubekeep.manifest import ObjectRef


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    RECREATED = "recreated"
    #: update policy, but the object already had every backed-up field
    UNCHANGED = "unchanged"
    #: exists (policy skip), or a kind rule says so (e.g. the auto-created ``default`` ServiceAccount)
    SKIPPED = "skipped"
    #: left out by the plan on purpose (owned by a restored owner, an event)
    EXCLUDED = "excluded"
    WOULD_CREATE = "would-create"
    WOULD_UPDATE = "would-update"
    WOULD_RECREATE = "would-recreate"
    WOULD_SKIP = "would-skip"
    # ---- problems: the object is not (or would not be) restored as asked
    CONFLICT = "conflict"
    IMMUTABLE_FIELD = "immutable-field"
    MISSING_STORAGE_CLASS = "missing-storage-class"
    MISSING_CRD = "missing-crd"
    NOT_CONVERTIBLE = "not-convertible"
    NAMESPACE_TERMINATING = "namespace-terminating"
    FAILED = "failed"
    #: the restore stopped (a readiness gate, a terminating namespace) before reaching it
    NOT_ATTEMPTED = "not-attempted"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES

    @property
    def exists_after(self) -> bool:
        """The object exists on the target after this action (what readiness gates wait for)."""
        return self in (Action.CREATED, Action.UPDATED, Action.RECREATED, Action.UNCHANGED, Action.SKIPPED)


_FAILURES = frozenset({
    Action.CONFLICT, Action.IMMUTABLE_FIELD, Action.MISSING_STORAGE_CLASS, Action.MISSING_CRD,
    Action.NOT_CONVERTIBLE, Action.NAMESPACE_TERMINATING, Action.FAILED, Action.NOT_ATTEMPTED,
})


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _parse_ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)  # one per object of a restore: kept small
class ObjectOutcome:
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    action: Action
    #: why: the policy or kind rule that decided, or the API's message
    reason: str = ""
    phase: str = ""
    tier: int | None = None
    #: changed fields (paths only for Secrets), for updates and dry runs against existing objects
    changes: tuple[str, ...] = ()
    #: the readiness gate's last word on it (None: not waited for)
    ready: bool | None = None

    @classmethod
    def of(cls, ref: ObjectRef, action: Action, reason: str = "", **kwargs: Any) -> ObjectOutcome:
        return cls(ref.group, ref.version, ref.kind, ref.namespace, ref.name, action, reason, **kwargs)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.group, self.kind, self.namespace, self.name, self.version)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "version": self.version, "kind": self.kind, "namespace": self.namespace,
                "name": self.name, "action": self.action.value, "reason": self.reason, "phase": self.phase,
                "tier": self.tier, "changes": list(self.changes), "ready": self.ready}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectOutcome:
        return cls(str(data["group"]), str(data["version"]), str(data["kind"]), str(data["namespace"]),
                   str(data["name"]), Action(data["action"]), str(data.get("reason", "")),
                   str(data.get("phase", "")), data.get("tier"), tuple(data.get("changes") or ()),
                   data.get("ready"))


#: what a report keeps in memory of a spooled restore (the first failures, the first changed objects);
#: every outcome is in the spool and in the recorded report
KEPT_FAILURES = 1000
KEPT_CHANGES = 50


class Outcomes(Sequence[ObjectOutcome]):
    """Every object's outcome, in order, with what the report reads of them kept as they come: counts per
    action, the number of failures and the first :data:`KEPT_FAILURES` of them, the first changed objects,
    the target namespaces and the claims (what the volume step needs).

    In memory (a list) by default; :meth:`spooled` appends them to a private JSON-lines file instead, so
    that a restore of 100,000 objects holds the counts, not the outcomes. Iterating a spooled log reads
    the file back one outcome at a time.
    """

    def __init__(self, items: Iterable[ObjectOutcome] = ()) -> None:
        self._items: list[ObjectOutcome] | None = []
        self._path: Path | None = None
        self._fh: Any = None
        self._len = 0
        self._counter: Counter[str] = Counter()
        self._failure_count = 0
        #: (position, outcome) of the first failures and of the first changed objects
        self._failures: list[tuple[int, ObjectOutcome]] = []
        self._changed: list[tuple[int, ObjectOutcome]] = []
        self._claims: list[tuple[int, ObjectOutcome]] = []
        self._namespaces: dict[str, None] = {}
        #: a spooled log's readiness marks, by position (written into the file by :meth:`seal`)
        self._ready: dict[int, bool] = {}
        for outcome in items:
            self.append(outcome)

    @classmethod
    def spooled(cls, path: Path) -> Outcomes:
        """A new log appended to ``path`` (created 0600; it must not exist)."""
        log = cls()
        log._items = None
        log._path = path
        log._fh = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w")
        return log

    @classmethod
    def reopen(cls, path: Path) -> Outcomes:
        """The log a sealed spooled log left in ``path`` (read once to count; never rewritten)."""
        log = cls()
        log._items = None
        log._path = path
        with open(path) as fh:
            for line in fh:
                log._note(ObjectOutcome.from_dict(json.loads(line)))
        return log

    @property
    def path(self) -> Path | None:
        return self._path

    # ---- writing --------------------------------------------------------
    def append(self, outcome: ObjectOutcome) -> None:
        if self._items is not None:
            self._items.append(outcome)
        else:
            if self._fh is None:
                raise ValueError(f"outcome log {self._path} is sealed")
            self._fh.write(json.dumps(outcome.to_dict(), separators=(",", ":")) + "\n")
        self._note(outcome)

    def _note(self, outcome: ObjectOutcome) -> None:
        position = self._len
        self._len += 1
        self._counter[outcome.action.value] += 1
        if outcome.action.is_failure:
            self._failure_count += 1
            if len(self._failures) < KEPT_FAILURES:
                self._failures.append((position, outcome))
        elif outcome.changes and len(self._changed) < KEPT_CHANGES:
            self._changed.append((position, outcome))
        if outcome.kind == "PersistentVolumeClaim" and not outcome.group:
            self._claims.append((position, outcome))
        if outcome.namespace:
            self._namespaces[outcome.namespace] = None

    def set_ready(self, position: int, ready: bool) -> None:
        """The readiness gate's word on the outcome at ``position``."""
        if self._items is not None:
            self._items[position] = replace(self._items[position], ready=ready)
            return
        if self._fh is None:
            raise ValueError(f"outcome log {self._path} is sealed")
        self._ready[position] = ready

    def seal(self) -> None:
        """Finish a spooled log: close it, with its readiness marks written in (a no-op in memory)."""
        if self._fh is None:
            return
        self._fh.close()
        self._fh = None
        if self._ready and self._path is not None:
            marked = self._path.with_name(self._path.name + ".ready")
            with open(self._path) as src, os.fdopen(os.open(marked, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                                                    "w") as out:
                for position, line in enumerate(src):
                    if position in self._ready:
                        rec = json.loads(line)
                        rec["ready"] = self._ready[position]
                        line = json.dumps(rec, separators=(",", ":")) + "\n"
                    out.write(line)
            os.replace(marked, self._path)
            self._ready = {}

    # ---- reading --------------------------------------------------------
    def _at(self, position: int, outcome: ObjectOutcome) -> ObjectOutcome:
        if self._items is not None:
            return self._items[position]
        ready = self._ready.get(position)
        return outcome if ready is None else replace(outcome, ready=ready)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[ObjectOutcome]:
        if self._items is not None:
            yield from self._items
            return
        assert self._path is not None
        if self._fh is not None:
            self._fh.flush()
        with open(self._path) as fh:
            for position, line in enumerate(fh):
                if position >= self._len:
                    break
                yield self._at(position, ObjectOutcome.from_dict(json.loads(line)))

    @overload
    def __getitem__(self, index: int) -> ObjectOutcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ObjectOutcome]: ...
    def __getitem__(self, index: int | slice) -> ObjectOutcome | Sequence[ObjectOutcome]:
        if self._items is not None:
            return self._items[index]
        return list(self)[index]  # a spool is read in order; random access is kept correct, not fast

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Outcomes | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = "memory" if self._items is not None else str(self._path)
        return f"Outcomes({self._len} in {where})"

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes per action, in :class:`Action` order."""
        return {a.value: self._counter[a.value] for a in Action if self._counter[a.value]}

    @property
    def failure_count(self) -> int:
        return self._failure_count

    def failures(self, limit: int | None = None) -> list[ObjectOutcome]:
        """The failed outcomes in order (the first ``limit``); all of them are read back from a spool when
        more are asked for than were kept."""
        wanted = self._failure_count if limit is None else min(limit, self._failure_count)
        if wanted <= len(self._failures):
            return [self._at(p, o) for p, o in self._failures[:wanted]]
        return [o for o in self if o.action.is_failure][:wanted]

    def changed(self, limit: int = KEPT_CHANGES) -> list[ObjectOutcome]:
        """The first ``limit`` (at most :data:`KEPT_CHANGES`) outcomes with changes that are not failures."""
        return [self._at(p, o) for p, o in self._changed[:limit]]

    def claims(self) -> list[tuple[int, ObjectOutcome]]:
        """(position, outcome) of every PersistentVolumeClaim."""
        return [(p, self._at(p, o)) for p, o in self._claims]

    @property
    def namespaces(self) -> list[str]:
        """The namespaces of the outcomes, in first-seen order."""
        return list(self._namespaces)


class VolumeStatus(StrEnum):
    """What happened to the data of one restored claim."""

    #: restored and every file re-read and compared with the snapshot
    VERIFIED = "verified"
    #: restored, not verified (verification turned off): workloads that mount it are not started
    UNVERIFIED = "unverified"
    #: the restore of its data failed (or its claim never became Bound): workloads that mount it are not started
    FAILED = "failed"


@dataclass(frozen=True)
class VolumeOutcome:
    """The data of one restored PersistentVolumeClaim."""

    namespace: str
    name: str
    status: VolumeStatus
    #: ``namespace/name`` of the claim in the restore point (before namespace mapping)
    source: str = ""
    snapshot_id: str = ""
    #: direct (the worker writes the volume) or mover-job
    method: str = ""
    files: int = 0
    bytes: int = 0
    error: str = ""

    @property
    def pvc(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def usable(self) -> bool:
        """Workloads may start on it (its data was restored and verified)."""
        return self.status is VolumeStatus.VERIFIED

    def why_unusable(self) -> str:
        if self.status is VolumeStatus.UNVERIFIED:
            return f"volume data of PVC {self.pvc} was restored but not verified (verification is off)"
        return f"volume data of PVC {self.pvc} failed: {self.error or 'unknown error'}"

    def to_dict(self) -> dict[str, Any]:
        return {"pvc": self.pvc, "namespace": self.namespace, "name": self.name, "status": self.status.value,
                "source": self.source, "snapshot_id": self.snapshot_id, "method": self.method,
                "files": self.files, "bytes": self.bytes, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeOutcome:
        return cls(str(data["namespace"]), str(data["name"]), VolumeStatus(data["status"]),
                   str(data.get("source", "")), str(data.get("snapshot_id", "")), str(data.get("method", "")),
                   int(data.get("files", 0)), int(data.get("bytes", 0)), str(data.get("error", "")))


@dataclass
class PhaseReport:
    name: str
    #: none | crds-established | ready | pvcs-bound (the gate before workloads)
    wait: str
    tier: int | None = None
    objects: int = 0
    started_at: datetime | None = None
    #: every object of the phase was sent
    applied_at: datetime | None = None
    #: the phase's gate passed (None: no gate, or it did not pass)
    ready_at: datetime | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "wait": self.wait, "tier": self.tier, "objects": self.objects,
                "started_at": _iso(self.started_at), "applied_at": _iso(self.applied_at),
                "ready_at": _iso(self.ready_at), "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseReport:
        return cls(str(data["name"]), str(data["wait"]), data.get("tier"), int(data.get("objects", 0)),
                   _parse_ts(data.get("started_at")), _parse_ts(data.get("applied_at")),
                   _parse_ts(data.get("ready_at")), data.get("error"))


class RestoreFailedError(Exception):
    """A restore (or dry run) reported failures; the message lists them."""

    def __init__(self, report: RestoreReport) -> None:
        self.report = report
        super().__init__(report.failure_summary())


@dataclass
class RestoreReport:
    dry_run: bool
    policy: dict[str, Any] = field(default_factory=dict)
    cluster: str = ""
    #: every object's outcome (a list given here becomes an in-memory :class:`Outcomes`)
    outcomes: Outcomes = field(default_factory=Outcomes)
    phases: list[PhaseReport] = field(default_factory=list)
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    #: why the restore stopped before the end (None: it ran every phase)
    aborted: str | None = None
    #: the data of the restored claims
    volumes: list[VolumeOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.outcomes, Outcomes):
            self.outcomes = Outcomes(self.outcomes)

    # ---- queries ------------------------------------------------------
    @property
    def failed(self) -> bool:
        return (self.aborted is not None or self.outcomes.failure_count > 0
                or any(v.status is VolumeStatus.FAILED for v in self.volumes))

    @property
    def failures(self) -> list[ObjectOutcome]:
        return self.outcomes.failures()

    @property
    def counts(self) -> dict[str, int]:
        return self.outcomes.counts

    @property
    def status(self) -> str:
        if self.dry_run:
            return "problems found" if self.failed else "no problems found"
        if self.aborted is not None:
            return "failed (stopped)"
        return "completed with failures" if self.failed else "completed"

    def outcome(self, kind: str, name: str, namespace: str = "") -> ObjectOutcome:
        """The outcome of one object (``kind`` may be ``Kind`` or ``Kind.group``)."""
        for o in self.outcomes:
            if (o.ref.group_kind == kind or o.kind == kind) and o.name == name and o.namespace == namespace:
                return o
        where = f"{namespace}/{name}" if namespace else name
        raise KeyError(f"no outcome for {kind} {where}")

    def phase(self, name_or_tier: str | int) -> PhaseReport:
        for p in self.phases:
            if p.name == name_or_tier or (isinstance(name_or_tier, int) and p.tier == name_or_tier):
                return p
        raise KeyError(f"no phase {name_or_tier!r}")

    def failure_summary(self, limit: int = 20) -> str:
        lines = [f"restore {self.status}" + (f": {self.aborted}" if self.aborted else "")]
        count = self.outcomes.failure_count
        lines += [f"  volume {v.pvc}: {v.status.value}: {v.error}" for v in self.volumes
                  if v.status is VolumeStatus.FAILED]
        lines += [f"  {o.action.value}: {o.ref}: {o.reason}" for o in self.outcomes.failures(limit)]
        if count > limit:
            lines.append(f"  ... and {count - limit} more")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if self.failed:
            raise RestoreFailedError(self)

    # ---- rendering ----------------------------------------------------
    def table_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One row per object, for a Prefect table artifact; with ``limit``, the first ``limit`` rows with
        the failures first (the rest in order)."""
        if limit is None:
            chosen: Iterable[ObjectOutcome] = self.outcomes
        else:
            chosen = self.outcomes.failures(limit)
            if len(chosen) < limit:
                rest = (o for o in self.outcomes if not o.action.is_failure)
                chosen = [*chosen, *(o for _, o in zip(range(limit - len(chosen)), rest, strict=False))]
        return [{"kind": o.ref.group_kind, "namespace": o.namespace, "name": o.name, "action": o.action.value,
                 "reason": o.reason, "phase": o.phase, "tier": "" if o.tier is None else o.tier,
                 "changes": ", ".join(o.changes)} for o in chosen]

    def first_outcomes(self, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` outcomes as dicts (:meth:`ObjectOutcome.to_dict`), failures first."""
        chosen = self.outcomes.failures(limit)
        if len(chosen) < limit:
            rest = (o for o in self.outcomes if not o.action.is_failure)
            chosen += [o for _, o in zip(range(limit - len(chosen)), rest, strict=False)]
        return [o.to_dict() for o in chosen]

    def markdown(self, *, max_problems: int = 50, objects: bool = False) -> str:
        """A summary for a Prefect markdown artifact: status, counts, phase timings, volumes, problems;
        with ``objects``, a table of every object too (a report file)."""
        title = "Restore dry run" if self.dry_run else "Restore"
        out = [f"# {title}: {self.status}", ""]
        if self.aborted:
            out += [f"**Stopped:** {_md(self.aborted)}", ""]
        policy = self.policy.get("existing", "")
        out += [f"Cluster `{self.cluster}` · existing objects: `{policy}` · {len(self.outcomes)} objects", ""]
        out += ["| action | count |", "|---|---:|"]
        out += [f"| {action} | {n} |" for action, n in self.counts.items()]
        if self.phases:
            out += ["", "| phase | wait | objects | started | applied | ready | error |",
                    "|---|---|---:|---|---|---|---|"]
            for p in self.phases:
                out.append(f"| {p.name} | {p.wait} | {p.objects} | {_hms(p.started_at)} | {_hms(p.applied_at)} "
                           f"| {_hms(p.ready_at)} | {_md(p.error or '')} |")
        if self.volumes:
            out += ["", "## Volumes", "", "| claim | data | files | bytes | error |", "|---|---|---:|---:|---|"]
            out += [f"| {v.pvc} | {v.status.value} | {v.files} | {v.bytes} | {_md(v.error)} |" for v in self.volumes]
        count = self.outcomes.failure_count
        if count:
            out += ["", "## Problems", ""]
            out += [f"- **{o.action.value}** {_md(str(o.ref))}: {_md(o.reason)}"
                    for o in self.outcomes.failures(max_problems)]
            if count > max_problems:
                out.append(f"- ... and {count - max_problems} more (see the table)")
        changed = self.outcomes.changed()
        if changed:
            out += ["", "## Changes", ""]
            out += [f"- {o.action.value} {_md(str(o.ref))}: {_md(', '.join(o.changes))}" for o in changed[:50]]
        if objects and self.outcomes:
            out += ["", "## Objects", "", "| kind | namespace | name | action | reason | phase |",
                    "|---|---|---|---|---|---|"]
            out += [f"| {o.ref.group_kind} | {o.namespace} | {_md(o.name)} | {o.action.value} | {_md(o.reason)} "
                    f"| {o.phase} |" for o in self.outcomes]
        return "\n".join(out) + "\n"

    # ---- serialisation --------------------------------------------------
    def to_dict(self, *, outcomes: bool = True) -> dict[str, Any]:
        data = {"dry_run": self.dry_run, "status": self.status, "failed": self.failed, "policy": self.policy,
                "cluster": self.cluster, "counts": self.counts, "aborted": self.aborted,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "phases": [p.to_dict() for p in self.phases], "volumes": [v.to_dict() for v in self.volumes]}
        if outcomes:
            data["outcomes"] = [o.to_dict() for o in self.outcomes]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def json_chunks(self) -> Iterator[str]:
        """:meth:`to_json`'s document piece by piece (one outcome at a time): a report of 100,000 objects
        is written without building its whole dict and string first."""
        head = self.to_dict(outcomes=False)
        yield json.dumps(head, sort_keys=True)[:-1] + ', "outcomes": ['
        for i, outcome in enumerate(self.outcomes):
            yield ("," if i else "") + json.dumps(outcome.to_dict(), sort_keys=True)
        yield "]}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestoreReport:
        return cls(bool(data["dry_run"]), dict(data.get("policy") or {}), str(data.get("cluster", "")),
                   Outcomes(ObjectOutcome.from_dict(o) for o in data.get("outcomes") or ()),
                   [PhaseReport.from_dict(p) for p in data.get("phases") or ()],
                   _parse_ts(data.get("started_at")) or _now(), _parse_ts(data.get("finished_at")),
                   data.get("aborted"), [VolumeOutcome.from_dict(v) for v in data.get("volumes") or ()])


def _hms(ts: datetime | None) -> str:
    return ts.strftime("%H:%M:%S.%f")[:-3] if ts else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------ changes

#: top-level fields that are not content (or are owned by the server)
_NOT_CONTENT = frozenset({"apiVersion", "kind", "metadata", "status"})
#: maps whose keys are worth naming one by one
_KEYED = frozenset({"data", "stringData", "binaryData"})
_MAX_VALUE = 40
_MAX_CHANGES = 20


def summarize_changes(before: Mapping[str, Any], after: Mapping[str, Any], *, limit: int = _MAX_CHANGES) -> list[str]:
    """Paths of the content fields that differ between two versions of one object.

    Top-level fields, one level into ``spec`` and into ``data``-like maps, and
    the labels and annotations. Short scalars of kinds other than Secret show
    ``old -> new``; Secret values never appear.
    """
    secret = after.get("kind") == "Secret" or before.get("kind") == "Secret"
    changes: list[str] = []
    for key in ("labels", "annotations"):
        if _meta(before, key) != _meta(after, key):
            changes.append(f"metadata.{key}")
    for key in sorted((set(before) | set(after)) - _NOT_CONTENT):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key == "spec" and isinstance(old, dict) and isinstance(new, dict):
            changes += [_change(f"spec.{k}", old.get(k), new.get(k), secret)
                        for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif key in _KEYED and isinstance(old or {}, dict) and isinstance(new or {}, dict):
            o, n = old or {}, new or {}
            changes += [_change(f"{key}.{k}", o.get(k), n.get(k), secret or key == "binaryData")
                        for k in sorted(set(o) | set(n)) if o.get(k) != n.get(k)]
        else:
            changes.append(_change(key, old, new, secret))
    if len(changes) > limit:
        changes = [*changes[:limit], f"... {len(changes) - limit} more"]
    return changes


def _meta(obj: Mapping[str, Any], key: str) -> Any:
    metadata = obj.get("metadata")
    return (metadata.get(key) or {}) if isinstance(metadata, dict) else {}


def _change(path: str, old: Any, new: Any, hide_values: bool) -> str:
    if old is None:
        return f"{path} (added)"
    if new is None:
        return f"{path} (removed)"
    if hide_values or not _short_scalar(old) or not _short_scalar(new):
        return path
    return f"{path}: {json.dumps(old)} -> {json.dumps(new)}"


def _short_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str) and len(str(value)) <= _MAX_VALUE



# ------------------------------------------------------------------ the catalog's restores table

def catalog_record(report: RestoreReport, *, restore_id: str, restore_point_id: str,
                   target_namespaces: Sequence[str]) -> RestoreRecord:
    """The ``restores`` row of a report: counts, and every object's, volume's and phase's outcome."""
    counts = report.counts
    status = "succeeded" if not report.failed else ("failed" if report.aborted else "partially_failed")
    return RestoreRecord(
        id=restore_id, restore_point_id=restore_point_id, started_at=report.started_at,
        finished_at=report.finished_at or _now(), status=status, target_cluster=report.cluster,
        target_namespaces=tuple(target_namespaces), reason=report.failure_summary(10) if report.failed else None,
        dry_run=report.dry_run,
        created=counts.get("created", 0) + counts.get("recreated", 0) + counts.get("would-create", 0),
        updated=counts.get("updated", 0) + counts.get("would-update", 0),
        skipped=counts.get("skipped", 0) + counts.get("unchanged", 0) + counts.get("would-skip", 0),
        failed=report.outcomes.failure_count, aborted=report.aborted,
        outcomes=OutcomeRows(report.outcomes),
        volumes=tuple({k: v for k, v in vol.to_dict().items() if k != "pvc"} for vol in report.volumes),
        phases=tuple({"name": p.name, "wait": p.wait, "tier": p.tier, "objects": p.objects,
                      "started_at": p.started_at, "applied_at": p.applied_at, "ready_at": p.ready_at,
                      "error": p.error} for p in report.phases))


class OutcomeRows(Sequence[Mapping[str, Any]]):
    """The catalog rows of a report's outcomes, made one by one each time they are iterated (a spooled
    report's outcomes are never all in memory; the catalog turns them into columns as they come)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes

    def __len__(self) -> int:
        return len(self.outcomes)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for o in self.outcomes:
            yield o.to_dict()

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        if isinstance(index, slice):
            return [o.to_dict() for o in self.outcomes[index]]
        return self.outcomes[index].to_dict()


def report_from_record(record: RestoreRecord, *, policy: Mapping[str, Any] | None = None) -> RestoreReport:
    """The report of a recorded restore (rows written before per-object outcomes were kept have none)."""
    return RestoreReport(
        dry_run=record.dry_run, policy=dict(policy or {}), cluster=record.target_cluster,
        outcomes=Outcomes(ObjectOutcome.from_dict({**o, "changes": o.get("changes") or ()})
                          for o in record.outcomes or ()),
        phases=[PhaseReport(str(p["name"]), str(p["wait"]), p.get("tier"), int(p.get("objects") or 0),
                            p.get("started_at"), p.get("applied_at"), p.get("ready_at"), p.get("error"))
                for p in record.phases or ()],
        started_at=record.started_at, finished_at=record.finished_at, aborted=record.aborted,
        volumes=[VolumeOutcome.from_dict(v) for v in record.volumes or ()])
