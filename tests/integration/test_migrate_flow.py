"""The migrate flow end to end on two real control planes (v1.36.3 and v1.33.13 with beta APIs), the real
Prefect API and a real repository: plan, pre-seed, cutover, proof, downtime in the catalog, rollback; a
refused plan writes nothing. docs/migration.md."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.migrate import migrate
from kubekeep.backup.quiesce import ORIGINAL_REPLICAS_ANNOTATION
from kubekeep.catalog import list_restore_points, list_restores, list_signals
from kubekeep.cluster import ApiError, Cluster
from kubekeep.migrate import MIGRATION_ANNOTATION, ClassResolution, MigrationPlan, MigrationRefusedError, Verdict
from kubekeep.testbed import sample_app
from kubekeep.testbed.controlplane import PROVISIONER
from tasks.parameters import MigrateAction
from tests.plugins.controlplane import DERIVED_BY_THE_CONTROL_PLANE

#: what a scale-down changes besides the workloads themselves (controllers react to it)
MOVED_BY_SCALE_DOWN = {"Deployment", "StatefulSet", "ReplicaSet", "Pod", "Event", "Endpoints", "EndpointSlice",
                       "Lease", "ControllerRevision"}


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _d, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    """resourceVersion of every object in ``namespace`` (and of the namespace), but those the control plane
    derives on its own."""
    out = {"Namespace": cluster.get("v1", "Namespace", namespace)["metadata"]["resourceVersion"]}
    for r in cluster.preferred_resources(refresh=True):
        if r.namespaced and "list" in r.verbs:
            try:
                if r.kind in DERIVED_BY_THE_CONTROL_PLANE:
                    continue
                for o in cluster.list_pages(r, namespace=namespace):
                    out[f"{r.kind}.{r.group}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
            except ApiError:
                continue
    return out


def _workload_specs(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    out = {}
    for kind in ("Deployment", "StatefulSet"):
        for o in cluster.list_pages(cluster.resource_for("apps/v1", kind), namespace=namespace):
            spec = dict(o["spec"])
            spec.pop("replicas", None)
            out[f"{kind}/{o['metadata']['name']}"] = spec
    return out


@pytest.fixture
def clusters(two_clusters) -> Iterator[tuple[Cluster, Cluster]]:  # type: ignore[no-untyped-def]
    with two_clusters.first.connect() as new, two_clusters.second.connect() as old:
        yield new, old


def _app(cluster: Cluster, ns: str, fast: str, dra_version: str) -> dict[str, dict[str, str]]:
    """The sample app (CRD and custom resources, two claims with data), a claim of class ``fast``, and a
    ResourceClaimTemplate of ``dra_version`` (the other cluster serves another version of it)."""
    sample_app.create(cluster, ns)
    request: dict[str, Any] = {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}
    if dra_version == "resource.k8s.io/v1beta1":
        request = {"name": "gpu", "deviceClassName": "gpu.example.com"}
    for extra in [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "media", "namespace": ns},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": fast,
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": dra_version, "kind": "ResourceClaimTemplate", "metadata": {"name": "gpu", "namespace": ns},
         "spec": {"spec": {"devices": {"requests": [request]}}}},
    ]:
        cluster.create(extra)
    cluster.wait_for("v1", "PersistentVolumeClaim", "media", lambda o: (o or {}).get("status", {}).get("phase")
                     == "Bound", namespace=ns, timeout=60)
    return {pvc: sample_app.fill_volume(sample_app.volume_path(cluster, ns, pvc), seed=f"m/{ns}/{pvc}")
            for pvc in ("uploads", "data-db-0", "media")}


def _class(cluster: Cluster, name: str) -> None:
    """A class of the test bed's provisioner with parameters the default class lacks (the plan suggests the
    target's class of the same provisioner and parameters)."""
    cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                    "provisioner": PROVISIONER, "parameters": {"tier": "gold"}, "reclaimPolicy": "Delete",
                    "volumeBindingMode": "Immediate"})


