"""Which objects of a restore point a restore takes: one Selector type, and the single-claim filter."""

from __future__ import annotations

from kubekeep.restore import Selector
from kubekeep.restore.source import claim_wanted


def _pvc(namespace: str, name: str) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace}}


def _pv(name: str, claim_namespace: str, claim: str) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"claimRef": {"namespace": claim_namespace, "name": claim}}}


def test_pvcs_given_as_namespace_slash_name_select_that_claim_and_its_volume() -> None:
    # the CLI and the flow document --pvc/pvcs as namespace/name
    assert claim_wanted(_pvc("shop", "data"), ["shop/data"])
    assert claim_wanted(_pv("pv-1", "shop", "data"), ["shop/data"])
    assert not claim_wanted(_pvc("other", "data"), ["shop/data"])
    assert not claim_wanted(_pv("pv-2", "other", "data"), ["shop/data"])
    assert not claim_wanted({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "data",
                                                                                     "namespace": "shop"}},
                            ["shop/data"])
    # a bare name: that claim in any namespace
    assert claim_wanted(_pvc("other", "data"), ["data"])


def test_restore_selector_kinds_are_case_insensitive_names_are_patterns() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config", "namespace": "shop",
                                                                 "labels": {"tier": "web"}}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}
    assert Selector(kinds=("configmap",)).matches(cm)
    assert Selector(kinds=("Deployment.apps",)).matches(deploy) and not Selector(kinds=("Deployment.apps",)).matches(cm)
    assert Selector(names=("shop-*",)).matches(cm) and not Selector(names=("shop-*",)).matches(deploy)
    assert Selector(labels=Selector.parse_labels("tier=web")).matches(cm)
    assert not Selector(labels=Selector.parse_labels("tier=db")).matches(cm)
