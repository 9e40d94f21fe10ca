"""A restore plan spooled to private local files, planned namespace by namespace: memory does not grow with
the number of objects.

:func:`spool_plan` takes the restore set as a stream (from the repository) and never holds all of it:

1. every manifest is written to ``manifests.jsonl`` and its offset kept per namespace (cluster-scoped
   objects are one more group); what planning one namespace needs to know about the others is kept as
   small facts: the PersistentVolumes restored (claims keep their ``volumeName``), the kinds the
   restored CRDs serve (version conversion), the CRDs' groups (custom resources are ordered last);
2. each group is read back alone and planned (:func:`~kubekeep.restore.plan.prepare_manifests`: owners,
   sanitize, versions, transforms); each object goes to the file of its priority entry (the ``*`` entry
   has two: built-in kinds first, custom resources last), in namespace then name order;
3. the entries are laid out into phases (:func:`~kubekeep.restore.order.phase_spans`, the layout
   :func:`~kubekeep.restore.order.order_manifests` uses); readiness tiers are computed over every
   workload at once from small stubs (name, namespace, the tier annotations), then the workloads are
   copied to one file per tier.

:func:`read_plan` returns a :class:`~kubekeep.restore.plan.RestorePlan` whose phases read their objects
back one by one, each time they are iterated. Differences from planning in memory: objects matched by the
``*`` entry are sorted by namespace before kind; an owner in another namespace is not seen (Kubernetes
allows none for namespaced dependents, except cluster-scoped owners, which no rule of
:data:`~kubekeep.restore.owners.DEFAULT_RECREATED_BY` has).

The files hold decrypted manifests (Secrets included): the directory is 0700, every file 0600, and the
restore flow deletes the directory when the run ends. Prefect tasks pass the directory's path (a
reference), never the manifests.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, overload

from kubekeep.manifest import Manifest, ObjectRef, ref_of

from .errors import TransformError
from .order import (
    AFTER_ANNOTATION,
    TIER_ANNOTATION,
    EntryClassifier,
    OrderedObject,
    RestorePhase,
    Wait,
    compute_tiers,
    phase_spans,
)
from .owners import SkippedObject
from .plan import PlanOptions, RestorePlan, prepare_manifests, served_by_crds, take_notes
from .sanitize import restored_pv_names
from .versions import ServedVersions

MANIFESTS_FILE = "manifests.jsonl"
PLAN_FILE = "plan.json"
SKIPPED_FILE = "skipped.jsonl"
CLUSTER_FILE = "cluster-scoped.jsonl"
#: examples of what the plan left out or converted, kept for the run's summary (the report has every one)
EXAMPLES = 30

T = TypeVar("T")


@dataclass(frozen=True)
class PhaseSummary:
    index: int
    name: str
    wait: str
    tier: int | None
    objects: int
    kinds: tuple[str, ...]


@dataclass
class SpooledPlan:
    """What :func:`spool_plan` tells its caller: summaries, never the objects."""

    directory: Path
    phases: list[PhaseSummary]
    skipped: int = 0
    #: the first :data:`EXAMPLES` left out, ``ref: reason``
    skipped_examples: list[str] = field(default_factory=list)
    converted: int = 0
    converted_examples: list[str] = field(default_factory=list)
    #: (namespace, name) of the PersistentVolumeClaims the plan creates (after transforms)
    planned_claims: set[tuple[str, str]] = field(default_factory=set)
    #: source manifests of the claims asked for (``claims`` of :func:`spool_plan`), by (namespace, name)
    claims: dict[tuple[str, str], Manifest] = field(default_factory=dict)

    @property
    def object_count(self) -> int:
        return sum(p.objects for p in self.phases)


def spool_dir() -> Path:
    """A new private directory (0700) for one plan."""
    return Path(tempfile.mkdtemp(prefix="kubekeep-restore-"))


def _private(path: Path) -> IO[str]:
    """A new file only the owner can read (it holds decrypted manifests)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w")


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def _tier_stub(manifest: Manifest) -> Manifest:
    """What :func:`~kubekeep.restore.order.compute_tiers` reads of a workload."""
    metadata = manifest.get("metadata") or {}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if k in (TIER_ANNOTATION, AFTER_ANNOTATION)}
    return {"apiVersion": manifest.get("apiVersion"), "kind": manifest.get("kind"),
            "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"),
                         "annotations": annotations}}