def _migrate_and_prove(source: Cluster, target: Cluster, source_conn: ClusterConnection,
                       target_conn: ClusterConnection, tmp_path: Path, dra_version: str,
                       converted_to: str) -> None:
    tag = uuid.uuid4().hex[:6]
    ns, fast, standard = f"mig-{tag}", f"fast-{tag}", f"standard-{tag}"
    _class(source, fast)
    _class(target, standard)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="migrate-pw", cheap_kdf=True)
    common: dict[str, Any] = {"app": "shop", "namespaces": [ns], "source_cluster": source_conn,
                              "target_cluster": target_conn, "location": location, "encryption_key": key,
                              "exclude_kinds": ["StorageClass"]}
    try:
        data = _app(source, ns, fast, dra_version)

        # the plan lists the drift and the missing class, and refuses to guess before anything changes
        with pytest.raises(MigrationRefusedError) as refused:
            migrate(action=MigrateAction.RUN, **common)
        plan = refused.value.plan
        missing = {d.source: d for d in plan.storage_classes}[fast]
        assert missing.resolution is ClassResolution.MISSING and missing.suggestion == standard
        assert [i.subject for i in plan.blocking] == [f"StorageClass {fast}"]
        assert target.get_or_none("v1", "Namespace", ns) is None
        assert not (tmp_path / "loc").exists()  # not even a backup was taken

        common["storage_class_map"] = {fast: standard}
        plan = MigrationPlan.from_dict(migrate(action=MigrateAction.PLAN, **common))
        rows = {r.source: r for r in plan.objects}
        rct = rows[f"ResourceClaimTemplate.resource.k8s.io {ns}/gpu"]
        assert (rct.verdict, rct.target_api_version) == (Verdict.CONVERT, converted_to)
        assert "coupons.demo.kubekeep.io" in plan.crds_from_restore_point or target.get_or_none(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "coupons.demo.kubekeep.io")
        assert not plan.refused and target.get_or_none("v1", "Namespace", ns) is None

        before, specs = _versions(source, ns), _workload_specs(source, ns)
        result = migrate(action=MigrateAction.RUN, init=True, pre_seed_rounds=2, **common)

        # the target: every object, converted where needed, annotated, running; data equal to the source's
        assert result["report"]["failed"] is False
        web = target.get("apps/v1", "Deployment", "web", ns)
        assert web["spec"]["replicas"] == 2 and web["metadata"]["annotations"][MIGRATION_ANNOTATION] == "shop"
        assert ORIGINAL_REPLICAS_ANNOTATION not in (web["metadata"].get("annotations") or {})
        assert target.get("demo.kubekeep.io/v1", "Coupon", "welcome", ns)
        assert target.get(converted_to, "ResourceClaimTemplate", "gpu", ns)
        assert target.get("v1", "PersistentVolumeClaim", "media", ns)["spec"]["storageClassName"] == standard
        assert target.get_or_none("storage.k8s.io/v1", "StorageClass", fast) is None  # excluded: not restored
        for pvc, digests in data.items():
            assert _digests(sample_app.volume_path(target, ns, pvc)) == digests, pvc
        assert {v["pvc"]: v["equal"] for v in result["volumes"]} == {f"{ns}/{p}": True for p in data}
        # the cutover moved only the delta: nothing changed after the pre-seed, so nothing was written
        cutover = {v["name"]: v for v in result["report"]["volumes"]}
        assert {v["method"] for v in cutover.values()} == {"incremental-sync"}
        assert sum(v["bytes"] for v in cutover.values()) == 0, cutover
        # the downtime: in the result and in the catalog's restores table
        assert result["downtime"]["seconds"] > 0
        with key.catalog(location, cache_dir=tmp_path / "cache") as catalog:
            rows_ = [r for r in list_restores(catalog) if r.id == result["restore_id"]]
        assert rows_ and rows_[0].downtime is not None
        assert rows_[0].downtime.seconds == pytest.approx(result["downtime"]["seconds"])
        assert [s.name for s in rows_[0].downtime.stages] == ["final-backup", "restore"]
        # the pre-seed backups are backup flow runs of their own; the final one runs inside the migrate run (a
        # subflow's end waits for its heartbeat thread, up to 1 s on the downtime path)
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["backup"])), limit=200)
        assert len([r for r in runs if r.parameters.get("namespaces") == [ns]]) == 2
        # the cutover synced the pre-seeded claims while the objects before them were sent (not after them)
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        with get_client(sync_client=True) as client:
            mine = [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["migrate"])),
                                                     limit=200)
                    if r.parameters.get("namespaces") == [ns] and r.parameters.get("action") == "run"
                    and r.state is not None and r.state.is_completed()]
            assert len(mine) == 1, [(r.name, r.state) for r in mine]
            wanted = f"syncing {len(data)} pre-seeded claim(s) while the objects are restored"
            deadline = time.monotonic() + 20
            while True:  # the run's logs reach the API in batches, shortly after the run
                logs = [e.message for e in
                        client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[mine[0].id])))]
                if wanted in logs or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert wanted in logs, logs[-20:]
        # the final backup's catalog rows and score were written after the cutover, off the downtime path
        with key.catalog(location, cache_dir=tmp_path / "cache-2") as catalog:
            final = result["restore_point_id"]
            assert final in {p.id for p in list_restore_points(catalog)}
            assert [s.restore_point_id for s in list_signals(catalog, restore_point_ids=[final], volumes=False)]

        # the source: untouched except for the scale-down
        after = _versions(source, ns)
        changed = {k for k in before if after.get(k) != before[k] and k.split(".")[0] not in MOVED_BY_SCALE_DOWN}
        assert not changed, changed
        assert _workload_specs(source, ns) == specs
        for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
            obj = source.get("apps/v1", kind, name, ns)
            assert obj["spec"]["replicas"] == 0 and ORIGINAL_REPLICAS_ANNOTATION in obj["metadata"]["annotations"]

        # rollback: the source runs again
        back = migrate(action=MigrateAction.ROLLBACK, **common)
        assert sorted(back["unquiesced"]) == [f"Deployment {ns}/web", f"StatefulSet {ns}/db"]
        assert source.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2
        assert source.get("apps/v1", "StatefulSet", "db", ns)["spec"]["replicas"] == 1
    finally:
        for cluster in (source, target):
            for kind, name in (("Namespace", ns),):
                with contextlib.suppress(ApiError):
                    cluster.delete("v1", kind, name)
        for cluster, name in ((source, fast), (target, standard)):
            with contextlib.suppress(ApiError):
                cluster.delete("storage.k8s.io/v1", "StorageClass", name)


