"""Service: a kept nodePort already allocated on the target is a conflict (or reassigned, by policy).

Assigned cluster IPs and node ports are stripped by sanitize; node ports that
remain were chosen by the user (or kept by ``preserve_node_ports``).
"""

from __future__ import annotations

import copy

from kubekeep.manifest import ObjectRef

from ..policy import NodePortConflicts
from ..report import Action
from .base import PROCEED, ActionResult, RestoreContext, RestoreItem


class ServiceAction:
    name = "service"

    def applies_to(self) -> frozenset[str]:
        return frozenset({"Service"})

    def execute(self, item: RestoreItem, ctx: RestoreContext) -> ActionResult:
        if item.existing is not None:
            return PROCEED  # an existing Service holds its own ports
        spec = item.manifest.get("spec") or {}
        wanted = [p["nodePort"] for p in spec.get("ports") or ()
                  if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]]
        if isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
            wanted.append(spec["healthCheckNodePort"])
        taken = {port: owner for port in wanted
                 if (owner := ctx.node_port_owner(port)) and owner != _key(item.ref)}
        if not taken:
            return PROCEED
        held = ", ".join(f"{port} (Service {owner})" for port, owner in sorted(taken.items()))
        if ctx.policy.node_port_conflicts is NodePortConflicts.FAIL:
            return ActionResult.done(Action.CONFLICT, (
                f"nodePort already allocated on the target: {held}; "
                "node_port_conflicts=reassign lets the target assign free ports"))
        manifest = copy.deepcopy(item.manifest)
        new_spec = manifest["spec"]
        for port in new_spec.get("ports") or ():
            if isinstance(port, dict) and port.get("nodePort") in taken:
                del port["nodePort"]
        if new_spec.get("healthCheckNodePort") in taken:
            del new_spec["healthCheckNodePort"]
        return ActionResult.proceed(manifest=manifest, note=f"nodePort reassigned by the target: {held} taken")


def _key(ref: ObjectRef) -> str:
    return f"{ref.namespace}/{ref.name}"
