"""Restore tasks: thin wrappers over kubekeep.restore; they pass a spool path and small summaries.

The building blocks of every flow that restores (restore, and migrate's and verify's restore step):
:func:`load_plan` (choose the restore point, plan against the target, spool the plan), then
:func:`apply_plan` (or :func:`dry_run_plan`), :func:`record_restore`, and :func:`discard_spool` at the end.
``apply_plan`` runs the core's one restore engine (``kubekeep.restore.apply``: preflight, phases,
gates, volumes before workloads, held-back workloads) and fills the restored claims from its
``before_workloads`` hook (:func:`fill_volumes`). Every task shares the run's open repository.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile, repository
from kubekeep.backup.csi import CsiError, restore_with_mover
from kubekeep.catalog import Catalog, Downtime
from kubekeep.cluster import ApiError, Cluster
from kubekeep.manifest import ObjectRef, ref_of
from kubekeep.migrate.target import MIGRATION_ANNOTATION
from kubekeep.migrate.volumes import sync_volume
from kubekeep.repo.repository import Repository
from kubekeep.restore import (
    DEFAULT_PRIORITIES,
    PlanOptions,
    RestoreContext,
    RestoredPvc,
    SanitizeOptions,
    Selector,
    TierPolicy,
    TransformChain,
    parse_priorities,
)
from kubekeep.restore.apply import apply, dry_run, served_by_cluster
from kubekeep.restore.policy import ConflictPolicy, RestorePolicy
from kubekeep.restore.record import record_restore as record_report
from kubekeep.restore.report import Action, Outcomes, PhaseReport, RestoreReport, VolumeOutcome, VolumeStatus
from kubekeep.restore.source import keep_provisioned, load_manifests
from kubekeep.restore.spool import EXAMPLES, PhaseSummary, read_plan, spool_dir, spool_plan
from kubekeep.restore.volume_data import restore_volume as restore_volume_data
from kubekeep.restorepoint import choose_restore_point

from .common import DATA_TASK
from .parameters import FilesToRestore, MoverOptions

#: the report of the run, beside the plan's spool (deleted with it): its head (counts, phases, volumes)
#: and its outcomes, one JSON line per object (spooled while the restore runs, never all in memory)
REPORT_FILE = "report.json"
OUTCOMES_FILE = "outcomes.jsonl"
#: volumes filled at once by one restore (each reads its snapshot and writes a whole volume)
VOLUME_WORKERS = 2


@dataclass(frozen=True)
class VolumeToRestore:
    source: str  # namespace/pvc in the restore point
    namespace: str  # where the PVC is restored
    pvc: str
    snapshot_id: str


@dataclass
class PlanRef:
    """What the planning task hands on: a private spool directory and small summaries (never the objects,
    never a list that grows with them: Prefect walks every task parameter)."""

    restore_point_id: str
    snapshot_id: str
    spool: str
    phases: list[PhaseSummary]
    volumes: list[VolumeToRestore]
    #: how many objects the plan leaves out (the report has every one as an outcome), and the first few
    skipped_count: int = 0
    skipped: list[str] = field(default_factory=list)
    converted_count: int = 0
    converted: list[str] = field(default_factory=list)
    #: the application of the restore point
    app: str = ""
    #: when its backup scaled the source's workloads to zero (ISO 8601 UTC; a migration's downtime begins there)
    quiesced_at: str | None = None

    @property
    def object_count(self) -> int:
        return sum(p.objects for p in self.phases)


@dataclass
class ReportRef:
    """What the apply (or dry-run) task hands on: where the whole report is (private files beside the
    spool: the head, and the outcomes as JSON lines) and its summary."""

    path: str
    outcomes_path: str
    status: str
    failed: bool
    counts: dict[str, int]
    objects: int
    aborted: str | None = None
    failure_summary: str = ""

    def load(self, *, in_memory: bool = False) -> RestoreReport:
        """The report; its outcomes are read back from their file (beside the spool: use the report before
        :func:`discard_spool`) as they are iterated, or, ``in_memory``, all read now (a report that outlives
        the spool)."""
        with open(self.path) as fh:
            report = RestoreReport.from_dict(json.load(fh))
        spooled = Outcomes.reopen(Path(self.outcomes_path))
        report.outcomes = Outcomes(spooled) if in_memory else spooled
        return report


def outcomes_file(plan: PlanRef) -> Path:
    """A new file where an apply (or dry-run) task spools the outcomes of ``plan``'s restore (one plan may
    be dry-run, then applied: each run has its own)."""
    stem, suffix = OUTCOMES_FILE.rsplit(".", 1)
    for n in itertools.count():
        path = Path(plan.spool) / f"{stem}-{n}.{suffix}"
        if not path.exists():
            return path
    raise AssertionError("unreachable")


def keep_report(report: RestoreReport, plan: PlanRef) -> ReportRef:
    """Write ``report``'s head beside the plan's spool (0600), its outcomes spooled there (or written now
    if they were held in memory), and return a reference to both."""
    report.outcomes.seal()
    outcomes = report.outcomes.path
    if outcomes is None or outcomes.parent != Path(plan.spool):
        outcomes = outcomes_file(plan)
        spooled = Outcomes.spooled(outcomes)
        for outcome in report.outcomes:
            spooled.append(outcome)
        spooled.seal()
    stem, suffix = REPORT_FILE.rsplit(".", 1)
    path = Path(plan.spool) / f"{stem}-{outcomes.stem.rsplit('-', 1)[-1]}.{suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(report.to_dict(outcomes=False), fh, sort_keys=True)
    return ReportRef(path=str(path), outcomes_path=str(outcomes), status=report.status, failed=report.failed,
                     counts=report.counts, objects=len(report.outcomes), aborted=report.aborted,
                     failure_summary=report.failure_summary() if report.failed else "")


def plan_options(*, namespace_map: dict[str, str] | None = None, storage_class_map: dict[str, str] | None = None,
                 image_rewrite: dict[str, str] | None = None, transforms: list[dict[str, Any]] | None = None,
                 priorities: list[Any] | None = None, tiers: dict[str, Any] | None = None,
                 preserve_node_ports: bool = False, include_owned: bool = False,
                 restore_status: Sequence[str] | None = None) -> PlanOptions:
    """How a restore plans, from flow parameters (validated: a bad spec fails before anything runs). The
    maps come first in the transform chain, then ``transforms`` (docs/restore-order.md)."""
    steps: list[dict[str, Any]] = []
    if namespace_map:
        steps.append({"type": "namespace-map", "map": namespace_map})
    if storage_class_map:
        steps.append({"type": "storage-class-map", "map": storage_class_map})
    if image_rewrite:
        steps.append({"type": "image-rewrite", "rules": [{"from": k, "to": v} for k, v in image_rewrite.items()]})
    steps.extend(transforms or ())
    return PlanOptions(include_owned=include_owned, transforms=TransformChain.from_dict(steps),
                       sanitize=SanitizeOptions(preserve_node_ports=preserve_node_ports,
                                                keep_status=frozenset(restore_status or ())),
                       priorities=parse_priorities(priorities) if priorities else DEFAULT_PRIORITIES,
                       tier_policy=TierPolicy.from_dict(tiers) if tiers else None)


@task(name="load-plan", **DATA_TASK)
def load_plan(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection, *,
              restore_point: str | None = None, app: str | None = None, before: datetime | None = None,
              selector: Selector | None = None, pvcs: Sequence[str] = (),
              options: PlanOptions | None = None, exclude_kinds: Sequence[str] = (),
              last_clean: bool = False) -> PlanRef:
    """Choose the restore point (by id, or the latest succeeded one of ``app``), stream the selected
    manifests (without the kinds ``exclude_kinds`` names: ``Kind`` or ``Kind.group``) into a plan against
    what the target serves, spooled namespace by namespace (memory does not grow with the number of
    objects: kubekeep.restore.spool)."""
    options = options or PlanOptions()
    with cluster.connect() as c:
        served = served_by_cluster(c, refresh=True)
    spool = spool_dir()
    try:
        with repository(location, key) as repo:
            snapshot_id, record = choose_restore_point(repo, restore_point=restore_point, app=app, before=before,
                                                       catalog=Catalog(repo.storage, codec=repo.catalog_codec()),
                                                       last_clean=last_clean)
            with_data = {(v.namespace, v.pvc) for v in record.volumes if v.snapshot_id}
            reprovisioned: list[str] = []
            excluded: list[str] = []  # the first EXAMPLES, and how many
            excluded_count = [0]
            wanted = keep_provisioned(_without_kinds(load_manifests(repo, record, selector, pvcs=pvcs),
                                                     exclude_kinds, excluded, excluded_count),
                                      with_data, reprovisioned)
            spooled = spool_plan(wanted, spool, served=served, options=options, claims=with_data)
    except BaseException:
        shutil.rmtree(spool, ignore_errors=True)
        raise
    volumes = []
    for v in record.volumes:
        source = spooled.claims.get((v.namespace, v.pvc))
        if not v.snapshot_id or source is None:
            continue
        target = ref_of(options.transforms.apply([source])[0])  # where the transforms put this claim
        if (target.namespace, target.name) in spooled.planned_claims:
            volumes.append(VolumeToRestore(f"{v.namespace}/{v.pvc}", target.namespace, target.name, v.snapshot_id))
    return PlanRef(restore_point_id=record.id, snapshot_id=snapshot_id, spool=str(spool), phases=spooled.phases,
                   volumes=volumes, skipped_count=excluded_count[0] + len(reprovisioned) + spooled.skipped,
                   skipped=(excluded + reprovisioned + spooled.skipped_examples)[:EXAMPLES],
                   converted_count=spooled.converted, converted=spooled.converted_examples, app=record.app,
                   quiesced_at=record.quiesced_at)


def _without_kinds(manifests: Iterator[dict[str, Any]], kinds: Sequence[str], excluded: list[str],
                   count: list[int]) -> Iterator[dict[str, Any]]:
    """The manifests, as a stream, without the kinds ``kinds`` names (the first few noted in ``excluded``,
    all counted in ``count[0]``)."""
    for m in manifests:
        if _kind_in(m, kinds):
            count[0] += 1
            if len(excluded) < EXAMPLES:
                excluded.append(f"{ref_of(m)}: kind excluded by the run")
            continue
        yield m


def _kind_in(manifest: dict[str, Any], kinds: Sequence[str]) -> bool:
    if not kinds:
        return False
    ref = ref_of(manifest)
    return any(k == ref.kind or k == ref.group_kind for k in kinds)


@task(name="dry-run", **DATA_TASK)
def dry_run_plan(cluster: ClusterConnection, plan: PlanRef, policy: RestorePolicy) -> ReportRef:
    """Server-side dry run of every object plus a diff against what exists; changes nothing."""
    with cluster.connect() as c:
        return keep_report(dry_run(c, read_plan(Path(plan.spool)), policy, outcomes=outcomes_file(plan)), plan)


@task(name="apply-plan", **{**DATA_TASK, "retries": 0})
def apply_plan(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection, plan: PlanRef,
               policy: RestorePolicy, *, wait: bool = True, restore_volumes: bool = True, verify: bool = True,
               mover: MoverOptions | None = None, seeded_by: str | None = None, settle_seed: bool = True
               ) -> ReportRef:
    """Restore the plan phase by phase (kubekeep.restore.apply): CRDs Established before custom resources,
    claims Bound and their data restored and verified (:func:`fill_volumes`) before the first workload,
    each readiness tier Ready before the next; a workload whose volume data failed or was not verified is
    held back and the restore stops. Per-object problems are in the report; the task fails only on
    infrastructure errors (never retried: objects may already exist). ``seeded_by``: a migration id; claims
    of that migration's pre-seed are brought to the snapshot incrementally (fill_volumes); ``settle_seed``
    False (a cutover) records their seed without waiting out the racy window (SeedWriter.commit)."""
    logger = get_run_logger()

    def on_phase(phase: PhaseReport, _report: RestoreReport) -> None:
        logger.info("phase %s: %d object(s)%s", phase.name, phase.objects,
                    f"; {phase.error}" if phase.error else " ready" if phase.ready_at else "")

    with ExitStack() as stack:
        c = stack.enter_context(cluster.connect())
        fill = None
        if restore_volumes and plan.volumes:
            repo = stack.enter_context(repository(location, key))
            early: dict[tuple[str, str], EarlySync] = {}
            if seeded_by is not None and not policy.recreate_pvcs and \
                    policy.for_ref(ObjectRef("", "PersistentVolumeClaim", "", "")) is not ConflictPolicy.RECREATE:
                # left as they are by this restore: their sync runs while the objects before them are sent
                pool = stack.enter_context(ThreadPoolExecutor(VOLUME_WORKERS, thread_name_prefix="kubekeep-sync"))
                early = start_seeded_syncs(repo, c, plan.volumes, seeded_by, settle_seed, pool)
                if early:
                    logger.info("syncing %d pre-seeded claim(s) while the objects are restored", len(early))

            def fill(ctx: RestoreContext) -> list[VolumeOutcome]:
                started = time.monotonic()
                done = fill_volumes(repo, ctx.cluster, ctx.pvcs, plan.volumes, verify=verify, mover=mover,
                                    seeded_by=seeded_by, settle_seed=settle_seed, early=early)
                logger.info("volume data in %.1f s: %s", time.monotonic() - started, "; ".join(
                    f"{v.pvc} {v.status.value}" + (f" ({v.method}, {v.files} file(s), {v.bytes} B written)"
                                                   if v.method else "") + (f": {v.error}" if v.error else "")
                    for v in done) or "no claim to fill")
                return done

        report = apply(c, read_plan(Path(plan.spool)), policy, wait=wait, on_phase=on_phase, before_workloads=fill,
                       outcomes=outcomes_file(plan))
        return keep_report(report, plan)


@dataclass(frozen=True)
class EarlySync:
    """A pre-seeded claim's sync started before the restore reached its claims: into this volume."""

    volume_name: str
    future: Future[VolumeOutcome]


