"""The signals of one restore point: what was measured, its score and why (the stored record)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .objects import ObjectSignals
from .volume import VolumeSignals

FORMAT = 1
#: the subject of the manifest-level signals (volume subjects are ``namespace/pvc``)
OBJECTS_SUBJECT = ""


@dataclass
class PointSignals:
    restore_point_id: str
    app: str
    #: the restore point's finished_at (ISO 8601, UTC)
    finished_at: str
    #: the app's previous restore point (None: the first one)
    previous_point_id: str | None
    volumes: list[VolumeSignals] = field(default_factory=list)
    objects: ObjectSignals | None = None
    score: float = 0.0
    suspect: bool = False
    #: the threshold the point was judged with (per policy)
    threshold: float = 0.0
    #: human-readable, strongest first
    reasons: list[str] = field(default_factory=list)
    #: subject ("" for objects, ``namespace/pvc`` for a volume) -> its highest robust z-score
    subject_scores: dict[str, float] = field(default_factory=dict)
    #: restore point ids of the baseline the point was scored against
    baseline: list[str] = field(default_factory=list)
    computed_at: str = ""
    #: wall-clock seconds: diffs and scoring together
    seconds: float = 0.0
    format: int = FORMAT
    #: the baseline candidates the next point starts from (kubekeep.signals.carry; catalog row only: not
    #: part of the record in the repository, a rebuilt catalog starts the chain again)
    carried: str | None = None

    def volume(self, subject: str) -> VolumeSignals | None:
        for v in self.volumes:
            if v.subject == subject:
                return v
        return None

    def to_json(self) -> bytes:
        doc = asdict(self)
        del doc["carried"]
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PointSignals:
        if doc.get("format") != FORMAT:
            raise ValueError(f"signals record format {doc.get('format')!r} is not supported (want {FORMAT})")
        doc = dict(doc)
        doc["volumes"] = [VolumeSignals.from_dict(v) for v in doc.get("volumes") or ()]
        doc["objects"] = ObjectSignals.from_dict(doc["objects"]) if doc.get("objects") else None
        known = {f.name for f in fields(cls)} - {"carried"}
        return cls(**{k: v for k, v in doc.items() if k in known})

    @classmethod
    def from_json(cls, raw: bytes) -> PointSignals:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("a signals record is a JSON object")
        return cls.from_dict(doc)
