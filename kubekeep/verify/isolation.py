"""How a sandbox restore is cut off from the rest of the cluster and the world (docs/verification.md).

Two parts, one home:

- :func:`isolation_policy`: the NetworkPolicy the sandbox creates in each of its namespaces before
  anything is restored: it selects every pod and denies all ingress and egress, except traffic among
  the sandbox's own namespaces and (``allow_dns``) name lookups in kube-system.
- :func:`isolation_chain`: transform steps (kubekeep.restore.transforms) applied to every restored object:
  the namespace map into the sandbox, objects left out (:data:`DROPPED_KINDS`), NodePort and LoadBalancer
  Services turned into ClusterIP, CronJobs suspended, replicas capped (an option), claims unbound from the
  source's volumes, and the sandbox label on every object (how teardown finds cluster-scoped copies).

The app's own NetworkPolicies are left out: policies add up, so any of them could only widen what the
isolation policy allows (an egress rule to 0.0.0.0/0 would undo it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubekeep.restore.transforms import TransformChain

from .models import IsolationOptions

SANDBOX_LABEL = "kubekeep.io/sandbox"
ISOLATION_POLICY_NAME = "kubekeep-sandbox-isolation"

#: (kinds, why a sandbox leaves them out)
DROPPED_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("HorizontalPodAutoscaler.autoscaling",), "a sandbox does not autoscale (replicas are the restore point's "
                                               "or the cap)"),
    (("Ingress.networking.k8s.io", "Ingress.extensions"), "a sandbox takes no outside traffic"),
    (("Gateway.gateway.networking.k8s.io", "HTTPRoute.gateway.networking.k8s.io",
      "GRPCRoute.gateway.networking.k8s.io", "TLSRoute.gateway.networking.k8s.io",
      "TCPRoute.gateway.networking.k8s.io", "UDPRoute.gateway.networking.k8s.io"),
     "a sandbox takes no outside traffic (a route could attach to a shared gateway)"),
    (("NetworkPolicy.networking.k8s.io",), "the sandbox's isolation policy replaces the app's (policies add up: "
                                           "the app's could only widen it)"),
    (("PersistentVolume",), "a sandbox never attaches the source's storage: its claims get new volumes"),
    (("MutatingWebhookConfiguration.admissionregistration.k8s.io",
      "ValidatingWebhookConfiguration.admissionregistration.k8s.io"),
     "a sandbox must not intercept the admission of the cluster's other objects"),
    (("APIService.apiregistration.k8s.io",), "a sandbox must not serve an API for the whole cluster"),
)


def isolation_policy(namespace: str, run_id: str, *, allow_dns: bool = True) -> dict[str, Any]:
    """The NetworkPolicy that isolates one sandbox namespace (every pod, both directions)."""
    same_sandbox = [{"namespaceSelector": {"matchLabels": {SANDBOX_LABEL: run_id}}}]
    egress: list[dict[str, Any]] = [{"to": same_sandbox}]
    if allow_dns:
        egress.append({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        })
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": ISOLATION_POLICY_NAME, "namespace": namespace, "labels": {SANDBOX_LABEL: run_id},
                     "annotations": {"kubekeep.io/why": "verification sandbox: no traffic in or out except among "
                                     "the sandbox's own namespaces" + (" and DNS" if allow_dns else "")}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": same_sandbox}], "egress": egress},
    }


def isolation_steps(run_id: str, options: IsolationOptions) -> list[dict[str, Any]]:
    """The transform steps (as data) that isolate restored objects, after the namespace map."""
    steps: list[dict[str, Any]] = [
        {"type": "drop", "selector": {"kind": list(kinds)}, "reason": reason} for kinds, reason in DROPPED_KINDS
    ]
    steps += [
        {"type": "service-type", "from": ["NodePort", "LoadBalancer"], "to": "ClusterIP"},
        # externalIPs make nodes accept traffic for those addresses, whatever the type
        {"type": "remove-fields", "selector": {"kind": "Service"}, "paths": ["/spec/externalIPs"]},
        {"type": "json-patch", "selector": {"kind": "CronJob.batch"},
         "patch": [{"op": "add", "path": "/spec/suspend", "value": True}]},
        # claims bound to a pre-provisioned volume of the source get a new one from their class
        {"type": "remove-fields", "selector": {"kind": "PersistentVolumeClaim"}, "paths": ["/spec/volumeName"]},
    ]
    if options.max_replicas is not None:
        steps.append({"type": "replicas", "max": options.max_replicas})
    steps.append({"type": "labels", "add": {SANDBOX_LABEL: run_id}})
    return steps


def isolation_chain(namespace_map: Mapping[str, str], run_id: str, options: IsolationOptions,
                    user: TransformChain | None = None) -> TransformChain:
    """The whole chain of a sandbox restore: the run's own steps (they see the source namespaces), the
    namespace map into the sandbox, then the isolation steps (last, so nothing undoes them)."""
    user = user or TransformChain()
    for step in user.transforms:
        if step.type_name == "namespace-map":
            raise ValueError("a verification chooses the sandbox namespaces itself: leave namespace-map out of "
                             "its transforms")
    mapped = TransformChain.from_dict([{"type": "namespace-map", "map": dict(namespace_map)},
                                       *isolation_steps(run_id, options)])
    return user + mapped
