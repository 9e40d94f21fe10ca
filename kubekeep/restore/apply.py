"""Apply a restore plan to a cluster, or dry-run it: load -> plan -> transform -> **apply** -> report.

:func:`dry_run` asks the API server what would happen (``dryRun=All`` creates,
server-side-apply dry runs for existing objects under policy ``update``) and
changes nothing. :func:`apply` sends the plan phase by phase:

1. preflight: every target namespace is looked up; a Terminating one stops
   the restore before anything is sent; missing ones are created first
   (``create_namespaces``);
2. phases in plan order; objects of one priority entry go out in parallel;
   each object runs through its kind's actions (:mod:`.actions`), then is
   created, or - when it exists - skipped, updated (server-side apply, field
   manager ``kubekeep``, forced) or recreated (deleted, gone, created), as the
   :class:`~kubekeep.restore.policy.RestorePolicy` says;
3. gates: after the CRD phase, until every CRD is Established and its kinds
   are served (re-discovery); before the first workload tier, until the
   restored claims are Bound, then the ``before_workloads`` hook (volume
   data); after each tier, until its workloads are Ready. A gate that does
   not pass stops the restore with a message naming what was not ready;
4. volume data that failed or was not verified (as the hook returned it)
   holds back every object whose pods mount the claim; the restore stops after the
   phase that held something back, or - when no restored workload mounts the
   claim - before the first phase after the workloads (an operator's custom
   resources may mount it). Nothing that follows a failed volume in tier
   order is created.

Per-object failures are collected, never raised: the returned
:class:`~kubekeep.restore.report.RestoreReport` says what happened to every
object and ``report.failed`` is true when anything was not restored.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kubekeep.cluster import ApiError, Cluster
from kubekeep.cluster.poll import pauses
from kubekeep.manifest import ObjectRef, dig, mounts_claim

from .actions import DEFAULT_ACTIONS, BeforeWorkloads, RestoreAction, RestoreContext, RestoredPvc, RestoreItem
from .actions import actions_for as _actions_for
from .actions.namespace import terminating_reason
from .order import OrderedObject, RestorePhase, Wait
from .plan import RestorePlan
from .policy import ConflictPolicy, RestorePolicy
from .readiness import ReadinessError, readiness_of, wait_until_ready
from .report import Action, ObjectOutcome, Outcomes, PhaseReport, RestoreReport, VolumeOutcome, summarize_changes

log = logging.getLogger(__name__)

JSON = dict[str, Any]
OnPhase = Callable[[PhaseReport, RestoreReport], None]
T = TypeVar("T")

_CRD_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
_TRANSIENT_RETRIES = (0.5, 1.0, 2.0)
_MAX_REASON = 600
#: objects of one priority entry sent at once (read from the spool a batch at a time)
APPLY_BATCH = 256
#: ... and at most this many bytes of manifests (as JSON), when their size is known (a spooled plan)
APPLY_BATCH_BYTES = 4 * 2**20


def served_by_cluster(cluster: Cluster, *, refresh: bool = False) -> dict[str, dict[str, list[str]]]:
    """What the target serves, as :func:`~kubekeep.restore.plan.plan_restore` takes it:
    group -> kind -> versions, preferred first."""
    served: dict[str, dict[str, list[str]]] = {}
    for r in sorted(cluster.resources(refresh=refresh), key=lambda r: not r.preferred):
        versions = served.setdefault(r.group, {}).setdefault(r.kind, [])
        if r.version not in versions:
            versions.append(r.version)
    return served


def dry_run(cluster: Cluster, plan: RestorePlan, policy: RestorePolicy | None = None, *,
            actions: Sequence[RestoreAction] = DEFAULT_ACTIONS, outcomes: Path | None = None) -> RestoreReport:
    """What :func:`apply` would do with every object, validated by the API server; changes nothing.

    Objects in namespaces (or of custom kinds) that only this restore creates
    cannot be validated by the server; their outcome says so.
    """
    return _Run(cluster, plan, policy or RestorePolicy(), dry_run=True, actions=actions, outcomes=outcomes).run()


def apply(
    cluster: Cluster,
    plan: RestorePlan,
    policy: RestorePolicy | None = None,
    *,
    on_phase: OnPhase | None = None,
    wait: bool = True,
    before_workloads: BeforeWorkloads | None = None,
    actions: Sequence[RestoreAction] = DEFAULT_ACTIONS,
    outcomes: Path | None = None,
) -> RestoreReport:
    """Restore ``plan`` onto ``cluster``; return what happened to every object.

    ``outcomes``: a new file where the report's outcomes are spooled (one JSON line each) instead of
    being held in memory (:class:`~kubekeep.restore.report.Outcomes`); the report keeps counts, the
    first failures and changes, and the claims.

    ``on_phase(phase_report, report)`` is called after each phase (and its
    gate). ``wait=False`` skips the readiness gates of workload tiers (CRDs
    are still waited for: their custom resources cannot be created before).
    ``before_workloads(ctx)`` is called once, after the restored claims are
    Bound (``ctx.pvcs``) and before the first workload tier is created; it
    fills the claims and returns what happened to their data
    (:class:`~kubekeep.restore.report.VolumeOutcome`); raising holds back every
    workload. This is the one restore engine: the restore flow runs it in one
    task (tasks.restore.apply_plan), its hook filling the claims.
    """
    run = _Run(cluster, plan, policy or RestorePolicy(), dry_run=False, actions=actions, on_phase=on_phase,
               wait=wait, before_workloads=before_workloads, outcomes=outcomes)
    return run.run()


def not_attempted(plan: RestorePlan, reason: str, *, skip: Collection[str] = ()) -> list[ObjectOutcome]:
    """The outcomes of every object of ``plan`` when the restore stopped before it (``reason``: why);
    the phases named in ``skip`` (sent completely) are not read again."""
    return [outcome for _, outcome in _not_attempted(plan, reason, skip=skip)]


def _not_attempted(plan: RestorePlan, reason: str, *,
                   skip: Collection[str] = ()) -> Iterator[tuple[str, ObjectOutcome]]:
    text = _short(f"not attempted: the restore stopped ({reason})")
    for phase in plan.phases:
        if phase.name not in skip:
            for obj in phase.objects:
                yield phase.name, ObjectOutcome.of(obj.ref, Action.NOT_ATTEMPTED, text, phase=phase.name,
                                                   tier=obj.tier)


def held_back(phase: RestorePhase, volumes: Sequence[VolumeOutcome]) -> dict[ObjectRef, VolumeOutcome]:
    """Objects of ``phase`` whose pods mount a claim whose data must not be used, and that claim."""
    bad = [v for v in volumes if not v.usable]
    held: dict[ObjectRef, VolumeOutcome] = {}
    for obj in phase.objects:
        for v in bad:
            if mounts_claim(obj.manifest, v.namespace, v.name):
                held[obj.ref] = v
                break
    return held


def _now() -> datetime:
    return datetime.now(UTC)


def _api_version(ref: ObjectRef) -> str:
    return f"{ref.group}/{ref.version}" if ref.group else ref.version


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _problem(exc: ApiError) -> Action:
    """The report's name for an API error on a create, apply or delete."""
    message = exc.message.lower()
    if exc.status == 422 and "immutable" in message:
        return Action.IMMUTABLE_FIELD
    if exc.status == 409 or "already allocated" in message:
        return Action.CONFLICT
    if exc.status == 403 and "being terminated" in message:
        return Action.NAMESPACE_TERMINATING
    return Action.FAILED


