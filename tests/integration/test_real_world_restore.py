"""Unmodified manifests from public projects, as a backup from an older cluster would hold them, restored
onto the test bed: convertible API drift is converted, PodSecurityPolicy (no successor) is reported."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.restore import RestoreFailed, restore
from kubekeep.cluster import Cluster
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    manifest_stream,
    write_restore_point,
)
from tests.plugins.paths import shared_dir

FIXTURES = shared_dir() / "fixtures" / "real-world" / "kubernetes-examples"
CLUSTER_SCOPED = {"PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PodSecurityPolicy",
                  "Namespace", "CustomResourceDefinition"}


def _fixture_objects(prefix: str) -> list[dict[str, Any]]:
    """Every document of every fixture file; a file's namespaced objects go into a namespace of their own
    (two example files reuse the same object names)."""
    files = sorted(FIXTURES.glob("*.yaml"))
    assert files, f"no real-world fixtures in {FIXTURES} (shared/ belongs beside the checkout; KUBEKEEP_SHARED_DIR)"
    objects: list[dict[str, Any]] = []
    for i, path in enumerate(files):
        ns = f"{prefix}-{i:02d}"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(d.get("kind") not in CLUSTER_SCOPED for d in docs):
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for doc in docs:
            doc.setdefault("metadata", {})
            if doc.get("kind") not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = ns
            objects.append(doc)
    return objects


# CI always has shared/ beside the checkout: there a missing fixture directory fails instead of skipping
@pytest.mark.skipif(not FIXTURES.is_dir() and os.environ.get("CI") != "true",
                    reason=f"real-world fixtures not found at {FIXTURES} (set KUBEKEEP_SHARED_DIR)")
def test_real_world_manifests_restore_with_api_drift(prefect_api: str, test_cluster, cluster: Cluster,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    prefix = f"rw-{uuid.uuid4().hex[:5]}"
    objects = _fixture_objects(prefix)
    location = LocationProfile(kind="filesystem", path=str(tmp_path / "loc"))
    key = EncryptionKey(passphrase="rw", cheap_kdf=True)
    now = datetime.now(UTC)
    with key.open_repository(location.storage(), create=True) as repo:
        manifests = repo.backup(streams={MANIFESTS_STREAM: manifest_stream(objects)}, tags=[MANIFESTS_TAG])
        rp_id = f"legacy-{prefix}"
        write_restore_point(repo, RestorePointRecord(
            id=rp_id, app="legacy", cluster="old", namespaces=sorted({o["metadata"].get("namespace", "")
                                                                      for o in objects} - {""}),
            started_at=now.isoformat(), finished_at=now.isoformat(), status="succeeded",
            location=location.describe(), manifest_snapshot=manifests.snapshot_id, object_count=len(objects)))

    cluster_scoped = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects
                      if o["kind"] in CLUSTER_SCOPED and o["kind"] != "Namespace"]
    try:
        with pytest.raises(RestoreFailed) as err:
            restore(location=location, encryption_key=key,
                    cluster=ClusterConnection(kubeconfig_path=str(test_cluster.kubeconfig)), restore_point=rp_id,
                    wait=False)
        message = str(err.value)
        # the only problems: the two PodSecurityPolicies, whose API has no successor
        assert message.count("not-convertible: PodSecurityPolicy.policy") == 2, message
        assert "failed:" not in message and "conflict" not in message, message

        by_kind: dict[str, list[dict[str, Any]]] = {}
        for o in objects:
            by_kind.setdefault(o["kind"], []).append(o)
        pdb = by_kind["PodDisruptionBudget"][0]
        converted = cluster.get("policy/v1", "PodDisruptionBudget", pdb["metadata"]["name"],
                                pdb["metadata"]["namespace"])
        assert converted["apiVersion"] == "policy/v1"
        for kind, api_version in [("StatefulSet", "apps/v1"), ("ReplicationController", "v1"), ("Service", "v1"),
                                  ("Deployment", "apps/v1"), ("Ingress", "networking.k8s.io/v1"),
                                  ("RoleBinding", "rbac.authorization.k8s.io/v1"),
                                  ("PersistentVolumeClaim", "v1"), ("ServiceAccount", "v1")]:
            for o in by_kind[kind]:
                assert cluster.get_or_none(api_version, kind, o["metadata"]["name"], o["metadata"]["namespace"]), \
                    f"{kind} {o['metadata']['namespace']}/{o['metadata']['name']} was not restored"
        for o in by_kind["ClusterRole"] + by_kind["PersistentVolume"]:
            assert cluster.get_or_none(o["apiVersion"], o["kind"], o["metadata"]["name"])
    finally:
        for o in objects:
            if o["kind"] == "Namespace":
                cluster.delete("v1", "Namespace", o["metadata"]["name"])
        for api_version, kind, name in cluster_scoped:
            if kind != "PodSecurityPolicy":
                cluster.delete(api_version, kind, name)
