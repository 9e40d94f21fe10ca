"""Migration tasks: thin wrappers over kubekeep.migrate; the rest of a migration reuses the backup and
restore tasks (docs/migration.md).

- :func:`plan_migration`: the plan, from the source as it is now, against the target; writes nothing;
- :func:`source_back_on_failure`: the cutover's bracket: a block that raises puts the source's quiesced
  workloads back (a successful cutover leaves them at zero);
- :func:`unquiesce_source`: the rollback: the source's quiesced workloads get their replica counts back;
- :func:`prove_volumes`: every file of every migrated claim re-read on the target and compared with the
  final snapshot (after the target is ready, outside the downtime).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from blocks import ClusterConnection, EncryptionKey, LocationProfile, repository
from kubekeep.backup.collect import CollectReport, collect
from kubekeep.backup.quiesce import QuiesceError, find_quiesced, unquiesce
from kubekeep.backup.scope import BackupScope
from kubekeep.migrate import MigrationOptions, MigrationPlan
from kubekeep.migrate import plan_migration as plan_against
from kubekeep.restore.volume_data import verify_volume

from .common import DATA_TASK
from .restore import VolumeToRestore


@task(name="plan-migration", retries=2, retry_delay_seconds=2, persist_result=False)
def plan_migration(source: ClusterConnection, target: ClusterConnection, scope: BackupScope,
                   options: MigrationOptions) -> MigrationPlan:
    """Read the app from the source (as a backup would) and resolve it against the target; change nothing."""
    report = CollectReport()
    with source.connect() as src, target.connect() as tgt:
        plan = plan_against(collect(src, scope, report), tgt, options, source_cluster=source.cluster_name())
    get_run_logger().info("plan of %d object(s) from %d namespace(s) onto %s: %s", report.objects,
                          len(report.namespaces), plan.target_cluster, plan.summary())
    return plan


@task(name="unquiesce-source", **{**DATA_TASK, "retries": 3})
def unquiesce_source(cluster: ClusterConnection, namespaces: list[str]) -> list[str]:
    """Give every workload of ``namespaces`` that a quiesce left at zero its replica count back (from its
    annotation; idempotent); return what was restored."""
    with cluster.connect() as c:
        refs = [w.ref for ns in namespaces for w in find_quiesced(c, ns)]
        return [str(w.ref) for w in unquiesce(c, refs)]


@contextmanager
def source_back_on_failure(cluster: ClusterConnection, namespaces: list[str]) -> Iterator[None]:
    """A cutover: when the block raises, the source's quiesced workloads are put back before the error
    leaves (a failure to do so is added to it as a note); when it succeeds they stay at zero."""
    try:
        yield
    except BaseException as exc:
        try:
            back = unquiesce_source(cluster, namespaces)
            exc.add_note(f"the source is running again: {', '.join(back) or 'nothing was quiesced'}")
        except QuiesceError as undo:
            exc.add_note(str(undo))
        raise


@dataclass(frozen=True)
class VolumeProof:
    """One migrated claim's data compared file by file with the final snapshot."""

    pvc: str
    snapshot_id: str
    files: int
    bytes: int
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


@task(name="prove-volumes", **DATA_TASK)
def prove_volumes(location: LocationProfile, key: EncryptionKey, cluster: ClusterConnection,
                  volumes: Sequence[VolumeToRestore]) -> list[VolumeProof]:
    """Re-read every file of every migrated claim on the target and compare it with the snapshot."""
    out = []
    with cluster.connect() as c, repository(location, key) as repo:
        for v in volumes:
            claim = c.get("v1", "PersistentVolumeClaim", v.pvc, v.namespace)
            name = (claim.get("spec") or {}).get("volumeName")
            pv = c.get("v1", "PersistentVolume", name) if name else {}
            spec = pv.get("spec") or {}
            path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
            if not path:
                out.append(VolumeProof(f"{v.namespace}/{v.pvc}", v.snapshot_id, 0, 0,
                                       ["the volume is not reachable from this worker: not compared"]))
                continue
            result = verify_volume(repo, v.snapshot_id, Path(path))
            out.append(VolumeProof(f"{v.namespace}/{v.pvc}", v.snapshot_id, result.files, result.bytes,
                                   list(result.mismatches)))
    return out
