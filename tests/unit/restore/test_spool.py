"""The spooled plan (planned namespace by namespace) is the plan made in memory, and holds far less."""

from __future__ import annotations

import gc
import os
import shutil
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubekeep.restore import AFTER_ANNOTATION, PlanOptions, TierPolicy, TransformChain, plan_restore
from kubekeep.restore.errors import TransformError
from kubekeep.restore.spool import read_plan, spool_dir, spool_plan

from .helpers import MODERN_SERVED, deployment, load_fixture_manifests, obj


def _options() -> PlanOptions:
    return PlanOptions(
        transforms=TransformChain.from_dict([{"type": "namespace-map", "map": {"cockroachdb-cockroachdb-statefulset":
                                                                            "crdb"}}]),
        tier_policy=TierPolicy.from_dict({"tiers": {"StatefulSet/cockroachdb": 0},
                                          "after": {"Deployment/tf-serving": ["crdb/StatefulSet/cockroachdb"]}}))


def _manifests() -> list[dict[str, Any]]:
    manifests = load_fixture_manifests()
    crd = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com", None, spec={
        "group": "example.com", "names": {"kind": "Widget"}, "versions": [{"name": "v1", "served": True}]})
    manifests += [crd, obj("example.com/v1", "Widget", "w", "other"), obj("v1", "ConfigMap", "c", "other"),
                  deployment("web", "other", annotations={AFTER_ANNOTATION: "db"}),
                  obj("apps/v1", "StatefulSet", "db", "other", spec={})]
    for n, m in enumerate(manifests):
        m["metadata"].update(uid=f"u{n}", resourceVersion=str(n))
    return manifests


def _shape(phases: Any) -> list[tuple[str, str, int | None, list[str], list[tuple[str, str, str]]]]:
    """Each phase: name, wait, tier, the order of its priority entries, and its objects (as a set)."""
    out = []
    for p in phases:
        matches: list[str] = []
        for o in p.objects:
            if not matches or matches[-1] != o.match:
                matches.append(o.match)
        out.append((p.name, str(p.wait), p.tier, matches,
                    sorted((o.ref.kind, o.ref.namespace, o.ref.name) for o in p.objects)))
    return out


def test_the_spooled_plan_is_the_plan_made_in_memory(tmp_path: Path) -> None:
    in_memory = plan_restore(_manifests(), served=MODERN_SERVED, options=_options())
    directory = spool_dir()
    try:
        spooled = spool_plan(iter(_manifests()), directory, served=MODERN_SERVED, options=_options())
        plan = read_plan(directory)
        assert _shape(plan.phases) == _shape(in_memory.phases)
        assert [p.objects for p in spooled.phases] == [len(p.objects) for p in in_memory.phases]
        assert sorted(str(s.ref) for s in plan.skipped) == sorted(str(s.ref) for s in in_memory.skipped)
        assert spooled.skipped == len(in_memory.skipped) and spooled.converted == len(in_memory.converted)
        # the same manifests, sanitized, converted, transformed, with the same notes
        memory_objects = {o.ref: (o.manifest, o.notes, o.tier) for p in in_memory.phases for o in p.objects}
        assert {o.ref: (o.manifest, o.notes, o.tier) for p in plan.phases for o in p.objects} == memory_objects
        assert sorted(plan.target_namespaces()) == sorted(in_memory.target_namespaces())
        assert sorted(m["metadata"]["name"] for m in plan.cluster_manifests()) == sorted(
            m["metadata"]["name"] for m in in_memory.cluster_manifests())
        # decrypted manifests: a private directory of private files; the raw stream is gone once planned
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        files = list(directory.iterdir())
        assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert not (directory / "manifests.jsonl").exists()
        # a phase reads its objects again each time it is iterated
        assert [o.ref for o in plan.phases[0].objects] == [o.ref for o in plan.phases[0].objects]
    finally:
        shutil.rmtree(directory)


def test_transform_failures_of_every_namespace_are_reported_together() -> None:
    bad = TransformChain.from_dict([{"type": "json-patch", "patch": [{"op": "replace", "path": "/data/missing",
                                                                      "value": "x"}]}])
    directory = spool_dir()
    try:
        with pytest.raises(TransformError) as err:
            spool_plan(iter([obj("v1", "ConfigMap", "a", "one"), obj("v1", "ConfigMap", "b", "two")]), directory,
                       options=PlanOptions(transforms=bad))
        assert len(err.value.failures) == 2
    finally:
        shutil.rmtree(directory)


def _stream(namespaces: int, per_namespace: int) -> Iterator[dict[str, Any]]:
    # objects listed kind by kind across namespaces, as a backup stores them
    for kind in range(4):
        for n in range(namespaces):
            for i in range(kind, per_namespace, 4):
                yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                    "name": f"cm-{i:04d}", "namespace": f"ns-{n:04d}", "uid": f"{n}-{i}", "resourceVersion": "1",
                    "labels": {"app": "bench", "shard": str(i % 7)}},
                    "data": {f"k{j}": f"ns-{n}-{i}-{j}" * 16 for j in range(8)}}


def _peak_while_planning(namespaces: int) -> int:
    directory = spool_dir()
    try:
        gc.collect()
        tracemalloc.start()
        spool_plan(_stream(namespaces, 40), directory)
        read_plan(directory)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        shutil.rmtree(directory)


def test_planning_memory_does_not_grow_with_the_number_of_namespaces() -> None:
    small, large = _peak_while_planning(10), _peak_while_planning(50)
    # 5x the objects (1,600 more ConfigMaps of ~1.5 KiB: ~4 MiB as JSON, several times that as dicts); one
    # namespace at a time, plus per object an 8-byte offset
    assert large - small < 1 * 2**20, (small, large)
