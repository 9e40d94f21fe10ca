"""The migration plan against two real control planes of different versions (docs/testbed.md: v1.36.3 and
v1.33.13 with beta APIs): the drift both ways, CRDs, StorageClasses, quotas, real-world manifests, and a refused
plan. Converted objects are sent to the target as server-side dry runs: the API server accepts what the plan says
it will create."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubekeep.cluster import ApiError, Cluster
from kubekeep.migrate import (
    ClassResolution,
    MigrationOptions,
    MigrationPlan,
    MigrationRefusedError,
    Verdict,
    plan_restore_point,
    prepare,
)
from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import FilesystemStorage
from kubekeep.restore import PlanOptions, TransformChain
from kubekeep.restore.apply import served_by_cluster
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    manifest_stream,
    write_restore_point,
)
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import PROVISIONER, STORAGE_CLASS
from tests.plugins.paths import shared_dir

REAL_WORLD = shared_dir() / "fixtures" / "real-world" / "kubernetes-examples"
PASSWORD = "migrate-plan"


def _repo(path: Path) -> Repository:
    storage = FilesystemStorage(str(path))
    try:
        return Repository.open(storage, passphrase=PASSWORD)
    except Exception:  # noqa: BLE001 - first use: create it
        return Repository.init(storage, passphrase=PASSWORD, kdf=KdfParams.cheap(), create_location=True)


def _write_point(repo: Repository, objects: list[dict[str, Any]], *, app: str, cluster: str) -> str:
    """A restore point holding ``objects`` as a backup stores them (what the cluster served, status and all)."""
    now = datetime.now(UTC).isoformat()
    manifests = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(objects)}, tags=[MANIFESTS_TAG])
    point = f"{app}-{uuid.uuid4().hex[:8]}"
    namespaces = sorted({o["metadata"].get("namespace", "") for o in objects} - {""})
    write_restore_point(repo, RestorePointRecord(
        id=point, app=app, cluster=cluster, namespaces=namespaces, started_at=now, finished_at=now,
        status="succeeded", location=repo.storage.url, manifest_snapshot=manifests.snapshot_id,
        object_count=len(objects)))
    return point


def _plan(repo: Repository, target: Cluster, point: str, options: MigrationOptions | None = None) -> MigrationPlan:
    return plan_restore_point(repo, target, options, restore_point=point)


def _rows(plan: MigrationPlan) -> dict[str, Any]:
    return {r.source: r for r in plan.objects}


def _dry_run_converted(repo: Repository, target: Cluster, point: str, options: MigrationOptions | None = None) -> int:
    """Send every converted object to the target as a server-side dry run; return how many."""
    from kubekeep.restore.source import load_manifests
    from kubekeep.restorepoint import choose_restore_point

    _, record = choose_restore_point(repo, restore_point=point)
    prepared = prepare(load_manifests(repo, record), served_by_cluster(target, refresh=True), options)
    converted = [o for o in prepared.objects if o.ref.version != o.source_ref.version]
    for o in converted:
        target.create(o.target, dry_run=True)
    return len(converted)


@pytest.fixture
def clusters(two_clusters) -> Iterator[tuple[Cluster, Cluster]]:  # type: ignore[no-untyped-def]
    with two_clusters.first.connect() as new, two_clusters.second.connect() as old:
        yield new, old


def _ns(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _read(cluster: Cluster, created: dict[str, Any]) -> dict[str, Any]:
    md = created["metadata"]
    return cluster.get(created["apiVersion"], created["kind"], md["name"], md.get("namespace"))


# ------------------------------------------------------------------------------- drift, new -> old


def test_new_to_old_the_plan_lists_the_drift_and_the_older_server_accepts_the_conversions(
        clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    tag = uuid.uuid4().hex[:6]
    ns = _ns(new, "drift")
    made: list[dict[str, Any]] = []
    try:
        for obj in [
            {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttributesClass", "metadata": {"name": f"gold-{tag}"},
             "driverName": "hostpath.csi.kubekeep.io", "parameters": {"iops": "100"}},
            {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": f"gpu-{tag}"},
             "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.example.com"'}}]}},
            {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
             "metadata": {"name": "gpu", "namespace": ns},
             "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                 "deviceClassName": f"gpu-{tag}", "allocationMode": "ExactCount", "count": 1}}]}}}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
             "metadata": {"name": f"label-{tag}"},
             "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "Never",
                      "matchConstraints": {"namespaceSelector": {"matchLabels": {"kubekeep-test": "never"}},
                                           "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                              "operations": ["CREATE"], "resources": ["configmaps"]}]},
                      "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                          "expression": "Object{metadata: Object.metadata{labels: {'mutated': 'true'}}}"}}]}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
             "data": {"a": "1"}},
        ]:
            made.append(_read(new, new.create(obj)))
        objects = [new.get("v1", "Namespace", ns), *made]
        with _repo(tmp_path / "loc") as repo:
            point = _write_point(repo, objects, app="drift", cluster="new")
            plan = _plan(repo, old, point)
            rows = _rows(plan)
            expected = {
                f"VolumeAttributesClass.storage.k8s.io gold-{tag}": (Verdict.CONVERT, "storage.k8s.io/v1beta1"),
                f"DeviceClass.resource.k8s.io gpu-{tag}": (Verdict.CONVERT, "resource.k8s.io/v1beta2"),
                f"ResourceClaimTemplate.resource.k8s.io {ns}/gpu": (Verdict.CONVERT, "resource.k8s.io/v1beta2"),
                f"MutatingAdmissionPolicy.admissionregistration.k8s.io label-{tag}": (Verdict.NOT_CONVERTIBLE, None),
                f"ConfigMap {ns}/settings": (Verdict.SERVED, "v1"),
                f"Namespace {ns}": (Verdict.SERVED, "v1"),
            }
            assert {k: (rows[k].verdict, rows[k].target_api_version) for k in expected} == expected
            # the one object the older cluster cannot take refuses the plan, with the reason
            assert plan.refused and [i.subject for i in plan.blocking] == [
                f"MutatingAdmissionPolicy.admissionregistration.k8s.io label-{tag}"]
            assert "does not serve MutatingAdmissionPolicy" in plan.blocking[0].message
            assert plan.target_version == "v1.33.13" and plan.source_cluster == "new"
            # left out on purpose, the rest is a plan the older server accepts as it says
            options = MigrationOptions(exclude_kinds=("MutatingAdmissionPolicy",))
            assert not _plan(repo, old, point, options).refused
            old.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            assert _dry_run_converted(repo, old, point, options) == 3
    finally:
        for obj in made:
            md = obj["metadata"]
            new.delete(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        new.delete("v1", "Namespace", ns)
        old.delete("v1", "Namespace", ns)


# ------------------------------------------------------------------------------- drift, old -> new


def test_old_to_new_the_betas_become_v1_and_the_newer_server_accepts_them(clusters: tuple[Cluster, Cluster],
                                                                         tmp_path: Path) -> None:
    new, old = clusters
    tag = uuid.uuid4().hex[:6]
    ns = _ns(old, "betas")
    made: list[dict[str, Any]] = []
    try:
        for obj in [
            {"apiVersion": "storage.k8s.io/v1beta1", "kind": "VolumeAttributesClass",
             "metadata": {"name": f"silver-{tag}"}, "driverName": "hostpath.csi.kubekeep.io",
             "parameters": {"iops": "50"}},
            {"apiVersion": "resource.k8s.io/v1beta2", "kind": "DeviceClass", "metadata": {"name": f"fpga-{tag}"},
             "spec": {"selectors": [{"cel": {"expression": 'device.driver == "fpga.example.com"'}}]}},
            # v1beta1: the device request's fields inline (v1beta2 and v1 hold them under "exactly")
            {"apiVersion": "resource.k8s.io/v1beta1", "kind": "ResourceClaimTemplate",
             "metadata": {"name": "fpga", "namespace": ns},
             "spec": {"spec": {"devices": {"requests": [{"name": "fpga", "deviceClassName": f"fpga-{tag}",
                                                          "allocationMode": "ExactCount", "count": 2}]}}}},
        ]:
            made.append(_read(old, old.create(obj)))
        with _repo(tmp_path / "loc") as repo:
            point = _write_point(repo, [old.get("v1", "Namespace", ns), *made], app="betas", cluster="old")
            plan = _plan(repo, new, point)
            rows = _rows(plan)
            assert rows[f"VolumeAttributesClass.storage.k8s.io silver-{tag}"].target_api_version == "storage.k8s.io/v1"
            assert rows[f"DeviceClass.resource.k8s.io fpga-{tag}"].target_api_version == "resource.k8s.io/v1"
            rct = rows[f"ResourceClaimTemplate.resource.k8s.io {ns}/fpga"]
            assert (rct.verdict, rct.target_api_version) == (Verdict.CONVERT, "resource.k8s.io/v1")
            assert "-> exactly" in rct.note
            assert not plan.refused and plan.target_version == "v1.36.3"
            new.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            assert _dry_run_converted(repo, new, point) == 3
    finally:
        for obj in made:
            md = obj["metadata"]
            old.delete(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        new.delete("v1", "Namespace", ns)
        old.delete("v1", "Namespace", ns)


# ------------------------------------------------------------------------------- a backed-up app


def test_plan_of_a_backed_up_app_with_data_a_crd_storage_classes_and_a_quota(  # type: ignore[no-untyped-def]
        prefect_api: str, two_clusters, clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from flows.backup import backup

    new, old = clusters
    tag = uuid.uuid4().hex[:6]
    fast, standard = f"fast-{tag}", f"standard-{tag}"
    ns = f"shop-{tag}"
    params = {"tier": "gold"}
    new.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": fast},
                "provisioner": PROVISIONER, "parameters": params, "volumeBindingMode": "Immediate"})
    old.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": standard},
                "provisioner": PROVISIONER, "parameters": params, "volumeBindingMode": "Immediate"})
    try:
        sample_app.create(new, ns)
        for extra in [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "media", "namespace": ns},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": fast,
                      "resources": {"requests": {"storage": "2Gi"}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-lb", "namespace": ns},
             "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssd-only", "namespace": ns},
             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "ssd"}}, "template": {
                 "metadata": {"labels": {"app": "ssd"}},
                 "spec": {"nodeSelector": {"disktype": "ssd"}, "containers": [{"name": "c", "image": "x"}]}}}},
            {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
             "metadata": {"name": "gpu", "namespace": ns},
             "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                 "deviceClassName": "gpu.example.com"}}]}}}},
        ]:
            new.create(extra)
        new.wait_for("v1", "PersistentVolumeClaim", "media", lambda o: (o or {}).get("status", {}).get("phase")
                     == "Bound", namespace=ns, timeout=60)
        sample_app.fill_volume(sample_app.volume_path(new, ns, "uploads"), seed="plan", files=8)
        location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
        key = EncryptionKey(passphrase=PASSWORD, cheap_kdf=True)
        point = backup(app="shop", namespaces=[ns], location=location, encryption_key=key, init=True,
                       cluster=ClusterConnection(name="new", kubeconfig_path=str(two_clusters.first.kubeconfig)))
        # the target namespace exists there already, with a storage quota the migration's claims exceed
        old.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        old.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "storage", "namespace": ns},
                    "spec": {"hard": {"requests.storage": "3Gi"}}})

        with key.open_repository(location.storage()) as repo:
            plan = _plan(repo, old, point)
            rows = _rows(plan)
            # the CRD and its custom resources: brought from the restore point
            assert "coupons.demo.kubekeep.io" in plan.crds_from_restore_point or old.get_or_none(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition", "coupons.demo.kubekeep.io")
            assert rows[f"Coupon.demo.kubekeep.io {ns}/welcome"].verdict is Verdict.SERVED
            assert rows[f"ResourceClaimTemplate.resource.k8s.io {ns}/gpu"].target_api_version == \
                "resource.k8s.io/v1beta2"
            assert rows[f"ReplicaSet.apps {ns}/" + next(
                r.source.split("/")[-1] for r in plan.objects if r.source.startswith(f"ReplicaSet.apps {ns}/"))
            ].verdict is Verdict.LEFT_OUT
            # StorageClasses: the claims created without a class got the source's default, which the older
            # cluster has by name; fast comes with the restore point (the older cluster knows its provisioner)
            classes = {d.source: d for d in plan.storage_classes}
            assert classes[STORAGE_CLASS].resolution is ClassResolution.EXACT
            assert len(classes[STORAGE_CLASS].claims) == 2  # uploads and data-db-0 (also the template's claim)
            assert classes[fast].resolution is ClassResolution.BROUGHT
            # uploads 1Gi + data-db-0 1Gi + media 2Gi > 3Gi: refused before anything is written
            quota = [i for i in plan.blocking if i.subject == f"ResourceQuota {ns}/storage"]
            assert plan.refused and len(plan.blocking) == 1 and quota, plan.render_table()
            assert "need 4 GiB" in quota[0].message and "allows 3 GiB more" in quota[0].message
            warnings = {(i.topic.value, i.subject) for i in plan.warnings}
            assert ("load-balancer", f"Service {ns}/shop-lb") in warnings
            assert ("scheduling", f"Deployment.apps {ns}/ssd-only") in warnings
            assert plan.target_namespaces == [ns]

            # classes not brought: the plan refuses to guess, and suggests the class with the same provisioner
            # and parameters
            old.patch("v1", "ResourceQuota", "storage", {"spec": {"hard": {"requests.storage": "10Gi"}}},
                      namespace=ns)
            no_classes = MigrationOptions(exclude_kinds=("StorageClass",))
            refused = _plan(repo, old, point, no_classes)
            missing = {d.source: d for d in refused.storage_classes}[fast]
            assert missing.resolution is ClassResolution.MISSING and missing.suggestion == standard
            assert [i.subject for i in refused.blocking] == [f"StorageClass {fast}"]
            assert f"--storage-class-map {fast}={standard}" in str(refused.blocking[0].suggestion)
            # the explicit map wins
            mapped = _plan(repo, old, point, MigrationOptions(
                exclude_kinds=("StorageClass",), plan=PlanOptions(transforms=TransformChain.from_dict(
                    [{"type": "storage-class-map", "map": {fast: standard}}]))))
            assert not mapped.refused, mapped.render_table()
            assert {d.source: d for d in mapped.storage_classes}[fast].resolution is ClassResolution.MAPPED
            # nothing of the app was written to the older cluster by planning
            assert old.get_or_none("apps/v1", "Deployment", "web", ns) is None
            assert old.get_or_none("storage.k8s.io/v1", "StorageClass", fast) is None
    finally:
        new.delete("v1", "Namespace", ns)
        old.delete("v1", "Namespace", ns)
        new.delete("storage.k8s.io/v1", "StorageClass", fast)
        old.delete("storage.k8s.io/v1", "StorageClass", standard)


# ------------------------------------------------------------------------------- real-world manifests


def _real_world(prefix: str) -> list[dict[str, Any]]:
    files = sorted(REAL_WORLD.glob("*.yaml"))
    assert files, f"no real-world fixtures in {REAL_WORLD}"
    scoped = {"PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PodSecurityPolicy",
              "Namespace", "CustomResourceDefinition"}
    objects: list[dict[str, Any]] = []
    for i, path in enumerate(files):
        ns = f"{prefix}-{i:02d}"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(d.get("kind") not in scoped for d in docs):
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for doc in docs:
            doc.setdefault("metadata", {})
            if doc.get("kind") not in scoped:
                doc["metadata"]["namespace"] = ns
            objects.append(doc)
    return objects


@pytest.mark.skipif(not REAL_WORLD.is_dir() and os.environ.get("CI") != "true",
                    reason=f"real-world fixtures not found at {REAL_WORLD} (set KUBEKEEP_SHARED_DIR)")
def test_real_world_manifests_on_both_versions(clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    objects = _real_world(f"rw-{uuid.uuid4().hex[:5]}")
    with _repo(tmp_path / "loc") as repo:
        point = _write_point(repo, objects, app="legacy", cluster="old-datacentre")
        for target in (old, new):
            plan = _plan(repo, target, point)
            blocking = {(i.topic.value, i.subject) for i in plan.blocking}
            # PodSecurityPolicy has no successor; the examples' StorageClass "fast" names a provisioner
            # (k8s.io/minikube-hostpath) neither cluster has: refused, with the default class suggested
            assert blocking == {("api-version", "PodSecurityPolicy.policy restricted"),
                                ("api-version", "PodSecurityPolicy.policy privileged"),
                                ("storage-class", "StorageClass fast")}, plan.render_table()
            fast = {d.source: d for d in plan.storage_classes}["fast"]
            assert fast.suggestion == STORAGE_CLASS and fast.source_provisioner == "k8s.io/minikube-hostpath"
            rows = _rows(plan)
            pdb = next(r for r in plan.objects if r.source.startswith("PodDisruptionBudget.policy "))
            assert (pdb.stored_api_version, pdb.target_api_version) == ("policy/v1beta1", "policy/v1")
            static = next(d for d in plan.storage_classes if d.resolution is ClassResolution.STATIC)
            assert static.claims and not [i for i in plan.warnings if i.subject == '(class "")']
            assert any(i.topic.value == "ingress-class" for i in plan.warnings)  # no default IngressClass
            assert all(r.verdict is not Verdict.NOT_CONVERTIBLE for s, r in rows.items()
                       if not s.startswith("PodSecurityPolicy"))
            accepted = _plan(repo, target, point, MigrationOptions(
                exclude_kinds=("PodSecurityPolicy.policy",), plan=PlanOptions(transforms=TransformChain.from_dict(
                    [{"type": "storage-class-map", "map": {"fast": STORAGE_CLASS}}]))))
            assert not accepted.refused, accepted.render_table()
            assert accepted.to_dict()["counts"]["objects"]["excluded"] == 2


# ------------------------------------------------------------------------------- refused


def test_custom_resources_without_their_crd_refuse_the_plan_and_nothing_is_written(
        clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    ns = f"orphans-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
               {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": ns},
                "spec": {"size": 1}},
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": {}}]
    with _repo(tmp_path / "loc") as repo:
        point = _write_point(repo, objects, app="orphans", cluster="new")
        plan = _plan(repo, old, point)
        assert plan.refused and [(i.topic.value, i.subject) for i in plan.blocking] == [("crd", f"Widget.{group}")]
        assert "holds no CustomResourceDefinition" in plan.blocking[0].message
        with pytest.raises(MigrationRefusedError) as err:
            plan.raise_if_refused()
        assert f"Widget.{group}" in str(err.value)
        assert old.get_or_none("v1", "Namespace", ns) is None
        with pytest.raises(ApiError):
            old.resource_for(f"{group}/v1", "Widget")