def start_seeded_syncs(repo: Repository, cluster: Cluster, volumes: Sequence[VolumeToRestore], migration: str,
                       settle: bool, pool: ThreadPoolExecutor) -> dict[tuple[str, str], EarlySync]:
    """Start syncing the claims that ``migration``'s pre-seed created and that are Bound now (a cutover):
    they exist before the restore sends anything, and a restore that does not recreate claims leaves them as
    they are, so their data moves while the objects before them are sent. :func:`fill_volumes` takes each
    result where the restore's claim is the same (same volume), and waits for it otherwise before it acts."""
    out: dict[tuple[str, str], EarlySync] = {}
    for volume in volumes:
        try:
            found = cluster.get("v1", "PersistentVolumeClaim", volume.pvc, namespace=volume.namespace)
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        name = (found.get("spec") or {}).get("volumeName")
        claim = RestoredPvc(ref_of(found), Action.SKIPPED, found, name,
                            (found.get("status") or {}).get("phase") == "Bound" and bool(name))
        if claim.bound and name and _seeded(claim, migration):
            out[(volume.namespace, volume.pvc)] = EarlySync(name, pool.submit(
                _volume_outcome, repo, cluster, volume, claim, migration=migration, settle_seed=settle,
                verify=True, mover=None))
    return out