def _conns(two_clusters) -> tuple[ClusterConnection, ClusterConnection]:  # type: ignore[no-untyped-def]
    return (ClusterConnection(name="new", kubeconfig_path=str(two_clusters.first.kubeconfig)),
            ClusterConnection(name="old", kubeconfig_path=str(two_clusters.second.kubeconfig)))


def test_migrate_new_to_old_plan_preseed_cutover_proof_downtime_rollback(  # type: ignore[no-untyped-def]
        prefect_api: str, two_clusters, clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    new_conn, old_conn = _conns(two_clusters)
    _migrate_and_prove(new, old, new_conn, old_conn, tmp_path, "resource.k8s.io/v1", "resource.k8s.io/v1beta2")


def test_migrate_old_to_new(  # type: ignore[no-untyped-def]
        prefect_api: str, two_clusters, clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    new_conn, old_conn = _conns(two_clusters)
    _migrate_and_prove(old, new, old_conn, new_conn, tmp_path, "resource.k8s.io/v1beta1", "resource.k8s.io/v1")


def test_a_refused_plan_missing_crd_stops_before_any_write(  # type: ignore[no-untyped-def]
        prefect_api: str, two_clusters, clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    new, old = clusters
    new_conn, old_conn = _conns(two_clusters)
    ns = f"mig-crd-{uuid.uuid4().hex[:6]}"
    try:
        old.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "coupons.demo.kubekeep.io")
        old.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", "coupons.demo.kubekeep.io",
                     lambda o: o is None, timeout=60, what="CRD gone")
    except ApiError:
        pass
    try:
        sample_app.create(new, ns)
        before = _versions(new, ns)
        with pytest.raises(MigrationRefusedError, match="nothing was written"):
            migrate(app="shop", namespaces=[ns], source_cluster=new_conn, target_cluster=old_conn,
                    location=LocationProfile(kind="filesystem", path=str(tmp_path / "loc")),
                    encryption_key=EncryptionKey(passphrase="pw", cheap_kdf=True), bring_crds=False, init=True)
        assert old.get_or_none("v1", "Namespace", ns) is None
        assert old.get_or_none("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                               "coupons.demo.kubekeep.io") is None
        assert not (tmp_path / "loc").exists()
        assert _versions(new, ns) == before  # the source was not quiesced either
    finally:
        new.delete("v1", "Namespace", ns)
