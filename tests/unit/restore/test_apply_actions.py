"""Per-kind restore actions: the registry and the rules that need no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from kubekeep.restore import ObjectRef, RestorePlan
from kubekeep.restore.actions import (
    DEFAULT_ACTIONS,
    ConfigMapAction,
    CustomResourceDefinitionAction,
    NamespaceAction,
    PersistentVolumeAction,
    PersistentVolumeClaimAction,
    RestoreContext,
    RestoreItem,
    SecretAction,
    ServiceAccountAction,
    actions_for,
)
from kubekeep.restore.policy import ConflictPolicy, RestorePolicy
from kubekeep.restore.report import Action, RestoreReport


def _ctx(policy: RestorePolicy | None = None) -> RestoreContext:
    # these rules decide from the object and the policy alone; no cluster is reached
    policy = policy or RestorePolicy()
    return RestoreContext(None, RestorePlan([], [], []), policy, dry_run=True,  # type: ignore[arg-type]
                          report=RestoreReport(dry_run=True))


def _item(kind: str, name: str, existing: dict[str, Any] | None, policy: ConflictPolicy, group: str = "",
          manifest: dict[str, Any] | None = None) -> RestoreItem:
    ref = ObjectRef(group, kind, "" if kind in ("Namespace", "PersistentVolume", "CustomResourceDefinition")
                    else "shop", name, "v1")
    return RestoreItem(ref, manifest or {"kind": kind, "metadata": {"name": name}}, existing, policy)


def test_registry_matches_group_kinds() -> None:
    def names(group: str, kind: str) -> list[str]:
        return [a.name for a in actions_for(ObjectRef(group, kind, "ns", "x", "v1"))]

    assert names("", "PersistentVolumeClaim") == ["persistentvolumeclaim"]
    assert names("apps", "StatefulSet") == names("extensions", "StatefulSet") == ["statefulset"]
    assert names("apiextensions.k8s.io", "CustomResourceDefinition") == ["crd"]
    assert names("example.com", "Service") == [] and names("", "Pod") == []
    assert len({a.name for a in DEFAULT_ACTIONS}) == len(DEFAULT_ACTIONS)


@pytest.mark.parametrize("policy", [ConflictPolicy.SKIP, ConflictPolicy.RECREATE])
def test_default_service_account_is_kept(policy: ConflictPolicy) -> None:
    result = ServiceAccountAction().execute(_item("ServiceAccount", "default", {"metadata": {}}, policy), _ctx())
    assert result.finish is Action.SKIPPED and "ServiceAccount controller" in result.reason


def test_default_service_account_may_be_updated_or_created() -> None:
    action = ServiceAccountAction()
    assert action.execute(_item("ServiceAccount", "default", {}, ConflictPolicy.UPDATE), _ctx()).finish is None
    assert action.execute(_item("ServiceAccount", "default", None, ConflictPolicy.SKIP), _ctx()).finish is None
    assert action.execute(_item("ServiceAccount", "app", {}, ConflictPolicy.RECREATE), _ctx()).finish is None


def test_root_ca_config_map_is_never_restored() -> None:
    result = ConfigMapAction().execute(_item("ConfigMap", "kube-root-ca.crt", None, ConflictPolicy.UPDATE), _ctx())
    assert result.finish is Action.SKIPPED
    assert ConfigMapAction().execute(_item("ConfigMap", "app", None, ConflictPolicy.UPDATE), _ctx()).finish is None


BOUND = {"spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}


def test_claims_holding_data_are_not_recreated_unless_asked() -> None:
    action = PersistentVolumeClaimAction()
    result = action.execute(_item("PersistentVolumeClaim", "data", BOUND, ConflictPolicy.RECREATE), _ctx())
    assert result.finish is None and result.policy is ConflictPolicy.SKIP
    assert "pv-1" in result.reason and "recreate_pvcs" in result.reason
    forced = action.execute(_item("PersistentVolumeClaim", "data", BOUND, ConflictPolicy.RECREATE),
                            _ctx(RestorePolicy(recreate_pvcs=True)))
    assert forced.policy is None
    pending = {"spec": {}, "status": {"phase": "Pending"}}
    assert action.execute(_item("PersistentVolumeClaim", "d", pending, ConflictPolicy.RECREATE), _ctx()).policy is None
    assert action.execute(_item("PersistentVolumeClaim", "d", BOUND, ConflictPolicy.UPDATE), _ctx()).policy is None


def test_bound_volumes_are_not_recreated_unless_asked() -> None:
    result = PersistentVolumeAction().execute(
        _item("PersistentVolume", "pv-1", {"status": {"phase": "Bound"}}, ConflictPolicy.RECREATE), _ctx())
    assert result.policy is ConflictPolicy.SKIP and "holds data" in result.reason


def test_namespaces_and_crds_are_updated_instead_of_recreated() -> None:
    ns = NamespaceAction().execute(_item("Namespace", "shop", {"status": {"phase": "Active"}},
                                         ConflictPolicy.RECREATE), _ctx())
    assert ns.policy is ConflictPolicy.UPDATE and "deletes everything in it" in ns.reason
    crd = CustomResourceDefinitionAction().execute(
        _item("CustomResourceDefinition", "a.example.com", {}, ConflictPolicy.RECREATE, "apiextensions.k8s.io"),
        _ctx())
    assert crd.policy is ConflictPolicy.UPDATE


def test_terminating_namespace_fails() -> None:
    result = NamespaceAction().execute(_item("Namespace", "shop", {"status": {"phase": "Terminating"}},
                                             ConflictPolicy.SKIP), _ctx())
    assert result.finish is Action.NAMESPACE_TERMINATING and "shop is Terminating" in result.reason


def test_service_account_token_secrets_lose_the_source_token() -> None:
    manifest = {"kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": "t", "annotations": {"kubernetes.io/service-account.name": "app"}},
                "data": {"token": "c291cmNl", "ca.crt": "Y2E=", "namespace": "c2hvcA==", "extra": "eA=="}}
    item = _item("Secret", "t", None, ConflictPolicy.SKIP, manifest=manifest)
    result = SecretAction().execute(item, _ctx())
    assert result.manifest is not None and result.manifest["data"] == {"extra": "eA=="}
    assert manifest["data"]["token"] == "c291cmNl"  # the input is not modified
    opaque = _item("Secret", "o", None, ConflictPolicy.SKIP, manifest={"kind": "Secret", "type": "Opaque"})
    assert SecretAction().execute(opaque, _ctx()).manifest is None
