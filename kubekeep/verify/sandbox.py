"""The sandbox a verification restores into: namespaces that say whose they are, a heartbeat, teardown.

A sandbox is one namespace per namespace of the restore point, named ``kkv-<run id>-<source>``,
each labelled ``kubekeep.io/sandbox=<run id>`` and annotated with when it expires, who owns it
(host, process, start time, flow run) and what it restores. Every object the restore creates
carries the same label (the isolation chain adds it), so teardown finds the cluster-scoped ones
too (ClusterRoleBinding copies; docs/restore-order.md).

While its verification runs, the owner renews a Lease ``kubekeep-sandbox`` in the first sandbox
namespace. A later run removes a sandbox whose owner is gone: its lifetime passed, its process
on this host is dead, or its heartbeat stopped. So a run killed with ``kill -9`` leaves a sandbox
that the next run removes, and two runs at once never remove each other's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubekeep.cluster import ApiError, Cluster

from .isolation import SANDBOX_LABEL, isolation_policy

log = logging.getLogger(__name__)

NAME_PREFIX = "kkv"
EXPIRES_ANNOTATION = "kubekeep.io/sandbox-expires"
OWNER_ANNOTATION = "kubekeep.io/sandbox-owner"
SOURCE_ANNOTATION = "kubekeep.io/sandbox-source"
RESTORE_POINT_ANNOTATION = "kubekeep.io/sandbox-restore-point"
HEARTBEAT_LEASE = "kubekeep-sandbox"
DEFAULT_LEASE_SECONDS = 60
_RUN_ID_RE = re.compile(r"^[a-z0-9]{4,16}$")
_MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class SandboxError(RuntimeError):
    """The sandbox cannot be created as asked (a name is taken by something that is not ours, ...)."""


def new_run_id() -> str:
    """A fresh run id: 10 lowercase hex characters (part of namespace names and a label value)."""
    return uuid.uuid4().hex[:10]


def sandbox_namespace(run_id: str, source: str) -> str:
    """``kkv-<run id>-<source>``, shortened with a hash of the source when longer than 63 characters."""
    name = f"{NAME_PREFIX}-{run_id}-{source}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(source.encode()).hexdigest()[:6]
    keep = 63 - len(f"{NAME_PREFIX}-{run_id}--{digest}")
    return f"{NAME_PREFIX}-{run_id}-{source[:keep].rstrip('-')}-{digest}"


def _proc_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot; tells a reused pid apart), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class Owner:
    """Who runs a sandbox: this process on this host, and the flow run (when there is one)."""

    host: str
    pid: int
    started: str
    run: str = ""

    @classmethod
    def current(cls, run: str = "") -> Owner:
        return cls(socket.gethostname(), os.getpid(), _proc_start(os.getpid()) or "", run)

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "started": self.started, "run": self.run},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Owner | None:
        try:
            data = json.loads(text or "")
            return cls(str(data["host"]), int(data["pid"]), str(data.get("started", "")), str(data.get("run", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool | None:
        """Whether the owning process still runs; None when it ran on another host (unknown from here)."""
        if self.host != socket.gethostname():
            return None
        started = _proc_start(self.pid)
        return started is not None and (not self.started or started == self.started)

    def describe(self) -> str:
        run = f", flow run {self.run}" if self.run else ""
        return f"pid {self.pid} on {self.host}{run}"


@dataclass(frozen=True)
class Sandbox:
    """The namespaces of one verification run and what they say about it."""

    run_id: str
    #: source namespace (in the restore point) -> sandbox namespace
    namespaces: dict[str, str]
    restore_point_id: str
    expires_at: datetime
    owner: Owner
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @classmethod
    def plan(cls, source_namespaces: Iterable[str], restore_point_id: str, *, run_id: str | None = None,
             lifetime: timedelta = timedelta(hours=6), owner: Owner | None = None,
             lease_seconds: int = DEFAULT_LEASE_SECONDS, now: datetime | None = None) -> Sandbox:
        run_id = run_id or new_run_id()
        if not _RUN_ID_RE.match(run_id):
            raise SandboxError(f"sandbox run id {run_id!r}: use 4-16 lowercase letters and digits")
        sources = sorted(set(source_namespaces))
        if not sources:
            raise SandboxError(f"restore point {restore_point_id} has no namespace to restore into a sandbox")
        names = {s: sandbox_namespace(run_id, s) for s in sources}
        if len(set(names.values())) != len(names):
            raise SandboxError(f"sandbox namespace names collide: {names}")
        return cls(run_id, names, restore_point_id, (now or datetime.now(UTC)) + lifetime,
                   owner or Owner.current(), lease_seconds)

    @property
    def primary(self) -> str:
        """The namespace holding the heartbeat Lease."""
        return self.namespaces[min(self.namespaces)]

    @property
    def selector(self) -> str:
        return f"{SANDBOX_LABEL}={self.run_id}"

    def namespace_manifest(self, source: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": self.namespaces[source],
            "labels": {SANDBOX_LABEL: self.run_id},
            "annotations": {EXPIRES_ANNOTATION: self.expires_at.isoformat(), OWNER_ANNOTATION: self.owner.to_json(),
                            SOURCE_ANNOTATION: source, RESTORE_POINT_ANNOTATION: self.restore_point_id}}}


def _create_ours(cluster: Cluster, obj: dict[str, Any], run_id: str) -> None:
    """Create ``obj``; one that exists already is fine only if it is this sandbox's (a retried step)."""
    try:
        cluster.create(obj)
    except ApiError as exc:
        if exc.status != 409:
            raise
        md = obj["metadata"]
        existing = cluster.get_or_none(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        if existing is None or ((existing.get("metadata") or {}).get("labels") or {}).get(SANDBOX_LABEL) != run_id:
            where = f"{md.get('namespace')}/{md['name']}" if md.get("namespace") else md["name"]
            raise SandboxError(f"{obj['kind']} {where} exists and is not part of sandbox {run_id}") from None


def create_sandbox(cluster: Cluster, sandbox: Sandbox, *, allow_dns: bool = True) -> None:
    """Create the namespaces, their isolation NetworkPolicy and the heartbeat Lease (in that order: the
    policy is in force before anything is restored). Safe to retry."""
    for source in sorted(sandbox.namespaces):
        _create_ours(cluster, sandbox.namespace_manifest(source), sandbox.run_id)
    for namespace in sandbox.namespaces.values():
        _create_ours(cluster, isolation_policy(namespace, sandbox.run_id, allow_dns=allow_dns), sandbox.run_id)
    now = _microtime(datetime.now(UTC))
    _create_ours(cluster, {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": HEARTBEAT_LEASE, "namespace": sandbox.primary, "labels": {SANDBOX_LABEL: sandbox.run_id}},
        "spec": {"holderIdentity": sandbox.owner.to_json(), "leaseDurationSeconds": sandbox.lease_seconds,
                 "acquireTime": now, "renewTime": now}}, sandbox.run_id)


def _microtime(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_MICROTIME)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def renew_heartbeat(cluster: Cluster, sandbox: Sandbox, *, now: datetime | None = None) -> None:
    cluster.patch("coordination.k8s.io/v1", "Lease", HEARTBEAT_LEASE,
                  {"spec": {"renewTime": _microtime(now or datetime.now(UTC))}}, namespace=sandbox.primary)


class Heartbeat:
    """Renews the sandbox's Lease every ``lease_seconds / 4`` in a thread while its verification runs."""

    def __init__(self, cluster: Cluster, sandbox: Sandbox) -> None:
        self.cluster = cluster
        self.sandbox = sandbox
        self.errors: list[str] = []
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sandbox-heartbeat-{sandbox.run_id}", daemon=True)

    def _run(self) -> None:
        interval = max(self.sandbox.lease_seconds / 4, 0.2)
        while not self._stop.wait(interval):
            try:
                renew_heartbeat(self.cluster, self.sandbox)
                self.renewals += 1
            except ApiError as exc:  # a missed beat is not fatal; several in a row let the sandbox lapse
                self.errors.append(str(exc))
                log.warning("sandbox %s: heartbeat not renewed: %s", self.sandbox.run_id, exc)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------ finding them


@dataclass(frozen=True)
class SandboxState:
    """A sandbox as the cluster shows it (possibly left by a run that died)."""

    run_id: str
    namespaces: tuple[str, ...]
    created_at: datetime | None
    expires_at: datetime | None
    owner: Owner | None
    restore_point_id: str
    renewed_at: datetime | None
    lease_seconds: int | None
    terminating: bool

    def abandoned(self, now: datetime, *, owner_alive: Callable[[Owner], bool | None] = Owner.alive) -> str | None:
        """Why the sandbox has no live owner any more (None: it may still be in use)."""
        if self.expires_at is not None and self.expires_at <= now:
            return f"its lifetime ended at {self.expires_at.isoformat()}"
        if self.owner is not None and owner_alive(self.owner) is False:
            return f"its owner ({self.owner.describe()}) is gone"
        if self.renewed_at is not None and self.lease_seconds is not None:
            if self.renewed_at + timedelta(seconds=self.lease_seconds) < now:
                return f"its heartbeat stopped at {self.renewed_at.isoformat()}"
            return None
        grace = timedelta(seconds=self.lease_seconds or DEFAULT_LEASE_SECONDS)
        if self.created_at is not None and self.created_at + grace < now:
            return "it has no heartbeat (its run stopped while creating it)"
        if self.expires_at is None and self.owner is None:
            return "it carries no owner or lifetime"
        return None


def find_sandboxes(cluster: Cluster) -> list[SandboxState]:
    """Every sandbox on the cluster (namespaces labelled ``kubekeep.io/sandbox``), grouped by run id."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for ns in cluster.list_pages(cluster.resource_for("v1", "Namespace"), label_selector=SANDBOX_LABEL):
        run_id = ((ns.get("metadata") or {}).get("labels") or {}).get(SANDBOX_LABEL, "")
        groups.setdefault(str(run_id), []).append(ns)
    out: list[SandboxState] = []
    for run_id, namespaces in sorted(groups.items()):
        created = [t for t in (_parse_time(n["metadata"].get("creationTimestamp")) for n in namespaces) if t]
        annotations = [n["metadata"].get("annotations") or {} for n in namespaces]
        expires = [t for t in (_parse_time(a.get(EXPIRES_ANNOTATION)) for a in annotations) if t]
        owner = next((o for o in (Owner.from_json(a.get(OWNER_ANNOTATION)) for a in annotations) if o), None)
        renewed: datetime | None = None
        lease_seconds: int | None = None
        for ns in namespaces:
            lease = cluster.get_or_none("coordination.k8s.io/v1", "Lease", HEARTBEAT_LEASE, ns["metadata"]["name"])
            if lease is not None:
                spec = lease.get("spec") or {}
                renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
                duration = spec.get("leaseDurationSeconds")
                lease_seconds = duration if isinstance(duration, int) else None
                break
        out.append(SandboxState(
            run_id=run_id, namespaces=tuple(sorted(n["metadata"]["name"] for n in namespaces)),
            created_at=min(created) if created else None, expires_at=min(expires) if expires else None,
            owner=owner, restore_point_id=next((str(a[RESTORE_POINT_ANNOTATION]) for a in annotations
                                                if a.get(RESTORE_POINT_ANNOTATION)), ""),
            renewed_at=renewed, lease_seconds=lease_seconds,
            terminating=any((n.get("status") or {}).get("phase") == "Terminating" for n in namespaces)))
    return out


# --------------------------------------------------------------- teardown


@dataclass
class TeardownResult:
    run_id: str
    namespaces: list[str] = field(default_factory=list)
    #: cluster-scoped objects the restore made for the sandbox and teardown deleted (``Kind name``)
    cluster_objects: list[str] = field(default_factory=list)
    #: what teardown could not remove, and why
    left: list[str] = field(default_factory=list)
    #: why the sandbox was removed (leftover cleanup: why it counted as abandoned)
    why: str = ""
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.left

    def describe(self) -> str:
        if self.complete:
            return "complete"
        return "incomplete: " + "; ".join(self.left)


def _sandbox_namespaces(cluster: Cluster, run_id: str) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.list_pages(
        cluster.resource_for("v1", "Namespace"), label_selector=f"{SANDBOX_LABEL}={run_id}"))


def _cluster_scoped_labelled(cluster: Cluster, selector: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    for resource in cluster.preferred_resources(refresh=True):
        if resource.namespaced or not {"list", "delete"} <= resource.verbs:
            continue
        if (resource.group, resource.kind) == ("", "Namespace"):
            continue
        try:
            for obj in cluster.list_pages(resource, label_selector=selector):
                yield resource, obj
        except ApiError as exc:
            if exc.status in (403, 404, 405):  # not ours to list, or gone since discovery
                continue
            raise


def _crd_in_use_outside(cluster: Cluster, crd: dict[str, Any], run_id: str) -> str | None:
    """Why a CRD the sandbox created must stay: custom resources of it exist outside the sandbox."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    versions = [v.get("name") for v in spec.get("versions") or () if v.get("served", True)]
    for version in versions:
        try:
            resource = cluster.resource_for(f"{group}/{version}", kind)
        except ApiError:
            continue
        for obj in cluster.list_pages(resource):
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(SANDBOX_LABEL) != run_id:
                md = obj.get("metadata") or {}
                where = f"{md.get('namespace')}/{md.get('name')}" if md.get("namespace") else md.get("name")
                return f"{kind} {where} outside the sandbox uses it"
        return None
    return None


def teardown(cluster: Cluster, run_id: str, *, wait: bool = True, timeout: float = 180.0,
             why: str = "") -> TeardownResult:
    """Delete everything of sandbox ``run_id``: the cluster-scoped objects its restore made (labelled with
    the run id; a CustomResourceDefinition only while no custom resource outside the sandbox uses it),
    then its namespaces; with ``wait``, until they are gone. Idempotent; never raises for what it could
    not delete (``left`` says what and why)."""
    started = time.monotonic()
    result = TeardownResult(run_id, why=why)
    selector = f"{SANDBOX_LABEL}={run_id}"
    try:
        namespaces = _sandbox_namespaces(cluster, run_id)
        result.namespaces = namespaces
        for resource, obj in list(_cluster_scoped_labelled(cluster, selector)):
            name = obj["metadata"]["name"]
            what = f"{resource.kind} {name}"
            if (resource.group, resource.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
                in_use = _crd_in_use_outside(cluster, obj, run_id)
                if in_use:
                    result.left.append(f"{what} kept: {in_use}")
                    continue
            try:
                cluster.delete(resource.api_version, resource.kind, name)
                result.cluster_objects.append(what)
            except ApiError as exc:
                result.left.append(f"{what}: {exc}")
        for namespace in namespaces:
            try:
                cluster.delete("v1", "Namespace", namespace)
            except ApiError as exc:
                result.left.append(f"Namespace {namespace}: {exc}")
        if wait:
            _wait_gone(cluster, namespaces, started + timeout, result)
    except ApiError as exc:
        result.left.append(f"teardown stopped: {exc}")
    result.seconds = time.monotonic() - started
    return result


def _wait_gone(cluster: Cluster, namespaces: list[str], deadline: float, result: TeardownResult) -> None:
    pending = list(namespaces)
    while pending:
        pending = [ns for ns in pending if cluster.get_or_none("v1", "Namespace", ns) is not None]
        if not pending:
            break
        if time.monotonic() > deadline:
            for ns in pending:
                obj = cluster.get_or_none("v1", "Namespace", ns) or {}
                conditions = [f"{c.get('type')}: {c.get('message')}" for c in (obj.get("status") or {}).get(
                    "conditions") or () if c.get("status") == "True"]
                result.left.append(f"Namespace {ns} still Terminating" + (f" ({'; '.join(conditions)})"
                                                                          if conditions else ""))
            return
        time.sleep(0.5)
    # claims of the sandbox bound to volumes that outlive them (reclaim policy Retain)
    gone = set(namespaces)
    with contextlib.suppress(ApiError):
        for pv in cluster.list_pages(cluster.resource_for("v1", "PersistentVolume")):
            claim = (pv.get("spec") or {}).get("claimRef") or {}
            policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy")
            if claim.get("namespace") in gone and policy not in (None, "Delete"):
                result.left.append(f"PersistentVolume {pv['metadata']['name']} (reclaim policy {policy}) held the "
                                   f"sandbox claim {claim.get('namespace')}/{claim.get('name')}: delete it by hand")


def cleanup_abandoned(cluster: Cluster, *, now: datetime | None = None, keep: Iterable[str] = (),
                      owner_alive: Callable[[Owner], bool | None] = Owner.alive, wait: bool = True,
                      timeout: float = 180.0) -> list[TeardownResult]:
    """Tear down every sandbox whose owner is gone (see :meth:`SandboxState.abandoned`), except ``keep``."""
    now = now or datetime.now(UTC)
    skip = set(keep)
    out = []
    for state in find_sandboxes(cluster):
        if state.run_id in skip:
            continue
        why = state.abandoned(now, owner_alive=owner_alive)
        if why is None:
            continue
        log.info("removing abandoned sandbox %s (%s): %s", state.run_id, ", ".join(state.namespaces), why)
        out.append(teardown(cluster, state.run_id, wait=wait, timeout=timeout, why=why))
    return out