def fill_volumes(repo: Repository, cluster: Cluster, claims: Sequence[RestoredPvc],
                 volumes: Sequence[VolumeToRestore], *, verify: bool = True,
                 mover: MoverOptions | None = None, seeded_by: str | None = None,
                 settle_seed: bool = True, early: dict[tuple[str, str], EarlySync] | None = None
                 ) -> list[VolumeOutcome]:
    """Fill the claims this restore created from their snapshots (a few at once); one VolumeOutcome per
    claim, in ``volumes`` order. A claim that is not Bound, or whose fill fails, is FAILED (never raised):
    the restore engine then holds back every workload that mounts it.

    ``seeded_by`` (a migration id): claims annotated ``kubekeep.io/migration`` with it, created now or
    by that migration's pre-seed, are synced instead (kubekeep.migrate.volumes.sync_volume: only what
    changed since the last sync is written, entries the snapshot lacks are removed, what was written is
    re-read and compared). Other existing claims are never written into.

    ``early``: syncs :func:`start_seeded_syncs` started; a claim's is its outcome when the restore's claim
    is still that seeded claim on the same volume (otherwise it is waited for, then the claim is handled
    here as if it had not run)."""
    created = {(p.ref.namespace, p.ref.name): p for p in claims
               if p.action in (Action.CREATED, Action.RECREATED) or _seeded(p, seeded_by)}
    todo = [(v, created[(v.namespace, v.pvc)]) for v in volumes if (v.namespace, v.pvc) in created]
    started = early or {}

    def one(item: tuple[VolumeToRestore, RestoredPvc]) -> VolumeOutcome:
        volume, claim = item
        ahead = started.get((volume.namespace, volume.pvc))
        if ahead is not None:
            outcome = ahead.future.result()  # never raises: _volume_outcome records failures
            if _seeded(claim, seeded_by) and claim.bound and claim.volume_name == ahead.volume_name:
                return outcome
        return _volume_outcome(repo, cluster, volume, claim, migration=seeded_by, settle_seed=settle_seed,
                               verify=verify, mover=mover)

    with ThreadPoolExecutor(max_workers=VOLUME_WORKERS, thread_name_prefix="kubekeep-volume") as pool:
        return list(pool.map(one, todo))