def spool_plan(manifests: Iterable[Manifest], directory: Path, *, served: ServedVersions | None = None,
               options: PlanOptions | None = None, claims: Iterable[tuple[str, str]] = ()) -> SpooledPlan:
    """Plan ``manifests`` (a stream) into ``directory`` namespace by namespace; see the module docstring.

    Raises what :func:`~kubekeep.restore.plan.plan_restore` raises; transform failures of every namespace
    are collected into one :class:`~kubekeep.restore.errors.TransformError`.
    """
    options = options or PlanOptions()
    os.chmod(directory, 0o700)
    wanted_claims = set(claims)
    result = SpooledPlan(directory, [])

    # 1. split by namespace; keep the facts planning one namespace needs about the others
    offsets: dict[str, array[int]] = {}
    pvs: set[str] = set()
    crds: list[Manifest] = []
    with os.fdopen(os.open(directory / MANIFESTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
        position = 0
        for m in manifests:
            ref = ref_of(m)
            line = _dump(m).encode()
            offsets.setdefault(ref.namespace, array("Q")).append(position)
            raw.write(line)
            position += len(line)
            if ref.kind == "PersistentVolume" and not ref.group:
                pvs |= restored_pv_names([m])
            elif ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io":
                crds.append(m)
            elif ref.kind == "PersistentVolumeClaim" and not ref.group and (ref.namespace, ref.name) in wanted_claims:
                result.claims[(ref.namespace, ref.name)] = m
    crd_served = served_by_crds(crds)
    classifier = EntryClassifier(options.priorities, {str((m.get("spec") or {}).get("group", "")) for m in crds})
    del crds

    # 2. plan each namespace alone; each object to the file of its priority entry
    entry_files: dict[tuple[int, bool], IO[str]] = {}
    entry_counts: dict[tuple[int, bool], int] = {}
    entry_kinds: dict[tuple[int, bool], set[str]] = {}
    stubs: list[Manifest] = []
    failures: list[str] = []
    cluster_file = _private(directory / CLUSTER_FILE)
    skipped_file = _private(directory / SKIPPED_FILE)
    namespaces: dict[str, None] = {}
    cluster_count = 0
    try:
        with open(directory / MANIFESTS_FILE, "rb") as raw_in:
            for group in sorted(offsets):
                batch = []
                for offset in offsets[group]:
                    raw_in.seek(offset)
                    batch.append(json.loads(raw_in.readline()))
                try:
                    prepared = prepare_manifests(batch, served=served, options=options, restored_pvs=pvs,
                                                 served_by_plan=crd_served)
                except TransformError as exc:
                    failures.extend(exc.failures)
                    continue
                del batch
                for skipped in prepared.skipped:
                    _write_skipped(skipped_file, skipped)
                    if result.skipped < EXAMPLES:
                        result.skipped_examples.append(f"{skipped.ref}: {skipped.reason}")
                    result.skipped += 1
                for c in prepared.converted:
                    if result.converted < EXAMPLES:
                        result.converted_examples.append(f"{c.ref}: {'; '.join(c.notes) or 'converted'}")
                    result.converted += 1
                placed: dict[tuple[int, bool], list[tuple[Manifest, ObjectRef]]] = {}
                for m in prepared.manifests:
                    ref = ref_of(m)
                    index = classifier.entry(ref)
                    key = (index, index == classifier.rest_index and classifier.custom(ref))
                    placed.setdefault(key, []).append((m, ref))
                for key, items in placed.items():
                    index = key[0]
                    entry = options.priorities[index]
                    items.sort(key=classifier.sort_key(index))
                    if key not in entry_files:
                        entry_files[key] = _private(directory / f"entry-{index:03d}{'-custom' if key[1] else ''}.jsonl")
                    out = entry_files[key]
                    for m, ref in items:
                        notes = take_notes(m)
                        out.write(_dump({"match": entry.match, "reason": entry.reason, "tier": None,
                                         "notes": list(notes), "manifest": m}))
                        entry_kinds.setdefault(key, set()).add(ref.kind)
                        if entry.tiered:
                            stubs.append(_tier_stub(m))
                        if ref.namespace:
                            namespaces[ref.namespace] = None
                        else:
                            cluster_file.write(_dump(m))
                            cluster_count += 1
                        if ref.kind == "PersistentVolumeClaim" and not ref.group:
                            result.planned_claims.add((ref.namespace, ref.name))
                    entry_counts[key] = entry_counts.get(key, 0) + len(items)
    finally:
        for fh in (*entry_files.values(), cluster_file, skipped_file):
            fh.close()
    if failures:
        raise TransformError(failures)
    (directory / MANIFESTS_FILE).unlink()  # planned: the raw manifests are not needed any more

    # 3. phases
    def files(index: int) -> list[tuple[str, int, set[str]]]:
        return [(f"entry-{index:03d}{'-custom' if custom else ''}.jsonl", entry_counts[(index, custom)],
                 entry_kinds[(index, custom)]) for custom in (False, True) if (index, custom) in entry_counts]

    present = {index for index, _ in entry_counts}
    layout: list[dict[str, Any]] = []
    for span in phase_spans(options.priorities, present):
        if not span.tiered:
            parts = [f for i in span.entries for f in files(i)]
            layout.append({"name": f"{len(layout):02d}-{span.label}", "wait": span.wait.value, "tier": None,
                           "files": [p[0] for p in parts], "objects": sum(p[1] for p in parts),
                           "kinds": sorted(set().union(*(p[2] for p in parts)))})
            continue
        tiers = compute_tiers([s for s in stubs if classifier.entry(ref_of(s)) in span.entries], options.tier_policy)
        layout.extend(_split_tiers(directory, [f for i in span.entries for f in files(i)], tiers, len(layout)))
    result.phases = [PhaseSummary(i, p["name"], p["wait"], p["tier"], p["objects"], tuple(p["kinds"]))
                     for i, p in enumerate(layout)]
    with _private(directory / PLAN_FILE) as fh:
        json.dump({"phases": layout, "namespaces": list(namespaces), "skipped": result.skipped,
                   "cluster_scoped": cluster_count}, fh)
    return result


def _split_tiers(directory: Path, parts: Sequence[tuple[str, int, set[str]]], tiers: dict[ObjectRef, int],
                 first: int) -> list[dict[str, Any]]:
    """Copy the workloads of one tiered span into one file per readiness tier (entry order kept)."""
    order = sorted(set(tiers.values()))
    names = {tier: f"tier-{first + n:02d}-{tier}.jsonl" for n, tier in enumerate(order)}
    counts = dict.fromkeys(order, 0)
    kinds: dict[int, set[str]] = {tier: set() for tier in order}
    outs = {tier: _private(directory / names[tier]) for tier in order}
    try:
        for name, _count, _kinds in parts:
            with open(directory / name) as fh:
                for line in fh:
                    rec = json.loads(line)
                    ref = ref_of(rec["manifest"])
                    tier = tiers[ref]
                    rec["tier"] = tier
                    outs[tier].write(_dump(rec))
                    counts[tier] += 1
                    kinds[tier].add(ref.kind)
            (directory / name).unlink()
    finally:
        for out in outs.values():
            out.close()
    return [{"name": f"{first + n:02d}-tier-{tier}", "wait": Wait.READY.value, "tier": tier, "files": [names[tier]],
             "objects": counts[tier], "kinds": sorted(kinds[tier])} for n, tier in enumerate(order)]


def _write_skipped(fh: IO[str], skipped: SkippedObject) -> None:
    ref = skipped.ref
    fh.write(_dump({"ref": [ref.group, ref.kind, ref.namespace, ref.name, ref.version], "reason": skipped.reason}))


class JsonLines(Sequence[T]):
    """Records of JSON-lines files, decoded one by one each time they are iterated (never all held)."""

    def __init__(self, paths: Sequence[Path], length: int, decode: Callable[[dict[str, Any]], T]) -> None:
        self.paths = list(paths)
        self.length = length
        self.decode = decode

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[T]:
        for path in self.paths:
            with open(path) as fh:
                for line in fh:
                    rec = json.loads(line)
                    rec[_SIZE] = len(line)
                    yield self.decode(rec)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        items = list(self)  # random access is not what a spool is for; kept correct, not fast
        return items[index]


_SIZE = "__size__"


def _ordered(rec: dict[str, Any]) -> OrderedObject:
    manifest = rec["manifest"]
    return OrderedObject(manifest, ref_of(manifest), rec["match"], rec["reason"], rec["tier"],
                         tuple(rec.get("notes") or ()), rec[_SIZE])


def _manifest(rec: dict[str, Any]) -> Manifest:
    rec.pop(_SIZE, None)
    return rec


def _skipped(rec: dict[str, Any]) -> SkippedObject:
    return SkippedObject(ObjectRef(*rec["ref"]), rec["reason"])


def read_plan(directory: Path) -> RestorePlan:
    """The plan in ``directory``; its phases, what it left out and its cluster-scoped objects are read back
    from the files each time they are iterated."""
    with open(directory / PLAN_FILE) as fh:
        doc = json.load(fh)
    phases = [RestorePhase(p["name"], JsonLines([directory / f for f in p["files"]], int(p["objects"]), _ordered),
                           Wait(p["wait"]), p["tier"]) for p in doc["phases"]]
    cluster_scoped: JsonLines[Manifest] = JsonLines([directory / CLUSTER_FILE], int(doc["cluster_scoped"]),
                                                    _manifest)
    return RestorePlan(phases, JsonLines([directory / SKIPPED_FILE], int(doc["skipped"]), _skipped), [],
                       namespaces=tuple(doc["namespaces"]), cluster_scoped=cluster_scoped)


def write_plan(plan: RestorePlan, directory: Path) -> list[PhaseSummary]:
    """Spool a plan made in memory (:func:`~kubekeep.restore.plan.plan_restore`), for tests and small
    callers; return the phases' summaries."""
    os.chmod(directory, 0o700)
    layout: list[dict[str, Any]] = []
    namespaces: dict[str, None] = {}
    cluster_count = 0
    with _private(directory / CLUSTER_FILE) as cluster_file:
        for i, phase in enumerate(plan.phases):
            name = f"phase-{i:03d}.jsonl"
            with _private(directory / name) as fh:
                for obj in phase.objects:
                    fh.write(_dump({"match": obj.match, "reason": obj.reason, "tier": obj.tier,
                                    "notes": list(obj.notes), "manifest": obj.manifest}))
                    if obj.ref.namespace:
                        namespaces[obj.ref.namespace] = None
                    else:
                        cluster_file.write(_dump(obj.manifest))
                        cluster_count += 1
            layout.append({"name": phase.name, "wait": str(phase.wait), "tier": phase.tier, "files": [name],
                           "objects": len(phase.objects), "kinds": sorted({o.ref.kind for o in phase.objects})})
    with _private(directory / SKIPPED_FILE) as fh:
        for skipped in plan.skipped:
            _write_skipped(fh, skipped)
    with _private(directory / PLAN_FILE) as fh:
        json.dump({"phases": layout, "namespaces": list(namespaces), "skipped": len(plan.skipped),
                   "cluster_scoped": cluster_count}, fh)
    return [PhaseSummary(i, p["name"], p["wait"], p["tier"], p["objects"], tuple(p["kinds"]))
            for i, p in enumerate(layout)]
