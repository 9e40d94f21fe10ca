"""Restore tasks: thin wrappers over kubekeep.restore; they pass a spool path and small summaries."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from kubekeep.backup.csi import CsiError, MoverSpec, restore_with_mover
from kubekeep.catalog import Catalog
from kubekeep.manifest import ref_of
from kubekeep.restore import (
    DEFAULT_PRIORITIES,
    PlanOptions,
    RestorePlan,
    SanitizeOptions,
    TierPolicy,
    TransformChain,
    parse_priorities,
    plan_restore,
)
from kubekeep.restore.apply import apply, dry_run, not_attempted, served_by_cluster
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.record import record_restore as record_report
from kubekeep.restore.report import Action, ObjectOutcome, RestoreReport, VolumeOutcome, VolumeStatus
from kubekeep.restore.source import drop_reprovisioned_volumes, load_manifests
from kubekeep.restore.spool import PhaseSummary, read_phase, spool_dir, write_plan
from kubekeep.restore.transforms import Selector
from kubekeep.restore.volume_data import restore_volume as restore_volume_data
from kubekeep.restorepoint import choose_restore_point

from .common import DATA_TASK


@dataclass
class VolumeToRestore:
    source: str  # namespace/pvc in the restore point
    namespace: str  # where the PVC is restored
    pvc: str
    snapshot_id: str


@dataclass
class PlanRef:
    """What the planning task hands on: a private spool directory and small summaries."""

    restore_point_id: str
    snapshot_id: str
    spool: str
    phases: list[PhaseSummary]
    volumes: list[VolumeToRestore]
    namespaces: list[str] = field(default_factory=list)  # every namespace the plan writes into
    skipped: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    #: outcomes of the objects the plan left out (excluded on purpose, or not convertible: a failure)
    left_out: list[dict[str, Any]] = field(default_factory=list)

    @property
    def object_count(self) -> int:
        return sum(p.objects for p in self.phases)


@task(name="load-plan", **DATA_TASK)
def load_plan(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection, *,
              restore_point: str | None, app: str | None, before: datetime | None, selection: Selector,
              pvcs: list[str] | None = None,
              transforms: TransformChain, preserve_node_ports: bool, include_owned: bool,
              priorities: list[Any] | None = None, tiers: dict[str, Any] | None = None,
              restore_status: list[str] | None = None) -> PlanRef:
    """Choose the restore point, load the selected manifests, plan against what the target serves."""
    storage = location.storage()
    with key.open_repository(storage) as repo:
        snapshot_id, record = choose_restore_point(repo, restore_point=restore_point, app=app, before=before,
                                                   catalog=Catalog(repo.storage, codec=repo.catalog_codec()))
        manifests = list(load_manifests(repo, record, selection, pvcs=pvcs or ()))
    manifests, reprovisioned = drop_reprovisioned_volumes(
        manifests, {(v.namespace, v.pvc) for v in record.volumes if v.snapshot_id})
    with cluster.connect() as c:
        served = served_by_cluster(c, refresh=True)
    options = PlanOptions(include_owned=include_owned, transforms=transforms,
                          sanitize=SanitizeOptions(preserve_node_ports=preserve_node_ports,
                                                   keep_status=frozenset(restore_status or ())),
                          priorities=parse_priorities(priorities) if priorities else DEFAULT_PRIORITIES,
                          tier_policy=TierPolicy.from_dict(tiers) if tiers else None)
    plan = plan_restore(manifests, served=served, options=options)
    spool = spool_dir()
    phases = write_plan(plan, spool)

    planned_pvcs = {(o.ref.namespace, o.ref.name) for p in plan.phases for o in p.objects
                    if o.ref.kind == "PersistentVolumeClaim" and not o.ref.group}
    volumes = []
    for v in record.volumes:
        if not v.snapshot_id:
            continue
        source = next((m for m in manifests if m.get("kind") == "PersistentVolumeClaim"
                       and m["metadata"].get("namespace") == v.namespace and m["metadata"]["name"] == v.pvc), None)
        if source is None:
            continue
        target = ref_of(transforms.apply([source])[0])  # where the transforms put this claim
        if (target.namespace, target.name) in planned_pvcs:
            volumes.append(VolumeToRestore(f"{v.namespace}/{v.pvc}", target.namespace, target.name, v.snapshot_id))
    namespaces = sorted({o.ref.namespace for p in plan.phases for o in p.objects if o.ref.namespace})
    left_out = []
    for skipped in plan.skipped:
        served_versions = served.get(skipped.ref.group, {}).get(skipped.ref.kind, [])
        action = Action.EXCLUDED if skipped.ref.version in served_versions else Action.NOT_CONVERTIBLE
        left_out.append(ObjectOutcome.of(skipped.ref, action, skipped.reason, phase="plan").to_dict())
    return PlanRef(restore_point_id=record.id, snapshot_id=snapshot_id, spool=str(spool), phases=phases,
                   volumes=volumes, namespaces=namespaces,
                   skipped=reprovisioned + [f"{s.ref}: {s.reason}" for s in plan.skipped], left_out=left_out,
                   converted=[f"{c.ref}: {'; '.join(c.notes) or 'converted'}" for c in plan.converted])


def _full_plan(plan_ref: PlanRef) -> RestorePlan:
    phases = [read_phase(Path(plan_ref.spool), p.index).phases[0] for p in plan_ref.phases]
    return RestorePlan(phases, [], [])


@task(name="preflight", retries=2, retry_delay_seconds=2, persist_result=False)
def preflight(cluster: ClusterConnection, plan_ref: PlanRef) -> tuple[str | None, list[str]]:
    """(why the restore must not start - a target namespace is Terminating - or None,
    the target namespaces that do not exist yet)."""
    fresh = []
    with cluster.connect() as c:
        for ns in plan_ref.namespaces:
            obj = c.get_or_none("v1", "Namespace", ns)
            if obj is None:
                fresh.append(ns)
            elif (obj.get("status") or {}).get("phase") == "Terminating":
                return (f"target namespace {ns} is Terminating: wait until it is gone (or map the restore to "
                        "another namespace); nothing was restored"), []
    return None, fresh


@task(name="dry-run", **DATA_TASK)
def dry_run_plan(cluster: ClusterConnection, plan_ref: PlanRef, policy: RestorePolicy) -> dict[str, Any]:
    """Server-side dry run of every object plus a diff against what exists; changes nothing."""
    with cluster.connect() as c:
        report = dry_run(c, _full_plan(plan_ref), policy)
        report.cluster = c.name
    return report.to_dict()


@task(name="apply-phase", task_run_name="apply-{phase.name}", **{**DATA_TASK, "retries": 0})
def apply_phase(cluster: ClusterConnection, plan_ref: PlanRef, phase: PhaseSummary, policy: RestorePolicy,
                wait: bool, fresh_namespaces: list[str], volumes: list[VolumeOutcome] | None = None
                ) -> dict[str, Any]:
    """Send one phase (a priority group or a readiness tier) and pass its gate (CRDs Established,
    workloads Ready). ``volumes``: the data restored so far; objects that mount a claim whose data failed
    or was not verified are held back and the restore stops (kubekeep.restore.apply). Per-object problems
    are in the report; the task fails only on infrastructure errors."""
    with cluster.connect() as c:
        report = apply(c, read_phase(Path(plan_ref.spool), phase.index), policy, wait=wait,
                       fresh_namespaces=fresh_namespaces, volumes=volumes or ())
        report.cluster = c.name
    return report.to_dict()


@task(name="not-attempted", persist_result=False, cache_policy=NO_CACHE)
def not_attempted_phases(plan_ref: PlanRef, phases: list[PhaseSummary], reason: str) -> list[dict[str, Any]]:
    """The report lines of the phases a stopped restore never reached (every object: not attempted)."""
    out: list[dict[str, Any]] = []
    for phase in phases:
        out += [o.to_dict() for o in not_attempted(read_phase(Path(plan_ref.spool), phase.index), reason)]
    return out


@task(name="restore-volume", task_run_name="restore-volume-{volume.namespace}-{volume.pvc}", **DATA_TASK)
def restore_volume(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                   volume: VolumeToRestore, verify: bool = True, timeout: float = 120.0,
                   mover: dict[str, Any] | None = None) -> VolumeOutcome:
    """Fill a restored (Bound) PVC from its snapshot, then verify the files: directly when this worker
    reaches the volume (hostPath/local), else by a mover Job that mounts the claim (``mover``)."""
    with cluster.connect() as c:
        try:
            claim = c.wait_for("v1", "PersistentVolumeClaim", volume.pvc,
                               lambda o: o is not None and (o.get("status") or {}).get("phase") == "Bound",
                               namespace=volume.namespace, timeout=timeout, what="Bound")
        except TimeoutError as exc:  # not transient: retrying the same wait does not help
            raise RuntimeError(f"{exc}; no volume data was restored into it") from None
        assert claim is not None
        pv = c.get("v1", "PersistentVolume", claim["spec"]["volumeName"])
        spec = pv.get("spec") or {}
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            if not mover or not mover.get("image") or not mover.get("repository"):
                raise RuntimeError(
                    f"PVC {volume.namespace}/{volume.pvc}: volume {pv['metadata']['name']} is not reachable from this "
                    "worker; give the flow parameter mover = {image, repository, env_from_secrets} to fill it "
                    "with a mover Job")
            spec_ = MoverSpec(image=str(mover["image"]), env_from_secrets=tuple(mover.get("env_from_secrets") or ()),
                              service_account=mover.get("service_account"),
                              args=("restore", "--repo", str(mover["repository"]), "--snapshot", volume.snapshot_id,
                                    "--target", "/data") + (() if verify else ("--no-verify",)))
            try:
                restore_with_mover(c, volume.namespace, volume.pvc, spec_, run_id=volume.snapshot_id[:12])
            except CsiError as exc:
                raise RuntimeError(f"PVC {volume.namespace}/{volume.pvc}: restore mover failed at step {exc.step}: "
                                   f"{exc}") from None
            return VolumeOutcome(volume.namespace, volume.pvc,
                                 VolumeStatus.VERIFIED if verify else VolumeStatus.UNVERIFIED, source=volume.source,
                                 snapshot_id=volume.snapshot_id, method="mover-job")
    with key.open_repository(location.storage()) as repo:
        summary = restore_volume_data(repo, volume.snapshot_id, Path(path), verify=verify)
    return VolumeOutcome(volume.namespace, volume.pvc, VolumeStatus.VERIFIED if verify else VolumeStatus.UNVERIFIED,
                         source=volume.source, snapshot_id=volume.snapshot_id, method="direct",
                         files=int(summary.get("files", 0)), bytes=int(summary.get("bytes", 0)))


@task(name="restore-files", **DATA_TASK)
def restore_files(location: LocationProfile, key: EncryptionKey, snapshot_id: str, path: str | None,
                  target: str) -> dict[str, Any]:
    """Single files (or a subtree) of a volume, restored to a local path and verified."""
    with key.open_repository(location.storage()) as repo:
        return restore_volume_data(repo, snapshot_id, Path(target), path=path)


@task(name="record-restore", **DATA_TASK)
def record_restore(location: LocationProfile, key: EncryptionKey, report: dict[str, Any], restore_point_id: str,
                   restore_id: str, target_namespaces: list[str]) -> str:
    """Keep the report: a snapshot in the repository, then the catalog's ``restores`` row (every object's
    outcome); return the catalog key."""
    with key.open_repository(location.storage()) as repo:
        return record_report(repo, RestoreReport.from_dict(report), restore_id=restore_id,
                             restore_point_id=restore_point_id, target_namespaces=target_namespaces,
                             retention=location.retention())


def discard_spool(plan_ref: PlanRef) -> None:
    shutil.rmtree(plan_ref.spool, ignore_errors=True)
