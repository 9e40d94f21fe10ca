"""What a verification measured and concluded: RTO per stage, the point's RPO, the verdict.

Stages (docs/verification.md): ``sandbox`` (leftover cleanup and sandbox creation), then the RTO stages
``plan``, ``objects-applied``, ``volumes-hydrated``, ``ready``, ``checks``, then ``teardown``. The
RTO is the wall-clock time from the start of ``plan`` to the end of ``checks``: what restoring the
app and proving it works took. The restore's phases give the middle three (the time spent sending
objects, filling volumes, and waiting at readiness gates).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubekeep.catalog import VerificationRecord, VerificationResult
from kubekeep.restore.report import PhaseReport

from .checks import VOLUME_PHASES
from .models import CheckResult, CheckType


class StageName(StrEnum):
    SANDBOX = "sandbox"
    PLAN = "plan"
    OBJECTS_APPLIED = "objects-applied"
    VOLUMES_HYDRATED = "volumes-hydrated"
    READY = "ready"
    CHECKS = "checks"
    TEARDOWN = "teardown"


#: the stages whose sum the RTO spans, in order
RTO_STAGES = (StageName.PLAN, StageName.OBJECTS_APPLIED, StageName.VOLUMES_HYDRATED, StageName.READY,
              StageName.CHECKS)


class Stage(BaseModel):
    """One measured stage; ``seconds`` may be less than its span when the stage is the sum of pieces
    interleaved with others (objects applied and readiness waits alternate tier by tier)."""

    model_config = ConfigDict(frozen=True)

    name: StageName = Field(description="The stage.")
    started_at: datetime = Field(description="When its first piece started.")
    finished_at: datetime = Field(description="When its last piece ended.")
    seconds: float = Field(ge=0, description="Time spent in it.")

    @classmethod
    def between(cls, name: StageName, started_at: datetime, finished_at: datetime) -> Stage:
        return cls(name=name, started_at=started_at, finished_at=finished_at,
                   seconds=max((finished_at - started_at).total_seconds(), 0.0))

    def to_row(self) -> dict[str, Any]:
        return {"name": self.name.value, "started_at": self.started_at, "finished_at": self.finished_at,
                "seconds": self.seconds}


def restore_stages(phases: Sequence[PhaseReport]) -> list[Stage]:
    """``objects-applied``, ``volumes-hydrated`` and ``ready`` from a restore's phase timings."""
    pieces: dict[StageName, list[tuple[datetime, datetime]]] = {}
    for phase in phases:
        if phase.started_at is None:
            continue
        if phase.name in VOLUME_PHASES:
            end = phase.ready_at or phase.applied_at
            if end is not None:
                pieces.setdefault(StageName.VOLUMES_HYDRATED, []).append((phase.started_at, end))
            continue
        if phase.applied_at is not None:
            pieces.setdefault(StageName.OBJECTS_APPLIED, []).append((phase.started_at, phase.applied_at))
            if phase.ready_at is not None and phase.wait != "none":
                pieces.setdefault(StageName.READY, []).append((phase.applied_at, phase.ready_at))
    out = []
    for name in (StageName.OBJECTS_APPLIED, StageName.VOLUMES_HYDRATED, StageName.READY):
        spans = pieces.get(name)
        if spans:
            out.append(Stage(name=name, started_at=min(s for s, _ in spans), finished_at=max(e for _, e in spans),
                             seconds=sum(max((e - s).total_seconds(), 0.0) for s, e in spans)))
    return out


#: checks judged from the restore's report: their times are the restore's (already in its stages)
_FROM_THE_RESTORE = frozenset({CheckType.RESTORE, CheckType.VOLUME_DATA})


def checks_stage(results: Sequence[CheckResult]) -> Stage | None:
    """``checks`` from the checks' own times: from the first start to the last end of the checks that ran
    after the restore (None: none ran)."""
    spans = [(c.started_at, c.started_at + timedelta(seconds=c.duration_seconds)) for c in results
             if c.started_at is not None and c.type not in _FROM_THE_RESTORE]
    if not spans:
        return None
    return Stage.between(StageName.CHECKS, min(s for s, _ in spans), max(e for _, e in spans))


def rto_seconds(stages: Sequence[Stage]) -> float | None:
    """Wall-clock seconds from the start of ``plan`` to the end of ``checks`` (None: either is missing)."""
    plan = next((s for s in stages if s.name is StageName.PLAN), None)
    checks = next((s for s in stages if s.name is StageName.CHECKS), None)
    if plan is None or checks is None:
        return None
    return max((checks.finished_at - plan.started_at).total_seconds(), 0.0)


def rpo_seconds(point_finished_at: datetime | None, previous_finished_at: datetime | None) -> float | None:
    """The data a restore of this point would lose at worst: the time since the app's previous point."""
    if point_finished_at is None or previous_finished_at is None:
        return None
    return max((point_finished_at - previous_finished_at).total_seconds(), 0.0)


