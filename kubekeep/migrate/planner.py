"""Plan a migration: the restore plan the target would get, checked against what the target has.

Two pure steps, with one read of the target in between:

1. :func:`prepare` runs the restore's own planner (:func:`kubekeep.restore.plan_restore`:
   owners, sanitize, version conversion against what the target serves, the run's
   transforms, order) on the restore point's manifests, and links every object it
   will create back to the object it came from;
2. the caller reads :class:`~kubekeep.migrate.target.TargetFacts` for the scope
   the prepared plan names (:meth:`Prepared.scope`);
3. :func:`evaluate` runs the checks (:data:`~kubekeep.migrate.checks.CHECKS`) and
   returns the :class:`~kubekeep.migrate.model.MigrationPlan`.

:func:`plan_migration` does all three for manifests and a target cluster, :func:`plan_restore_point`
for a restore point of a repository.
Nothing here writes anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubekeep.catalog import Catalog
from kubekeep.cluster import Cluster
from kubekeep.manifest import Manifest, ObjectRef, ref_of
from kubekeep.repo.repository import Repository
from kubekeep.restore import PlanOptions, RestorePlan, plan_restore
from kubekeep.restore.apply import served_by_cluster
from kubekeep.restore.policy import RestorePolicy
from kubekeep.restore.source import drop_reprovisioned_volumes, load_manifests
from kubekeep.restore.transforms import Selector
from kubekeep.restore.versions import ServedVersions
from kubekeep.restorepoint import choose_restore_point

from .model import MigrationPlan, ObjectRow, Verdict, merge_items
from .target import StorageClassInfo, TargetFacts, collect_target_facts

_SOURCE_KEY = "__kubekeep_migrate_source__"


@dataclass(frozen=True)
class MigrationOptions:
    """How the restore point is restored on the target (the same options the restore takes)."""

    #: owners, sanitize, transforms (namespace/StorageClass/image maps, JSON patches), order
    plan: PlanOptions = field(default_factory=PlanOptions)
    #: what the restore does with objects that exist on the target
    policy: RestorePolicy = field(default_factory=RestorePolicy)
    #: create CustomResourceDefinitions the target lacks from the restore point (else: blocking)
    bring_crds: bool = True
    #: kinds (``Kind`` or ``Kind.group``) left out of the migration on purpose
    exclude_kinds: tuple[str, ...] = ()
    #: objects on the target carrying this id in ``kubekeep.io/migration`` were made by this migration
    #: (its pre-seed) and are not conflicts
    migration_id: str | None = None
    #: the source cluster's StorageClasses, for classes the restore point does not hold
    source_storage_classes: Mapping[str, StorageClassInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeData:
    """Volume data of a claim in the restore point."""

    namespace: str
    pvc: str
    logical_bytes: int
    snapshot_id: str | None = None


@dataclass(frozen=True)
class PlannedObject:
    """An object the restore would create, with the object of the restore point it comes from."""

    source: Manifest
    target: Manifest
    source_ref: ObjectRef
    ref: ObjectRef
    phase: str
    tier: int | None


@dataclass
class Prepared:
    restore_point_id: str
    source_cluster: str
    options: MigrationOptions
    sources: list[Manifest]
    objects: list[PlannedObject]
    rows: list[ObjectRow]
    restore_plan: RestorePlan
    volumes: dict[tuple[str, str], VolumeData] = field(default_factory=dict)
    #: objects of the restore point left out by the run (still facts about the source, e.g. its StorageClasses)
    excluded: list[Manifest] = field(default_factory=list)

    def target_namespaces(self) -> list[str]:
        names = {o.ref.namespace for o in self.objects if o.ref.namespace}
        names |= {o.ref.name for o in self.objects if (o.ref.group, o.ref.kind) == ("", "Namespace")}
        return sorted(names)

    def scope(self) -> tuple[list[str], dict[tuple[str, str], set[tuple[str, str]]]]:
        """What to read from the target: the namespaces written into, and per (group, kind) the
        (namespace, name) of every object the restore would create or its pods need."""
        from .checks.claims import claims_of
        from .checks.references import references_of

        wanted: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for o in self.objects:
            wanted.setdefault((o.ref.group, o.ref.kind), set()).add((o.ref.namespace, o.ref.name))
            for group, kind, namespace, name in references_of(o.target, o.ref.namespace):
                wanted.setdefault((group, kind), set()).add((namespace, name))
            for claim in claims_of(o):  # the claims a StatefulSet's templates stand for, too
                wanted.setdefault(("", "PersistentVolumeClaim"), set()).update((claim.namespace, n)
                                                                               for n in claim.names)
        return self.target_namespaces(), wanted


def _excluded(ref: ObjectRef, kinds: Sequence[str]) -> bool:
    return any(k == ref.kind or k == ref.group_kind for k in kinds)


def _api_version(ref: ObjectRef) -> str:
    return f"{ref.group}/{ref.version}" if ref.group else ref.version


def prepare(
    manifests: Iterable[Manifest],
    served: ServedVersions,
    options: MigrationOptions | None = None,
    *,
    restore_point_id: str = "",
    source_cluster: str = "",
    volumes: Iterable[VolumeData] = (),
) -> Prepared:
    """Plan the restore against what the target serves and link each created object to its source.

    Raises what :func:`kubekeep.restore.plan_restore` raises for bad specs and failed transforms.
    """
    options = options or MigrationOptions()
    volume_data = {(v.namespace, v.pvc): v for v in volumes}
    kept, reprovisioned = drop_reprovisioned_volumes(
        list(manifests), {key for key, v in volume_data.items() if v.snapshot_id})
    sources: list[Manifest] = []
    rows: list[ObjectRow] = []
    tagged: list[Manifest] = []
    excluded: list[Manifest] = []
    for m in kept:
        ref = ref_of(m)
        if _excluded(ref, options.exclude_kinds):
            excluded.append(m)
            rows.append(ObjectRow(str(ref), _api_version(ref), Verdict.EXCLUDED, note="excluded by the run"))
            continue
        tagged.append({**m, _SOURCE_KEY: len(sources)})
        sources.append(m)
    for reason in reprovisioned:
        name = reason.split(":", 1)[0].removeprefix("PersistentVolume ")
        rows.append(ObjectRow(f"PersistentVolume {name}", "v1", Verdict.LEFT_OUT, note=reason.split(": ", 1)[1]))

    plan = plan_restore(tagged, served=served, options=options.plan)
    planned: dict[int, PlannedObject] = {}
    objects: list[PlannedObject] = []
    for phase in plan.phases:
        for obj in phase.objects:
            index = obj.manifest.pop(_SOURCE_KEY)
            source = sources[index]
            item = PlannedObject(source, obj.manifest, ref_of(source), obj.ref, phase.name, obj.tier)
            planned[index] = item
            objects.append(item)
    for c in plan.converted:
        if c.manifest is not None:
            c.manifest.pop(_SOURCE_KEY, None)
    notes = {c.ref: "; ".join(c.notes) or c.decision.reason for c in plan.converted}
    skipped = {s.ref: s.reason for s in plan.skipped}
    for index, source in enumerate(sources):
        ref = ref_of(source)
        stored = _api_version(ref)
        placed = planned.get(index)
        if placed is not None:
            target_version = _api_version(placed.ref)
            if target_version == stored:
                rows.append(ObjectRow(str(ref), stored, Verdict.SERVED, str(placed.ref), target_version))
            else:
                rows.append(ObjectRow(str(ref), stored, Verdict.CONVERT, str(placed.ref), target_version,
                                      notes.get(ref, f"converted to {target_version}")))
            continue
        reason = skipped.get(ref, "left out by the restore plan")
        verdict = Verdict.NOT_CONVERTIBLE if reason.startswith("not convertible") else Verdict.LEFT_OUT
        rows.append(ObjectRow(str(ref), stored, verdict, note=reason))
    return Prepared(restore_point_id, source_cluster, options, sources, objects, rows, plan, volume_data, excluded)


def evaluate(prepared: Prepared, facts: TargetFacts) -> MigrationPlan:
    """Run every check on the prepared plan and the target's facts; return the migration plan."""
    from .checks import CHECKS, CheckContext
    from .checks.storage import resolve_storage_classes

    ctx = CheckContext(prepared, facts)
    ctx.storage_classes = resolve_storage_classes(ctx)
    items = merge_items(item for check in CHECKS for item in check(ctx))
    crds = sorted(o.ref.name for o in prepared.objects
                  if (o.ref.group, o.ref.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition")
                  and ("apiextensions.k8s.io", "CustomResourceDefinition", "", o.ref.name) not in facts.existing)
    return MigrationPlan(
        restore_point_id=prepared.restore_point_id, source_cluster=prepared.source_cluster,
        target_cluster=facts.name, target_version=facts.version, objects=list(prepared.rows), items=items,
        storage_classes=ctx.storage_classes, target_namespaces=prepared.target_namespaces(),
        crds_from_restore_point=crds if prepared.options.bring_crds else [])


def plan_migration(
    manifests: Iterable[Manifest],
    target: Cluster,
    options: MigrationOptions | None = None,
    *,
    restore_point_id: str = "",
    source_cluster: str = "",
    volumes: Iterable[VolumeData] = (),
) -> MigrationPlan:
    """The migration plan of ``manifests`` (a restore point's) onto ``target``; reads the target only."""
    served = served_by_cluster(target, refresh=True)
    prepared = prepare(manifests, served, options, restore_point_id=restore_point_id,
                       source_cluster=source_cluster, volumes=volumes)
    namespaces, objects = prepared.scope()
    facts = collect_target_facts(target, namespaces=namespaces, objects=objects, served=served)
    return evaluate(prepared, facts)


def plan_restore_point(
    repo: Repository,
    target: Cluster,
    options: MigrationOptions | None = None,
    *,
    restore_point: str | None = None,
    app: str | None = None,
    selection: Selector | None = None,
    catalog: Catalog | None = None,
) -> MigrationPlan:
    """The migration plan of a restore point (by id, or ``app``'s latest) onto ``target``.

    Reads the repository and the target; writes nothing anywhere.
    """
    _, record = choose_restore_point(repo, restore_point=restore_point, app=app, catalog=catalog)
    volumes = [VolumeData(v.namespace, v.pvc, v.logical_bytes, v.snapshot_id) for v in record.volumes]
    return plan_migration(load_manifests(repo, record, selection), target, options, restore_point_id=record.id,
                          source_cluster=record.cluster, volumes=volumes)
