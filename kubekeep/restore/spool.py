"""A restore plan spooled to a private local file, so that each phase's task loads only its phase.

Prefect tasks pass the spool's path (a reference), never the manifests. The
file holds decrypted manifests (Secrets included): it is created 0600 in a
0700 directory and the restore flow deletes it when the run ends.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubekeep.manifest import ref_of

from .order import OrderedObject, RestorePhase, Wait
from .plan import RestorePlan


@dataclass(frozen=True)
class PhaseSummary:
    index: int
    name: str
    wait: str
    tier: int | None
    objects: int
    kinds: tuple[str, ...]


def spool_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="kubekeep-restore-"))


def write_plan(plan: RestorePlan, directory: Path) -> list[PhaseSummary]:
    """One JSON-lines file per phase under ``directory``; return the phases' summaries."""
    os.chmod(directory, 0o700)
    summaries = []
    for i, phase in enumerate(plan.phases):
        path = directory / f"phase-{i:03d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"name": phase.name, "wait": str(phase.wait), "tier": phase.tier}) + "\n")
            for obj in phase.objects:
                fh.write(json.dumps({"match": obj.match, "reason": obj.reason, "tier": obj.tier,
                                     "notes": list(obj.notes), "manifest": obj.manifest},
                                    separators=(",", ":")) + "\n")
        kinds = sorted({o.ref.kind for o in phase.objects})
        summaries.append(PhaseSummary(i, phase.name, str(phase.wait), phase.tier, len(phase.objects), tuple(kinds)))
    return summaries


def read_phase(directory: Path, index: int) -> RestorePlan:
    """A plan holding just phase ``index`` (what one apply task sends)."""
    with open(directory / f"phase-{index:03d}.jsonl") as fh:
        header = json.loads(fh.readline())
        objects = []
        for line in fh:
            rec: dict[str, Any] = json.loads(line)
            manifest = rec["manifest"]
            objects.append(OrderedObject(manifest, ref_of(manifest), rec["match"], rec["reason"], rec["tier"],
                                         tuple(rec.get("notes") or ())))
    phase = RestorePhase(header["name"], tuple(objects), Wait(header["wait"]), header["tier"])
    return RestorePlan([phase], [], [])
