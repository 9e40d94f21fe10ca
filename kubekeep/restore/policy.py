"""What a restore does with objects that already exist, and how long it waits.

A :class:`RestorePolicy` is plain data (``to_dict`` / ``from_dict``), so a flow
can take it as a parameter and record it in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubekeep.manifest import ObjectRef


class ConflictPolicy(StrEnum):
    """What to do with an object that already exists on the target."""

    #: leave it as it is (the default: a restore never overwrites by surprise)
    SKIP = "skip"
    #: server-side apply the backed-up fields (field manager ``kubekeep``, forced)
    UPDATE = "update"
    #: delete it, wait until it is gone, create it from the backup (a new uid)
    RECREATE = "recreate"


class NodePortConflicts(StrEnum):
    """What to do when a kept nodePort is already allocated on the target."""

    #: report a conflict and do not create the Service
    FAIL = "fail"
    #: drop the taken nodePort so the target assigns a free one
    REASSIGN = "reassign"


class PolicyError(ValueError):
    """A restore policy given as data is malformed."""


@dataclass(frozen=True)
class RestorePolicy:
    existing: ConflictPolicy = ConflictPolicy.SKIP
    #: per kind (``Kind.group``, ``Kind`` for the core group), overriding ``existing``
    existing_by_kind: Mapping[str, ConflictPolicy] = field(default_factory=dict)
    #: recreate PersistentVolumeClaims and PersistentVolumes that hold data (bound); off unless asked for
    recreate_pvcs: bool = False
    #: create target namespaces that the restore needs but does not contain
    create_namespaces: bool = True
    node_port_conflicts: NodePortConflicts = NodePortConflicts.FAIL
    field_manager: str = "kubekeep"
    #: seconds to wait for one readiness tier (and for PVCs to bind before workloads)
    ready_timeout: float = 300.0
    #: seconds to wait for CustomResourceDefinitions to be Established and served
    crd_timeout: float = 60.0
    #: seconds to wait for a deleted object to be gone (policy ``recreate``)
    delete_timeout: float = 120.0
    poll_interval: float = 0.5
    #: objects of one priority entry are sent by this many threads
    workers: int = 4

    def for_ref(self, ref: ObjectRef) -> ConflictPolicy:
        return self.existing_by_kind.get(ref.group_kind, self.existing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "existing": self.existing.value,
            "existing_by_kind": {k: v.value for k, v in self.existing_by_kind.items()},
            "recreate_pvcs": self.recreate_pvcs,
            "create_namespaces": self.create_namespaces,
            "node_port_conflicts": self.node_port_conflicts.value,
            "field_manager": self.field_manager,
            "ready_timeout": self.ready_timeout,
            "crd_timeout": self.crd_timeout,
            "delete_timeout": self.delete_timeout,
            "poll_interval": self.poll_interval,
            "workers": self.workers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestorePolicy:
        known = set(cls().to_dict())
        unknown = set(data) - known
        if unknown:
            raise PolicyError(f"restore policy: unknown keys {sorted(unknown)} (expected some of {sorted(known)})")
        kwargs: dict[str, Any] = dict(data)
        try:
            if "existing" in kwargs:
                kwargs["existing"] = ConflictPolicy(kwargs["existing"])
            if "existing_by_kind" in kwargs:
                kwargs["existing_by_kind"] = {str(k): ConflictPolicy(v)
                                              for k, v in dict(kwargs["existing_by_kind"]).items()}
            if "node_port_conflicts" in kwargs:
                kwargs["node_port_conflicts"] = NodePortConflicts(kwargs["node_port_conflicts"])
        except ValueError as exc:
            raise PolicyError(f"restore policy: {exc}") from None
        for key in ("ready_timeout", "crd_timeout", "delete_timeout", "poll_interval"):
            if key in kwargs and (not isinstance(kwargs[key], int | float) or kwargs[key] <= 0):
                raise PolicyError(f"restore policy: {key} must be a positive number")
        if "workers" in kwargs and (not isinstance(kwargs["workers"], int) or kwargs["workers"] < 1):
            raise PolicyError("restore policy: workers must be a positive integer")
        return cls(**kwargs)