def _volume_outcome(repo: Repository, cluster: Cluster, volume: VolumeToRestore, claim: RestoredPvc, *,
                    migration: str | None, settle_seed: bool, verify: bool, mover: MoverOptions | None
                    ) -> VolumeOutcome:
    """One claim synced (a migration's seeded claim) or filled; a failure is its FAILED outcome, never raised."""
    try:
        if _seeded(claim, migration):
            return _sync_claim(repo, cluster, volume, claim, settle_seed)
        return _fill_claim(repo, cluster, volume, claim, verify, mover)
    except Exception as exc:  # noqa: BLE001 - recorded as the claim's outcome, never dropped
        return VolumeOutcome(volume.namespace, volume.pvc, VolumeStatus.FAILED, source=volume.source,
                             snapshot_id=volume.snapshot_id, error=f"{type(exc).__name__}: {exc}")


def _seeded(claim: RestoredPvc, migration: str | None) -> bool:
    annotations = (claim.claim or {}).get("metadata", {}).get("annotations") or {}
    return migration is not None and annotations.get(MIGRATION_ANNOTATION) == migration


def _sync_claim(repo: Repository, cluster: Cluster, volume: VolumeToRestore, claim: RestoredPvc,
                settle: bool) -> VolumeOutcome:
    where = f"PVC {volume.namespace}/{volume.pvc}"
    if not claim.bound or not claim.volume_name:
        raise RuntimeError(f"{where} is not Bound ({claim.note or 'no volume'}); no volume data was synced into it")
    pv = cluster.get("v1", "PersistentVolume", claim.volume_name)
    spec = pv.get("spec") or {}
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise RuntimeError(f"{where}: volume {claim.volume_name} is not reachable from this worker; a migration's "
                           "incremental sync needs direct access to the target volume")
    synced = sync_volume(repo, volume.snapshot_id, Path(path),
                         target_id=f"{cluster.name}/{claim.volume_name}/{pv['metadata']['uid']}", settle=settle)
    return VolumeOutcome(volume.namespace, volume.pvc, VolumeStatus.VERIFIED, source=volume.source,
                         snapshot_id=volume.snapshot_id, method="incremental-sync" if synced.seeded else "sync",
                         files=synced.files, bytes=synced.written_bytes)


