"""Traffic into the app: LoadBalancer Services and IngressClasses (warnings).

- a Service of type LoadBalancer gets a new external address on the target;
  DNS records and allow-lists naming the source's address must follow (the
  address the restore point recorded is named), and a requested
  ``loadBalancerIP``/``loadBalancerClass`` must be something the target's load
  balancer can give;
- an Ingress names an IngressClass (``spec.ingressClassName`` or the old
  ``kubernetes.io/ingress.class`` annotation) the target does not have, or names
  none while the target has no default class: no controller may serve it. An
  IngressClass the restore point brings along still needs its controller.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubekeep.manifest import dig

from ..model import PlanItem, Severity, Topic
from .context import CheckContext

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def check(ctx: CheckContext) -> Iterator[PlanItem]:
    yield from _load_balancers(ctx)
    yield from _ingress_classes(ctx)


def _load_balancers(ctx: CheckContext) -> Iterator[PlanItem]:
    for svc in ctx.of_kind("", "Service"):
        if dig(svc.target, "spec", "type") != "LoadBalancer":
            continue
        old = [str(i.get("ip") or i.get("hostname")) for i in dig(svc.source, "status", "loadBalancer", "ingress") or ()
               if isinstance(i, dict) and (i.get("ip") or i.get("hostname"))]
        notes = [f"the source's address was {', '.join(old)}" if old else "the source had no address recorded"]
        requested = dig(svc.target, "spec", "loadBalancerIP")
        if requested:
            notes.append(f"it requests loadBalancerIP {requested}, which the target's load balancer must be able "
                         "to assign")
        lb_class = dig(svc.target, "spec", "loadBalancerClass")
        if lb_class:
            notes.append(f"it asks for loadBalancerClass {lb_class}: a controller of that class must run on the "
                         "target")
        yield PlanItem(Severity.WARNING, Topic.LOAD_BALANCER, str(svc.ref),
                       f"type LoadBalancer: the target gives it a new external address ({'; '.join(notes)})",
                       "point DNS records and allow-lists at the new address after the cutover")


def _ingress_classes(ctx: CheckContext) -> Iterator[PlanItem]:
    brought = {o.ref.name: o for o in ctx.of_kind("networking.k8s.io", "IngressClass")
               if ctx.existing(o.ref) is None}
    default = ctx.facts.default_ingress_class()
    for ing in ctx.of_kind("networking.k8s.io", "Ingress"):
        name = dig(ing.target, "spec", "ingressClassName")
        annotation = (dig(ing.target, "metadata", "annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
        wanted = name or annotation
        subject = str(ing.ref)
        if not wanted:
            if default is None and not any(
                    (dig(o.target, "metadata", "annotations") or {}).get("ingressclass.kubernetes.io/is-default-class")
                    == "true" for o in brought.values()):
                yield PlanItem(Severity.WARNING, Topic.INGRESS_CLASS, subject,
                               "names no IngressClass and the target has no default IngressClass: no controller "
                               "may serve it",
                               "set spec.ingressClassName (a json-patch transform) or install an ingress controller")
            continue
        if wanted in ctx.facts.ingress_classes:
            continue
        if wanted in brought:
            controller = dig(brought[wanted].target, "spec", "controller") or "?"
            yield PlanItem(Severity.WARNING, Topic.INGRESS_CLASS, subject,
                           f"IngressClass {wanted} is created from the restore point; its controller {controller} "
                           "must run on the target")
            continue
        how = "spec.ingressClassName" if name else f"annotation {INGRESS_CLASS_ANNOTATION}"
        have = ", ".join(sorted(ctx.facts.ingress_classes)) or "none"
        yield PlanItem(Severity.WARNING, Topic.INGRESS_CLASS, subject,
                       f"{how} names IngressClass {wanted}, which the target does not have (it has: {have}): no "
                       "controller may serve it",
                       "install the ingress controller on the target, or rename the class (a json-patch transform)")
