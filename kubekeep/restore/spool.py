"""A restore plan spooled to private local files, so that tasks pass the spool's path, never the manifests.

One JSON-lines file per phase and one for what the plan left out. Prefect tasks pass the spool's path (a
reference), never the manifests. The
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

from kubekeep.manifest import ObjectRef, ref_of

from .order import OrderedObject, RestorePhase, Wait
from .owners import SkippedObject
from .plan import RestorePlan

SKIPPED_FILE = "skipped.jsonl"


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
    fd = os.open(directory / SKIPPED_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        for skipped in plan.skipped:
            ref = skipped.ref
            fh.write(json.dumps({"ref": [ref.group, ref.kind, ref.namespace, ref.name, ref.version],
                                 "reason": skipped.reason}) + "\n")
    return summaries


def read_plan(directory: Path) -> RestorePlan:
    """The whole plan back from the spool: every phase, and what the plan left out."""
    files = sorted(directory.glob("phase-*.jsonl"), key=lambda p: int(p.stem.removeprefix("phase-")))
    phases = [_read_phase(path) for path in files]
    skipped = []
    with open(directory / SKIPPED_FILE) as fh:
        for line in fh:
            rec = json.loads(line)
            skipped.append(SkippedObject(ObjectRef(*rec["ref"]), rec["reason"]))
    return RestorePlan(phases, skipped, [])


def _read_phase(path: Path) -> RestorePhase:
    with open(path) as fh:
        header = json.loads(fh.readline())
        objects = []
        for line in fh:
            rec: dict[str, Any] = json.loads(line)
            manifest = rec["manifest"]
            objects.append(OrderedObject(manifest, ref_of(manifest), rec["match"], rec["reason"], rec["tier"],
                                         tuple(rec.get("notes") or ())))
    return RestorePhase(header["name"], tuple(objects), Wait(header["wait"]), header["tier"])