def _fill_claim(repo: Repository, cluster: Cluster, volume: VolumeToRestore, claim: RestoredPvc, verify: bool,
                mover: MoverOptions | None) -> VolumeOutcome:
    status = VolumeStatus.VERIFIED if verify else VolumeStatus.UNVERIFIED
    where = f"PVC {volume.namespace}/{volume.pvc}"
    if not claim.bound or not claim.volume_name:
        raise RuntimeError(f"{where} is not Bound ({claim.note or 'no volume'}); no volume data was restored "
                           "into it")
    pv = cluster.get("v1", "PersistentVolume", claim.volume_name)
    spec = pv.get("spec") or {}
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if path:
        summary = restore_volume_data(repo, volume.snapshot_id, Path(path), verify=verify)
        return VolumeOutcome(volume.namespace, volume.pvc, status, source=volume.source,
                             snapshot_id=volume.snapshot_id, method="direct", files=int(summary.get("files", 0)),
                             bytes=int(summary.get("bytes", 0)))
    if mover is None:
        raise RuntimeError(f"{where}: volume {claim.volume_name} is not reachable from this worker; give the flow "
                           "parameter mover = {image, location, env_from_secrets} to fill it with a mover Job")
    job = mover.spec("restore", "--snapshot", volume.snapshot_id, "--target", "/data",
                     *(() if verify else ("--no-verify",)))
    try:
        restore_with_mover(cluster, volume.namespace, volume.pvc, job, run_id=volume.snapshot_id[:12])
    except CsiError as exc:
        raise RuntimeError(f"{where}: restore mover failed at step {exc.step}: {exc}") from None
    return VolumeOutcome(volume.namespace, volume.pvc, status, source=volume.source,
                         snapshot_id=volume.snapshot_id, method="mover-job")