def new_verification_id(now: datetime | None = None) -> str:
    return f"v-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def decide(checks: Sequence[CheckResult], *, error: str | None = None) -> tuple[VerificationResult, str | None]:
    """The verdict: ``error`` when the verification could not judge the point (``error`` says why),
    ``failed`` when a check failed (the reason names each), else ``passed``."""
    if error is not None:
        return VerificationResult.ERROR, error
    if not checks:
        return VerificationResult.FAILED, "no check ran"
    failed = [c for c in checks if not c.passed]
    if not failed:
        return VerificationResult.PASSED, None
    parts = [f"{c.name}: {c.reason}" for c in failed[:5]]
    more = f"; and {len(failed) - 5} more failed check(s)" if len(failed) > 5 else ""
    reason = "; ".join(parts) + more
    return VerificationResult.FAILED, reason if len(reason) <= 2000 else reason[:1997] + "..."


class Verdict(BaseModel):
    """Everything one verification found (kept in the repository and the catalog's ``verifications``)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Verification id.")
    restore_point_id: str = Field(description="The verified restore point.")
    app: str = Field(description="Its app.")
    started_at: datetime
    finished_at: datetime
    result: VerificationResult = Field(description="passed, failed or error.")
    reason: str | None = Field(default=None, description="Why it did not pass.")
    checks: list[CheckResult] = Field(default_factory=list)
    stages: list[Stage] = Field(default_factory=list)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    point_finished_at: datetime | None = None
    sandbox_cluster: str
    sandbox_namespaces: list[str] = Field(default_factory=list)
    teardown: str | None = Field(default=None, description="complete, or what teardown left and why.")

    @classmethod
    def assemble(cls, *, id: str, restore_point_id: str, app: str, started_at: datetime, finished_at: datetime,
                 checks: Sequence[CheckResult], stages: Sequence[Stage], sandbox_cluster: str,
                 sandbox_namespaces: Sequence[str], teardown: str | None, point_finished_at: datetime | None = None,
                 previous_finished_at: datetime | None = None, error: str | None = None) -> Verdict:
        """The verdict of what was measured: :func:`decide` on the checks, the RTO from the stages, the
        RPO from the point and the app's previous point."""
        result, reason = decide(checks, error=error)
        return cls(id=id, restore_point_id=restore_point_id, app=app, started_at=started_at, finished_at=finished_at,
                   result=result, reason=reason, checks=list(checks), stages=list(stages),
                   rto_seconds=rto_seconds(stages) if error is None else None,
                   rpo_seconds=rpo_seconds(point_finished_at, previous_finished_at),
                   point_finished_at=point_finished_at, sandbox_cluster=sandbox_cluster,
                   sandbox_namespaces=list(sandbox_namespaces), teardown=teardown)

    @property
    def passed(self) -> bool:
        return self.result is VerificationResult.PASSED

    def stage(self, name: StageName | str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_record(self) -> VerificationRecord:
        return VerificationRecord(
            id=self.id, restore_point_id=self.restore_point_id, app=self.app, started_at=self.started_at,
            finished_at=self.finished_at, result=self.result.value, reason=self.reason, rto_seconds=self.rto_seconds,
            rpo_seconds=self.rpo_seconds, point_finished_at=self.point_finished_at,
            stages=tuple(s.to_row() for s in self.stages), checks=tuple(c.to_row() for c in self.checks),
            sandbox_cluster=self.sandbox_cluster, sandbox_namespaces=tuple(self.sandbox_namespaces),
            teardown=self.teardown)

    @classmethod
    def from_record(cls, record: VerificationRecord) -> Verdict:
        return cls(
            id=record.id, restore_point_id=record.restore_point_id, app=record.app, started_at=record.started_at,
            finished_at=record.finished_at, result=VerificationResult(record.result), reason=record.reason,
            checks=[CheckResult.from_row(dict(c)) for c in record.checks],
            stages=[Stage.model_validate(dict(s)) for s in record.stages], rto_seconds=record.rto_seconds,
            rpo_seconds=record.rpo_seconds, point_finished_at=record.point_finished_at,
            sandbox_cluster=record.sandbox_cluster, sandbox_namespaces=list(record.sandbox_namespaces),
            teardown=record.teardown)

    # ---- rendering ------------------------------------------------------
    def table_rows(self) -> list[dict[str, Any]]:
        """One row per check, for a Prefect table artifact."""
        return [{"check": c.name, "type": c.type.value, "result": "passed" if c.passed else "FAILED",
                 "seconds": round(c.duration_seconds, 2), "attempts": c.attempts, "reason": c.reason}
                for c in self.checks]

    def markdown(self) -> str:
        """A summary for a Prefect markdown artifact and the CLI."""
        def secs(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} s"

        lines = [f"# Verification of `{self.restore_point_id}`: **{self.result.value.upper()}**", ""]
        if self.reason:
            lines += [f"Reason: {self.reason}", ""]
        lines += [f"- app `{self.app}`, sandbox `{', '.join(self.sandbox_namespaces) or '-'}` on "
                  f"`{self.sandbox_cluster}`",
                  f"- RTO {secs(self.rto_seconds)}, RPO of the point {secs(self.rpo_seconds)}",
                  f"- teardown: {self.teardown or 'not run'}", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {s.name.value} | {s.seconds:.2f} |" for s in self.stages]
        lines += ["", "| check | result | seconds | attempts | reason |", "|---|---|---|---|---|"]
        for c in self.checks:
            reason = c.reason.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c.name} ({c.type.value}) | {'passed' if c.passed else '**FAILED**'} | "
                         f"{c.duration_seconds:.2f} | {c.attempts} | {reason} |")
        return "\n".join(lines) + "\n"
