"""Ransomware and anomaly signals in the backup flow: score the new restore point, tell Prefect when it is suspect.

The core (kubekeep.signals) measures the point against the app's previous one and scores it
against the app's baseline; this task runs it after the catalog rows are written and keeps the
record (repository first, then the catalog's ``signals`` rows). A suspect point then becomes a
Prefect event (``kubekeep.restore-point.suspect``, for automations that notify) and a markdown
artifact whose key is stable per app (``suspect-restore-point-<app>``), so the artifact's history
in the UI is the app's list of suspect points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from blocks import EncryptionKey, LocationProfile, repository
from kubekeep.catalog import Catalog, list_signals
from kubekeep.signals import CatalogHistory, PointRef, SignalPolicy, compute_signals, record_signals

from .common import DATA_TASK
from .parameters import SignalOptions

SUSPECT_EVENT = "kubekeep.restore-point.suspect"
#: reasons carried in the task's result, the event and the artifact (the record keeps them all)
MAX_REASONS = 10


@dataclass(frozen=True)
class SignalsVerdict:
    """The verdict on one restore point, as the flow sees it (the record in the repository has the signals)."""

    restore_point_id: str
    app: str
    score: float
    suspect: bool
    threshold: float
    reasons: tuple[str, ...]
    #: restore point ids of the baseline it was scored against
    baseline_points: int
    #: seconds spent measuring and scoring (tree diffs, index look-ups, catalog reads)
    seconds: float
    #: False when the point had been scored already (a retried task): the stored verdict is returned
    recorded: bool = True


def artifact_key(app: str) -> str:
    """The stable artifact key of an app's suspect points (Prefect keys: lower-case letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", app.lower()).strip("-") or "app"
    return f"suspect-restore-point-{slug}"[:100]


@task(name="score-restore-point", task_run_name="score-restore-point-{restore_point_id}", **DATA_TASK)
def score_restore_point(location: LocationProfile, key: EncryptionKey, restore_point_id: str, point: PointRef,
                        options: SignalOptions | None = None) -> SignalsVerdict:
    """Measure the committed restore point against the app's previous one, score it against the app's
    baseline and record the verdict (repository record, then catalog rows). ``point``: what the step needs
    of the restore point record (``point_ref(record)``; the flow holds the record it committed)."""
    options = options or SignalOptions()
    policy = SignalPolicy(threshold=options.threshold, baseline_points=options.baseline_points)
    with repository(location, key) as repo:
        catalog = Catalog(repo.storage, codec=repo.catalog_codec())
        stored = list_signals(catalog, restore_point_ids=[restore_point_id], volumes=False)
        if stored:  # a retry after the rows were written: the verdict stands
            row = stored[0]
            return SignalsVerdict(restore_point_id, row.app, row.score, row.suspect, row.threshold,
                                  tuple(row.reasons[:MAX_REASONS]), len(row.baseline or ()), row.seconds or 0.0,
                                  recorded=False)
        if point.id != restore_point_id:
            raise ValueError(f"the point given is restore point {point.id}, not {restore_point_id}")
        signals = compute_signals(repo, CatalogHistory(catalog), point, policy)
        record_signals(repo, catalog, signals, retention=location.retention(), check=False)
    get_run_logger().info("restore point %s: score %.1f (threshold %g, baseline of %d point(s)) in %.3f s%s",
                          signals.restore_point_id, signals.score, signals.threshold, len(signals.baseline),
                          signals.seconds, ": SUSPECT" if signals.suspect else "")
    return SignalsVerdict(signals.restore_point_id, signals.app, signals.score, signals.suspect, signals.threshold,
                          tuple(signals.reasons[:MAX_REASONS]), len(signals.baseline), signals.seconds)


def announce_suspect(verdict: SignalsVerdict, location: str) -> None:
    """A suspect point: a Prefect event (automations notify on it) and the app's suspect-point artifact.

    Called from the flow run, so Prefect relates the event to the flow run and its deployment.
    """
    reasons = list(verdict.reasons)
    emit_event(
        event=SUSPECT_EVENT,
        resource={"prefect.resource.id": f"kubekeep.restore-point.{verdict.restore_point_id}",
                  "prefect.resource.name": verdict.restore_point_id,
                  "kubekeep.app": verdict.app, "kubekeep.location": location},
        related=[{"prefect.resource.id": f"kubekeep.app.{verdict.app}", "prefect.resource.role": "app",
                  "prefect.resource.name": verdict.app}],
        payload={"restore_point_id": verdict.restore_point_id, "app": verdict.app, "score": round(verdict.score, 2),
                 "threshold": verdict.threshold, "reasons": reasons, "location": location})
    lines = [f"# Suspect restore point `{verdict.restore_point_id}`", "",
             f"* app: **{verdict.app}**, location {location}",
             f"* score **{verdict.score:.1f}** (threshold {verdict.threshold:g}, baseline of "
             f"{verdict.baseline_points} point(s))", "", "## Reasons", "", *[f"* {r}" for r in reasons], "",
             "The point is kept (and DR-copied) as evidence; retention keeps the last clean point.",
             f"A false positive: `kubekeep signals ack {verdict.restore_point_id} --location ...`. "
             f"Restore the last clean point: `kubekeep restore --app {verdict.app} --last-clean --location ...`."]
    create_markdown_artifact("\n".join(lines), key=artifact_key(verdict.app),
                             description=f"Suspect restore point of {verdict.app}")
