"""Scheduling: workloads whose pods no node of the target would take (warnings).

For each pod template, a node is eligible when it matches ``nodeSelector``, the
required node affinity (``nodeSelectorTerms``: terms ORed, expressions ANDed;
``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``; ``matchFields``
on ``metadata.name``), ``nodeName`` if set, and its pods tolerate every
``NoSchedule``/``NoExecute`` taint of the node (a cordoned node counts as
tainted ``node.kubernetes.io/unschedulable``). No eligible node is a warning
naming what excluded each node. A toleration for a taint no target node
carries is a warning too: the dedicated nodes it ran on may be missing.
Tolerations of the taints Kubernetes itself manages (``node.kubernetes.io/*``,
``node-role.kubernetes.io/*``) and tolerate-everything tolerations are not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kubekeep.manifest import dig, pod_spec_of

from ..model import PlanItem, Severity, Topic
from ..target import NodeInfo, Taint
from .context import CheckContext, labels_text

UNSCHEDULABLE = Taint("node.kubernetes.io/unschedulable", "NoSchedule")
_MANAGED_PREFIXES = ("node.kubernetes.io/", "node-role.kubernetes.io/")


def _expression_matches(expr: Mapping[str, Any], value: str | None) -> bool:
    op, values = expr.get("operator"), [str(v) for v in expr.get("values") or ()]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def _term_matches(term: Mapping[str, Any], node: NodeInfo) -> bool:
    expressions = [e for e in term.get("matchExpressions") or () if isinstance(e, dict)]
    fields = [e for e in term.get("matchFields") or () if isinstance(e, dict)]
    if not expressions and not fields:
        return False  # an empty term matches no node
    return all(_expression_matches(e, node.labels.get(str(e.get("key")))) for e in expressions) and all(
        _expression_matches(e, node.name if e.get("key") == "metadata.name" else None) for e in fields)


def _tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    for t in tolerations:
        key, op, effect = t.get("key") or "", t.get("operator") or "Equal", t.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        if not key and op == "Exists":
            return True
        if key != taint.key:
            continue
        if op == "Exists" or str(t.get("value") or "") == taint.value:
            return True
    return False


def why_not(spec: Mapping[str, Any], node: NodeInfo) -> str | None:
    """Why a pod with ``spec`` would not go to ``node`` (None: it could)."""
    node_name = spec.get("nodeName")
    if isinstance(node_name, str) and node_name and node_name != node.name:
        return f"nodeName is {node_name}"
    selector = spec.get("nodeSelector") or {}
    if isinstance(selector, dict):
        missing = {k: v for k, v in selector.items() if node.labels.get(k) != str(v)}
        if missing:
            return f"nodeSelector {labels_text(missing)} does not match"
    terms = dig(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms")
    if isinstance(terms, list) and terms and not any(_term_matches(t, node) for t in terms if isinstance(t, dict)):
        return "required node affinity does not match"
    tolerations = [t for t in spec.get("tolerations") or () if isinstance(t, dict)]
    taints = [*node.taints, *([UNSCHEDULABLE] if node.unschedulable else [])]
    for taint in taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return f"taint {taint} is not tolerated"
    return None


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    nodes = ctx.facts.nodes
    all_taints = {(t.key, t.value, t.effect) for n in nodes for t in n.taints}
    workloads = [(o, spec) for o in ctx.prepared.objects if (spec := pod_spec_of(o.target)) is not None]
    if workloads and not nodes:
        yield PlanItem(Severity.WARNING, Topic.SCHEDULING, "nodes",
                       f"the target has no nodes: none of the {len(workloads)} workload(s) can run there")
        return
    for obj, spec in workloads:
        reasons = {n.name: why_not(spec, n) for n in nodes}
        if all(reasons.values()):
            shown = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items())[:5])
            more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
            yield PlanItem(Severity.WARNING, Topic.SCHEDULING, str(obj.ref),
                           f"no node of the target would run its pods ({len(nodes)} node(s): {shown}{more})",
                           "label or untaint target nodes, or change the pod template (a json-patch transform)")
        for t in spec.get("tolerations") or ():
            if not isinstance(t, dict) or not t.get("key") or str(t["key"]).startswith(_MANAGED_PREFIXES):
                continue
            key, value, effect = str(t["key"]), str(t.get("value") or ""), str(t.get("effect") or "")
            matched = any(k == key and (t.get("operator") == "Exists" or v == value) and (not effect or e == effect)
                          for k, v, e in all_taints)
            if not matched:
                shown = f"{key}{'=' + value if value else ''}{':' + effect if effect else ''}"
                yield PlanItem(Severity.WARNING, Topic.SCHEDULING, str(obj.ref),
                               f"tolerates taint {shown}, which no target node carries: the dedicated nodes its "
                               "pods ran on may be missing there")