@task(name="restore-files", **DATA_TASK)
def restore_files(location: LocationProfile, key: EncryptionKey, files: FilesToRestore, *,
                  restore_point: str | None = None, app: str | None = None,
                  before: datetime | None = None, last_clean: bool = False) -> dict[str, Any]:
    """Files of one claim in a restore point (one file, a subtree or the whole volume), restored to a local
    directory and verified; the cluster is not touched."""
    with repository(location, key) as repo:
        _, record = choose_restore_point(repo, restore_point=restore_point, app=app, before=before,
                                         catalog=Catalog(repo.storage, codec=repo.catalog_codec()),
                                         last_clean=last_clean)
        volume = record.volume(files.pvc)
        assert volume.snapshot_id is not None
        return {"restore_point": record.id,
                "files": restore_volume_data(repo, volume.snapshot_id, Path(files.target), path=files.path)}


@task(name="record-restore", **DATA_TASK)
def record_restore(location: LocationProfile, key: EncryptionKey, report_ref: ReportRef, plan: PlanRef,
                   restore_id: str, downtime: Downtime | None = None) -> str:
    """Keep the report: a snapshot in the repository, then the catalog's ``restores`` row (every object's
    outcome; a migration's cutover also its measured ``downtime``); return the catalog key."""
    report = report_ref.load()
    namespaces = sorted(report.outcomes.namespaces)
    with repository(location, key) as repo:
        return record_report(repo, report, restore_id=restore_id, restore_point_id=plan.restore_point_id,
                             target_namespaces=namespaces, retention=location.retention(), downtime=downtime)


def discard_report(report: ReportRef) -> None:
    """Delete a kept report (its head and its spooled outcomes) once it is recorded and published, so the
    same plan can be applied after its dry run (the restore flow's approval)."""
    for path in (report.path, report.outcomes_path):
        Path(path).unlink(missing_ok=True)


def discard_spool(plan: PlanRef) -> None:
    """Delete the plan's spool (decrypted manifests, and the report beside them): at the end of every run
    that loaded a plan."""
    shutil.rmtree(plan.spool, ignore_errors=True)
