"""CRDs that belong to an application are backed up without custom resources; custom-resource status on restore."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from flows.restore import restore
from kubekeep.cluster import Cluster, has_condition
from kubekeep.restorepoint import find_restore_point, read_manifests
from kubekeep.testbed.crds import crd_manifest


def _crd(group: str, kind: str, *, labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None, status: bool = False) -> dict[str, Any]:
    return crd_manifest(group, kind, spec_properties={"size": {"type": "integer"}}, status=status, labels=labels,
                        annotations=annotations)


@pytest.fixture
def crds(cluster: Cluster) -> Iterator[list[dict[str, Any]]]:
    made: list[dict[str, Any]] = []

    def create(manifest: dict[str, Any]) -> dict[str, Any]:
        cluster.create(manifest)
        made.append(manifest)
        cluster.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", manifest["metadata"]["name"],
                         lambda o: has_condition(o, "Established"), timeout=60, what="Established")
        return manifest

    yield create  # type: ignore[misc]
    for m in made:
        cluster.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", m["metadata"]["name"])


def _blocks(prefect_api: str, test_cluster, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"location": LocationProfile(kind="filesystem", path=str(tmp_path / "loc")),
            "encryption_key": EncryptionKey(passphrase="crd-pw", cheap_kdf=True),
            "cluster": ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig))}


def test_crds_of_the_app_are_backed_up_without_custom_resources(prefect_api: str, test_cluster, crds,  # type: ignore[no-untyped-def]
                                                                 cluster: Cluster, namespace: str,
                                                                 tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    app_label = f"argo-{suffix}"
    part_of = crds(_crd(f"part{suffix}.example.io", "Application", labels={"app.kubernetes.io/part-of": app_label}))
    helm = crds(_crd(f"helm{suffix}.example.io", "Rollout", annotations={
        "meta.helm.sh/release-name": "argo", "meta.helm.sh/release-namespace": namespace}))
    asked = crds(_crd(f"asked{suffix}.example.io", "Widget"))
    other = crds(_crd(f"other{suffix}.example.io", "Gizmo", labels={"app.kubernetes.io/part-of": "someone-else"}))
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "argocd-cm", "namespace": namespace, "labels": {"app.kubernetes.io/part-of": app_label},
        "annotations": {"meta.helm.sh/release-name": "argo", "meta.helm.sh/release-namespace": namespace}}})
    blocks = _blocks(prefect_api, test_cluster, tmp_path)
    rp_id = backup(app="argo", namespaces=[namespace], include_crds=[f"asked{suffix}.example.io"], init=True, **blocks)

    with blocks["encryption_key"].open_repository(blocks["location"].storage()) as repo:
        _, record = find_restore_point(repo, rp_id)
        stored = {o["metadata"]["name"] for o, _ in read_manifests(repo, record.manifest_snapshot)
                  if o.get("kind") == "CustomResourceDefinition"}
    names = {m["metadata"]["name"] for m in (part_of, helm, asked)}
    assert names <= stored and other["metadata"]["name"] not in stored
    assert "part-of" in record.crds[part_of["metadata"]["name"]][0]
    assert f"Helm release {namespace}/argo" in record.crds[helm["metadata"]["name"]][0]
    assert "include_crds" in record.crds[asked["metadata"]["name"]][0]
    assert other["metadata"]["name"] not in record.crds


def test_custom_resource_status_is_reported_or_restored(prefect_api: str, test_cluster, crds,  # type: ignore[no-untyped-def]
                                                        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    group = f"status{uuid.uuid4().hex[:6]}.example.io"
    crds(_crd(group, "Gadget", status=True))
    cluster.resources(refresh=True)
    cluster.create({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": namespace},
                    "spec": {"size": 3}})
    cluster.patch(f"{group}/v1", "Gadget", "g", {"status": {"state": "Provisioned"}}, namespace=namespace,
                  subresource="status")
    blocks = _blocks(prefect_api, test_cluster, tmp_path)
    rp_id = backup(app="gadgets", namespaces=[namespace], init=True, **blocks)
    plain, kept = f"{namespace[:50]}-st0", f"{namespace[:50]}-st1"
    try:
        report = restore(restore_point=rp_id, namespace_map={namespace: plain}, **blocks)
        gadget = next(o for o in report["outcomes"] if o["kind"] == "Gadget")
        assert gadget["action"] == "created" and "status not restored" in gadget["reason"]
        assert f"Gadget.{group}" in gadget["reason"]
        assert not cluster.get(f"{group}/v1", "Gadget", "g", plain).get("status")

        report = restore(restore_point=rp_id, namespace_map={namespace: kept}, restore_status=[f"Gadget.{group}"],
                         **blocks)
        gadget = next(o for o in report["outcomes"] if o["kind"] == "Gadget")
        assert "status restored through the status subresource" in gadget["reason"]
        assert cluster.get(f"{group}/v1", "Gadget", "g", kept)["status"] == {"state": "Provisioned"}
    finally:
        cluster.delete("v1", "Namespace", plain)
        cluster.delete("v1", "Namespace", kept)