class _Run:
    def __init__(self, cluster: Cluster, plan: RestorePlan, policy: RestorePolicy, *, dry_run: bool,
                 actions: Sequence[RestoreAction], on_phase: OnPhase | None = None, wait: bool = True,
                 before_workloads: BeforeWorkloads | None = None, outcomes: Path | None = None) -> None:
        self.cluster = cluster
        self.plan = plan
        self.policy = policy
        self.dry = dry_run
        self.actions = actions
        self.on_phase = on_phase
        self.wait = wait
        self.before_workloads = before_workloads
        self.report = RestoreReport(dry_run=dry_run, policy=policy.to_dict(), cluster=cluster.name,
                                    outcomes=Outcomes.spooled(outcomes) if outcomes is not None else Outcomes())
        self.ctx = RestoreContext(cluster, plan, policy, dry_run=dry_run, report=self.report)
        #: positions of the outcomes of the current phase (the gates read them) and of every claim (the
        #: volume step marks them); cleared at each phase: it never holds every object
        self.index: dict[ObjectRef, int] = {}
        self.terminating: set[str] = set()
        self.missing: set[str] = set()
        #: namespaces that exist only once this restore has created them (dry runs cannot validate inside)
        self.created_by_restore: set[str] = set()
        #: namespaces that did not exist when the restore started (found by the preflight): their objects
        #: are created without a look-up first (a 409 from a controller-made object falls back to the look-up)
        self.fresh_namespaces: frozenset[str] = frozenset()
        #: volume data restored so far (returned by the before_workloads hook)
        self.volumes: list[VolumeOutcome] = []
        #: the outcomes of the current phase, by position
        self.current: dict[int, ObjectOutcome] = {}
        #: the current phase keeps its outcomes in ``index`` and ``current``; if not, how many it recorded
        self.tracking = True
        self.untracked_phase: str | None = None
        self.untracked = 0
        #: phases whose every object was sent (and has its outcome)
        self.sent: set[str] = set()

    # ---- bookkeeping ----------------------------------------------------
    def _record(self, outcome: ObjectOutcome) -> None:
        position = len(self.report.outcomes)
        if self.tracking:
            self.index[outcome.ref] = position
            self.current[position] = outcome
        else:
            self.untracked += 1
        self.report.outcomes.append(outcome)

    def _outcome(self, ref: ObjectRef) -> ObjectOutcome | None:
        i = self.index.get(ref)
        return self.current.get(i) if i is not None else None

    def _mark_ready(self, ref: ObjectRef, ready: bool) -> None:
        i = self.index.get(ref)
        if i is not None:
            self.report.outcomes.set_ready(i, ready)
            if i in self.current:
                self.current[i] = replace(self.current[i], ready=ready)

    def _new_phase(self, phase: RestorePhase, tracking: bool) -> None:
        """Forget the outcomes of the previous phase (keep the claims'). A phase with a gate (or objects held
        back) keeps its outcomes by ref; any other phase (all the ConfigMaps of a big restore) only counts
        them: its objects are recorded in plan order."""
        self.index = {o.ref: i for i, o in self.report.outcomes.claims()}
        self.current = {}
        self.tracking = tracking
        self.untracked_phase, self.untracked = phase.name, 0

    def _abort(self, message: str) -> None:
        if self.report.aborted is None:
            self.report.aborted = message
            log.error("restore stopped: %s", message)

    # ---- the run ----------------------------------------------------------
    def run(self) -> RestoreReport:
        try:
            self._preflight()
            if self.report.aborted is None:
                self._phases()
        finally:
            done_in_phase = 0 if self.tracking else self.untracked  # an untracked phase records in plan order
            self.tracking = True
            for phase, outcome in _not_attempted(self.plan, self.report.aborted or "unexpected error",
                                                 skip=self.sent):
                if phase == self.untracked_phase and done_in_phase > 0:
                    done_in_phase -= 1
                    continue
                if outcome.ref not in self.index:
                    self._record(outcome)
            for skipped in self.plan.skipped:
                self._record(self._excluded(skipped.ref, skipped.reason))
            self.report.outcomes.seal()
            self.report.finished_at = _now()
        return self.report

    def _excluded(self, ref: ObjectRef, reason: str) -> ObjectOutcome:
        if reason.startswith("not convertible"):
            custom = (ref.group, ref.kind) not in self.ctx.plan_crd_kinds
            if custom and not self.ctx.serves_kind(ref.group, ref.kind) and "does not serve" in reason:
                return ObjectOutcome.of(ref, Action.MISSING_CRD, reason)
            return ObjectOutcome.of(ref, Action.NOT_CONVERTIBLE, reason)
        return ObjectOutcome.of(ref, Action.EXCLUDED, reason)

    def _preflight(self) -> None:
        wanted = dict.fromkeys(self.plan.target_namespaces())
        for name in sorted(self.ctx.plan_namespaces):
            wanted[name] = None
        to_create: list[str] = []
        for ns in wanted:
            existing = self._call(partial(self.cluster.get_or_none, "v1", "Namespace", ns))
            if existing is None:
                if ns in self.ctx.plan_namespaces:
                    self.created_by_restore.add(ns)
                elif self.policy.create_namespaces:
                    to_create.append(ns)
                    self.created_by_restore.add(ns)
                else:
                    self.missing.add(ns)
            elif dig(existing, "status", "phase") == "Terminating":
                self.terminating.add(ns)
        self.fresh_namespaces = frozenset(self.created_by_restore)
        if self.terminating and not self.dry:
            names = ", ".join(sorted(self.terminating))
            self._abort(f"target namespace(s) {names} Terminating: nothing was restored; wait until deleted, "
                        "or restore into another namespace (namespace-map transform)")
            for phase in self.plan.phases:
                for obj in phase.objects:
                    ns = obj.ref.name if obj.ref.kind == "Namespace" and not obj.ref.group else obj.ref.namespace
                    if ns in self.terminating:
                        self._record(ObjectOutcome.of(obj.ref, Action.NAMESPACE_TERMINATING, terminating_reason(ns),
                                                      phase=phase.name, tier=obj.tier))
            return
        if not to_create:
            return
        report = PhaseReport("target-namespaces", Wait.NONE.value, objects=len(to_create), started_at=_now())
        self.report.phases.append(report)
        for ns in to_create:
            ref = ObjectRef("", "Namespace", "", ns, "v1")
            reason = "needed by restored objects (the backup has no Namespace object for it)"
            if self.dry:
                self._record(ObjectOutcome.of(ref, Action.WOULD_CREATE, reason, phase=report.name))
                continue
            try:
                self._call(partial(self.cluster.create, {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": ns}}))
                self._record(ObjectOutcome.of(ref, Action.CREATED, reason, phase=report.name))
            except ApiError as exc:
                if exc.status != 409:
                    self._record(ObjectOutcome.of(ref, _problem(exc), _short(str(exc)), phase=report.name))
                    self._abort(f"target namespace {ns} could not be created: {exc}")
                    return
                self._record(ObjectOutcome.of(ref, Action.SKIPPED, "created concurrently", phase=report.name))
        report.applied_at = _now()

    def _phases(self) -> None:
        hook_pending = not self.dry and (self.before_workloads is not None or self.wait)
        for phase in self.plan.phases:
            if phase.tier is not None and hook_pending:
                hook_pending = False
                self._gate_before_workloads()
                if self.report.aborted:
                    return
            unusable = [v for v in self.volumes if not v.usable]
            if unusable and phase.tier is None:
                # no workload tier held anything back, yet the claim is in the restore: whatever comes after
                # the workloads (an operator's custom resources) may mount it
                self._abort("; ".join(v.why_unusable() for v in unusable) + "; no restored workload mounts it, "
                            f"but objects after the workloads may: the restore stopped before phase {phase.name}")
                return
            held = held_back(phase, unusable)
            self._new_phase(phase, tracking=bool(held) or phase.wait is not Wait.NONE)
            report = PhaseReport(phase.name, phase.wait.value, phase.tier, len(phase.objects), started_at=_now())
            self.report.phases.append(report)
            log.info("restore phase %s: %d object(s)%s", phase.name, len(phase.objects),
                     " (dry run)" if self.dry else "")
            self._apply_phase(phase, held)
            if not held:
                self.sent.add(phase.name)  # every object has its outcome: not read again at the end
            report.applied_at = _now()
            if not self.dry:
                if phase.wait is Wait.CRDS_ESTABLISHED:
                    self._gate_crds(phase, report)
                elif phase.wait is Wait.READY and self.wait:
                    self._gate_ready(phase, report)
            if held:
                for obj in phase.objects:
                    if obj.ref in held:
                        v = held[obj.ref]
                        self._record(ObjectOutcome.of(obj.ref, Action.NOT_ATTEMPTED, _short(
                            f"not created: it mounts PVC {v.pvc}; {v.why_unusable()}"), phase=phase.name,
                            tier=obj.tier))
                claims = {v.pvc: v for v in held.values()}
                report.error = f"{len(held)} object(s) held back: they mount {', '.join(sorted(claims))}"
                self._abort("; ".join(v.why_unusable() for v in claims.values())
                            + f": {len(held)} object(s) that mount it were not created "
                            f"({', '.join(str(r) for r in list(held)[:10])}); the restore stopped after phase "
                            f"{phase.name}")
            if self.on_phase is not None:
                self.on_phase(report, self.report)
            if self.report.aborted:
                return
        if hook_pending and self.before_workloads is not None:
            self._gate_before_workloads()

    def _apply_phase(self, phase: RestorePhase, held: Collection[ObjectRef] = ()) -> None:
        # objects of one priority entry are independent of each other; entries keep their order. The phase
        # is read (from a spooled plan) and sent a batch at a time: never every object of a big phase at once
        workers = max(1, self.policy.workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubekeep-restore") as pool:
            batch: list[OrderedObject] = []
            size = 0
            for obj in phase.objects:
                if obj.ref in held:
                    continue
                if batch and (batch[0].match != obj.match or len(batch) >= APPLY_BATCH
                              or size + obj.size > APPLY_BATCH_BYTES):
                    self._apply_batch(batch, phase, pool)
                    batch, size = [], 0
                batch.append(obj)
                size += obj.size
            if batch:
                self._apply_batch(batch, phase, pool)

    def _apply_batch(self, batch: list[OrderedObject], phase: RestorePhase, pool: ThreadPoolExecutor) -> None:
        if len(batch) == 1 or self.policy.workers == 1:
            outcomes = [self._restore_one(obj, phase) for obj in batch]
        else:
            outcomes = list(pool.map(lambda o: self._restore_one(o, phase), batch))
        for outcome in outcomes:
            self._record(outcome)

    # ---- one object -------------------------------------------------------
    def _restore_one(self, obj: OrderedObject, phase: RestorePhase) -> ObjectOutcome:
        def outcome(action: Action, reason: str, changes: Sequence[str] = ()) -> ObjectOutcome:
            return ObjectOutcome.of(obj.ref, action, _short(reason), phase=phase.name, tier=obj.tier,
                                    changes=tuple(changes))

        try:
            action, reason, changes = self._restore(obj, phase)
        except ApiError as exc:
            action, reason, changes = _problem(exc), str(exc), []
        except Exception as exc:  # one object's surprise must not hide the others' outcomes
            log.exception("restoring %s failed", obj.ref)
            action, reason, changes = Action.FAILED, f"{type(exc).__name__}: {exc}", []
        if action.is_failure:
            log.warning("%s %s: %s", action.value, obj.ref, reason)
        return outcome(action, _join(reason, "; ".join(obj.notes)), changes)

    def _restore(self, obj: OrderedObject, phase: RestorePhase) -> tuple[Action, str, list[str]]:
        ref = obj.ref
        resource = self.ctx.resource(ref)
        if resource is None:
            if (ref.group, ref.kind) in self.ctx.plan_crd_kinds:
                if self.dry:
                    return (Action.WOULD_CREATE, "not validated by the API server: its CustomResourceDefinition "
                            "is created by this restore", [])
                return (Action.MISSING_CRD, f"{_api_version(ref)} {ref.kind} is not served although its "
                        "CustomResourceDefinition was restored (version not served?)", [])
            return (Action.MISSING_CRD, f"{_api_version(ref)} {ref.kind} is not served by the target and its "
                    "CustomResourceDefinition is not part of this restore", [])
        namespace = ref.namespace if resource.namespaced else None
        if resource.namespaced:
            if not ref.namespace:
                return Action.FAILED, f"{ref.kind} is namespaced but the manifest names no namespace", []
            if ref.namespace in self.terminating:
                return Action.NAMESPACE_TERMINATING, terminating_reason(ref.namespace), []
            if ref.namespace in self.missing:
                return (Action.FAILED, f"namespace {ref.namespace} does not exist and is not part of this restore "
                        "(create_namespaces is off)", [])
        unvalidated = self.dry and namespace in self.created_by_restore
        for attempt in range(2):
            assume_absent = (not self.dry and attempt == 0 and namespace is not None
                             and namespace in self.fresh_namespaces)
            existing = None if unvalidated or assume_absent else self._call(
                lambda: self.cluster.get_or_none(_api_version(ref), ref.kind, ref.name, namespace))
            item = RestoreItem(ref, copy.deepcopy(obj.manifest), existing, self.policy.for_ref(ref), phase.name,
                               obj.tier)
            finished = self._run_actions(item)
            if finished is not None:
                return finished
            notes = "; ".join(item.notes)
            if item.existing is None:
                if unvalidated:
                    return (Action.WOULD_CREATE, _join(f"not validated by the API server: namespace {namespace} "
                                                       "is created by this restore", notes), [])
                try:
                    return self._create(item, notes)
                except ApiError as exc:
                    if exc.status == 409 and attempt == 0 and not self.dry:
                        continue  # created meanwhile (e.g. by a controller): decide again as an existing object
                    raise
            return self._existing(item, notes)
        raise AssertionError("unreachable")

    def _run_actions(self, item: RestoreItem) -> tuple[Action, str, list[str]] | None:
        for action in _actions_for(item.ref, self.actions):
            result = action.execute(item, self.ctx)
            if result.finish is not None:
                finish = Action.WOULD_SKIP if self.dry and result.finish is Action.SKIPPED else result.finish
                return finish, _join(result.reason, "; ".join(item.notes)), []
            if result.manifest is not None:
                item.manifest = result.manifest
            if result.policy is not None:
                item.policy = result.policy
            if result.reason:
                item.notes.append(result.reason)
        return None

    def _create(self, item: RestoreItem, notes: str) -> tuple[Action, str, list[str]]:
        if self.dry:
            self._call(lambda: self.cluster.create(item.manifest, dry_run=True))
            return Action.WOULD_CREATE, _join("validated by the API server (dry run)", notes), []
        created = self._call(lambda: self.cluster.create(item.manifest))
        if item.ref.kind == "Service" and not item.ref.group:
            self.ctx.remember_node_ports(created)
        return Action.CREATED, _join(_join("created", self._restore_status(item, created)), notes), []

    def _restore_status(self, item: RestoreItem, created: JSON) -> str:
        """Write the backed-up status (kept only for the kinds the run asked for) through the status
        subresource; a kind without one stored it with the object already."""
        status = item.manifest.get("status")
        if not status or created.get("status") == status:
            return "status restored with the object" if status else ""
        ref = item.ref
        try:
            self._call(lambda: self.cluster.patch(_api_version(ref), ref.kind, ref.name, {"status": status},
                                                  namespace=ref.namespace or None, subresource="status"))
        except ApiError as exc:
            if exc.status == 404:
                return "status restored with the object (the kind has no status subresource)"
            return f"status NOT restored: {_short(exc.message)}"
        return "status restored through the status subresource"

    def _existing(self, item: RestoreItem, notes: str) -> tuple[Action, str, list[str]]:
        assert item.existing is not None
        if item.policy is ConflictPolicy.SKIP:
            if self.dry:
                return Action.WOULD_SKIP, _join("exists (policy skip)", notes), self._would_change(item)
            return Action.SKIPPED, _join("exists (policy skip)", notes), []
        if item.policy is ConflictPolicy.UPDATE:
            try:
                result = self._call(lambda: self.cluster.apply(item.manifest, field_manager=self.policy.field_manager,
                                                               force=True, dry_run=self.dry))
            except ApiError as exc:
                if _problem(exc) is Action.IMMUTABLE_FIELD:
                    return (Action.IMMUTABLE_FIELD, _join(f"{exc.message} (policy recreate would replace the "
                                                          "object)", notes), [])
                raise
            changes = summarize_changes(item.existing, result)
            if not changes:
                return Action.UNCHANGED, _join("exists with the backed-up content (policy update)", notes), []
            action = Action.WOULD_UPDATE if self.dry else Action.UPDATED
            return action, _join("server-side apply (policy update)", notes), changes
        if self.dry:
            return (Action.WOULD_RECREATE, _join("exists: would be deleted and created from the backup "
                                                 "(policy recreate)", notes), self._would_change(item))
        return self._recreate(item, notes)

    def _would_change(self, item: RestoreItem) -> list[str]:
        """What applying the backup would change in the existing object (best effort, for the report)."""
        assert item.existing is not None
        try:
            result = self.cluster.apply(item.manifest, field_manager=self.policy.field_manager, force=True,
                                        dry_run=True)
        except ApiError as exc:
            return ["(immutable fields differ)"] if _problem(exc) is Action.IMMUTABLE_FIELD else []
        return summarize_changes(item.existing, result)

    def _recreate(self, item: RestoreItem, notes: str) -> tuple[Action, str, list[str]]:
        assert item.existing is not None
        ref = item.ref
        namespace = ref.namespace or None
        old_uid = dig(item.existing, "metadata", "uid")
        self._call(lambda: self.cluster.delete(_api_version(ref), ref.kind, ref.name, namespace))
        try:
            self.cluster.wait_for(_api_version(ref), ref.kind, ref.name,
                                  lambda o: o is None or dig(o, "metadata", "uid") != old_uid, namespace=namespace,
                                  timeout=self.policy.delete_timeout, interval=self.policy.poll_interval,
                                  what="deletion")
        except TimeoutError:
            current = self.cluster.get_or_none(_api_version(ref), ref.kind, ref.name, namespace)
            finalizers = dig(current, "metadata", "finalizers") or []
            return (Action.FAILED, f"deleted for recreation but still present after {self.policy.delete_timeout:.0f}s"
                    f" (finalizers: {finalizers or 'none'}); not created again", [])
        created = self._call(lambda: self.cluster.create(item.manifest))
        if ref.kind == "Service" and not ref.group:
            self.ctx.remember_node_ports(created)
        return (Action.RECREATED, _join(_join(f"deleted and created from the backup (policy recreate; new uid "
                                              f"{dig(created, 'metadata', 'uid')})",
                                              self._restore_status(item, created)), notes), [])

    def _call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient API errors (throttling, unavailable, connection)."""
        for delay in _TRANSIENT_RETRIES:
            try:
                return fn()
            except ApiError as exc:
                if not exc.transient:
                    raise
                log.info("transient API error, retrying in %.1fs: %s", delay, exc)
                time.sleep(delay)
        return fn()

    # ---- gates ------------------------------------------------------------
    def _present(self, phase: RestorePhase) -> list[ObjectRef]:
        out = []
        for obj in phase.objects:
            outcome = self._outcome(obj.ref)
            if outcome is not None and outcome.action.exists_after:
                out.append(obj.ref)
        return out

    def _gate_crds(self, phase: RestorePhase, report: PhaseReport) -> None:
        crds = [r for r in self._present(phase) if (r.group, r.kind) == _CRD_KIND]
        try:
            wait_until_ready(self.cluster, crds, timeout=self.policy.crd_timeout, interval=self.policy.poll_interval,
                             what="Established")
        except ReadinessError as exc:
            report.error = str(exc)
            self._abort(f"{phase.name}: {exc}")
            return
        expected: set[tuple[str, str, str]] = set()
        for obj in phase.objects:
            if obj.ref in crds:
                group, kind = str(dig(obj.manifest, "spec", "group")), str(dig(obj.manifest, "spec", "names", "kind"))
                expected |= {(group, str(v.get("name")), kind) for v in dig(obj.manifest, "spec", "versions") or ()
                             if isinstance(v, dict) and v.get("served", True)}
        deadline = time.monotonic() + self.policy.crd_timeout
        pause = pauses(self.policy.poll_interval)  # discovery follows Established within a moment, usually
        while True:
            missing = expected - self.ctx.refresh_resources()
            if not missing:
                break
            if time.monotonic() > deadline:
                names = ", ".join(sorted(f"{k}.{g}/{v}" for g, v, k in missing))
                report.error = f"not served after {self.policy.crd_timeout:.0f}s: {names}"
                self._abort(f"{phase.name}: custom kinds Established but not served (discovery): {names}")
                return
            time.sleep(next(pause))
        for ref in crds:
            self._mark_ready(ref, True)
        report.ready_at = _now()

    def _gate_ready(self, phase: RestorePhase, report: PhaseReport) -> None:
        present = self._present(phase)
        try:
            wait_until_ready(self.cluster, present, timeout=self.policy.ready_timeout,
                             interval=self.policy.poll_interval)
        except ReadinessError as exc:
            for ref in present:
                self._mark_ready(ref, ref not in exc.not_ready)
            report.error = str(exc)
            self._abort(f"{phase.name}: {exc}")
            return
        for ref in present:
            self._mark_ready(ref, True)
        failed = [obj.ref for obj in phase.objects if (o := self._outcome(obj.ref)) is not None and
                  o.action.is_failure]
        if failed:
            names = ", ".join(str(r) for r in failed[:10])
            report.error = f"{len(failed)} object(s) failed: {names}"
            self._abort(f"{phase.name}: {len(failed)} workload(s) failed ({names}); later phases were not started")
            return
        report.ready_at = _now()

    def _gate_before_workloads(self) -> None:
        claims = [o for _, o in self.report.outcomes.claims() if o.action.exists_after]
        if not claims and self.before_workloads is None:
            return
        report = PhaseReport("before-workloads", "pvcs-bound", objects=len(claims), started_at=_now())
        self.report.phases.append(report)
        to_wait: list[ObjectRef] = []
        notes: dict[ObjectRef, str] = {}
        for outcome in claims:
            ref = outcome.ref
            claim = self.cluster.get_or_none("v1", "PersistentVolumeClaim", ref.name, ref.namespace)
            if claim is None or readiness_of(claim).ready:
                to_wait.append(ref)
                continue
            class_name = dig(claim, "spec", "storageClassName")
            sc = self.ctx.storage_class(str(class_name)) if class_name else None
            if dig(sc, "volumeBindingMode") == "WaitForFirstConsumer" and not dig(claim, "spec", "volumeName"):
                notes[ref] = f"StorageClass {class_name} binds on first consumer: not Bound before workloads start"
            else:
                to_wait.append(ref)
        try:
            wait_until_ready(self.cluster, to_wait, timeout=self.policy.ready_timeout,
                             interval=self.policy.poll_interval, what="Bound")
        except ReadinessError as exc:
            report.error = str(exc)
            self._abort(f"PersistentVolumeClaims before workloads: {exc}")
            return
        pvcs = []
        for outcome in claims:
            claim = self.cluster.get_or_none("v1", "PersistentVolumeClaim", outcome.name, outcome.namespace)
            bound = dig(claim, "status", "phase") == "Bound"
            self._mark_ready(outcome.ref, bound)
            pvcs.append(RestoredPvc(outcome.ref, outcome.action, claim, dig(claim, "spec", "volumeName"), bound,
                                    notes.get(outcome.ref, "")))
        self.ctx.pvcs = pvcs
        report.applied_at = _now()
        if self.before_workloads is not None:
            try:
                filled = list(self.before_workloads(self.ctx) or ())
                self.volumes += filled
                self.report.volumes += filled
            except Exception as exc:
                log.exception("before_workloads hook failed")
                report.error = f"{type(exc).__name__}: {exc}"
                self._abort(f"before_workloads hook failed, no workload was started: {type(exc).__name__}: {exc}")
                return
        report.ready_at = _now()


def _join(reason: str, notes: str) -> str:
    return f"{reason}; {notes}" if notes else reason
