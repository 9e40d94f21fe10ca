"""The retention flow: plan (a dry-run artifact) -> approval when it deletes a large share -> expire ->
prune -> renew locks -> compact the catalog. And the ``prune`` flow alone (prune, compact the catalog).

The rules come from a ProtectionPolicy block (its retention, timezone and approval share; only the
points that policy made) or are given directly (``kubekeep forget``: every point of the location, or
of one app). A plan that deletes more than the approval share of an app's points pauses the run for
a typed approval form in the Prefect UI (``on_approval="pause"``), or fails with one line naming the
apps (``"fail"``, what the CLI uses: ``--yes`` approves). After an approval the plan is made again
and only points that both plans drop are deleted: nothing that was not approved, nothing that became
kept meanwhile (verified, locked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from blocks import EncryptionKey, LocationProfile, ProtectionPolicy, keep_open, load_blocks, load_policy
from flows.approval import ask_approval
from kubekeep.retention import ExpiryReport, RenewReport, RetentionError, RetentionPlan, RetentionRules
from tasks.index import publish_restore_points
from tasks.retention import (
    CatalogCompaction,
    PruneSummary,
    compact_catalog,
    expire_points,
    plan_retention,
    prune_location,
    renew_point_locks,
)


@dataclass
class RetentionOutcome:
    """What a retention run did (``expiry`` None: a dry run, or an approval that was refused)."""

    plan: RetentionPlan
    approval: Literal["not needed", "given", "approved in the UI", "refused", "dry run"]
    expiry: ExpiryReport | None = None
    prune: PruneSummary | None = None
    renew: RenewReport | None = None
    catalog: CatalogCompaction | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "all"


def _run_name() -> str:
    params = flow_run.parameters
    policy = params.get("policy")
    what = getattr(policy, "name", policy) or params.get("app") or "every app"
    site = " at the DR site" if params.get("site") == "dr" else ""
    return f"retention {what}{site}{' (dry run)' if params.get('dry_run') else ''}"


@flow(name="retention", flow_run_name=_run_name, log_prints=True)
def retention(
    location: str | LocationProfile | None = None,
    encryption_key: str | EncryptionKey = "default",
    policy: str | ProtectionPolicy | None = None,
    rules: RetentionRules | None = None,
    app: str | None = None,
    timezone: str = "UTC",
    approval_share: float | None = None,
    dry_run: bool = False,
    approve: bool = False,
    on_approval: Literal["pause", "fail"] = "pause",
    approval_timeout: int = 86400,
    prune: bool = True,
    renew_locks: bool = True,
    site: Literal["primary", "dr"] = "primary",
) -> RetentionOutcome:
    """Apply GFS retention to the restore points of a location: plan, approve, expire, prune, renew locks,
    compact the catalog.

    Args:
        location: The location block (name, or instance from Python) whose restore points are kept or dropped
            (default: the block the policy names, else "default").
        encryption_key: The key block that opens the location's repository.
        policy: A ProtectionPolicy block: its retention, timezone and approval share apply to the points it
            made. Give this or ``rules``.
        rules: Keep rules applied to every point of the location (or of ``app``), grouped by app and policy.
        app: Only this application's restore points.
        timezone: IANA timezone the hourly/daily/weekly/monthly/yearly buckets are counted in (with ``rules``).
        approval_share: A plan deleting more than this share of an app's points needs approval (default: the
            policy's, else 0.5).
        dry_run: Only publish the plan; delete nothing.
        approve: The plan is approved in advance (the CLI's ``--yes``).
        on_approval: When the plan needs approval and has none: pause for the approval form in the UI, or fail.
        approval_timeout: Seconds a paused run waits for the approval form before it fails.
        prune: Reclaim the packs no remaining restore point needs after expiry.
        renew_locks: Extend the Object Lock of points the rules keep before it lapses.
        site: With a policy: "primary" keeps the points at the policy's location with its retention; "dr" keeps
            the copies at its DR copy's location with the DR copy's retention (default: the policy's own).
    """
    if (policy is None) == (rules is None):
        raise RetentionError("give a policy or keep rules (not both)")
    spec = load_policy(policy) if policy is not None else None
    if site == "dr" and (spec is None or spec.dr_copy is None):
        raise RetentionError("site dr needs a policy with a dr_copy (its location and retention)")
    if spec is not None and spec.dr_copy is not None and site == "dr":
        home, keep = spec.dr_copy.location, spec.dr_retention()
    else:
        home, keep = (spec.location, spec.retention) if spec else ("default", rules)
    loc, key, _ = load_blocks(location or home, encryption_key, None)
    assert keep is not None
    if keep.is_empty():
        raise RetentionError("no keep rule given: that would drop every point (give at least one --keep-* rule)")
    zone_name = spec.timezone if spec else timezone
    share = approval_share if approval_share is not None else (spec.approval_share if spec else 0.5)
    what = f"policy {spec.name}" if spec else (f"app {app}" if app else "every app")
    if site == "dr":
        what += " at the DR site"

    def make_plan() -> RetentionPlan:
        return plan_retention(loc, key, keep, app=app, policy=spec.name if spec else None,
                              only_policy=spec is not None, timezone=zone_name, approval_share=share)

    with keep_open(loc, key):
        plan = make_plan()
        _publish_plan(plan, what)
        if dry_run:
            return RetentionOutcome(plan, "dry run")
        approval: Literal["not needed", "given", "approved in the UI", "refused", "dry run"] = "not needed"
        only: list[str] | None = None
        if plan.needs_approval and not approve:
            if on_approval == "fail":
                plan.check_approved(False)
            answer = ask_approval(f"retention plan of {what}", _approval_text(plan, what),
                                  key=f"retention-{what}", timeout=approval_timeout)
            if not answer.approve:
                return RetentionOutcome(plan, "refused")
            only = [d.point.id for d in plan.drops]
            plan = make_plan()  # afresh: only what both plans drop goes
            approval = "approved in the UI"
        elif plan.needs_approval:
            approval = "given"
        expiry = expire_points(loc, key, plan, approved=approval != "not needed", only=only,
                               reason=f"retention: {what}")
        for dropped_app in sorted({d.point.app for d in plan.drops}):
            publish_restore_points(loc, key, dropped_app)  # the index without the expired points
        pruned = prune_location(loc, key) if prune else None
        renewed = renew_point_locks(loc, key, plan) if renew_locks else None
        compacted = compact_catalog(loc, key)  # the expired points' files are gone: merge what is left
    outcome = RetentionOutcome(plan, approval, expiry, pruned, renewed, compacted)
    _publish_report(outcome, what)
    return outcome


@flow(name="prune", flow_run_name="prune", log_prints=True)
def prune_flow(location: str | LocationProfile = "default", encryption_key: str | EncryptionKey = "default",
               repack_threshold: float = 0.5) -> PruneSummary:
    """Reclaim the space of packs no restore point needs (locked packs stay; sparse packs are repacked).

    The catalog's small files are merged too (``compact-catalog``) where a table holds many of them.

    Args:
        location: The location block (name, or instance from Python) to prune.
        encryption_key: The key block that opens the location's repository.
        repack_threshold: Repack a pack when less than this share of it is still needed.
    """
    loc, key, _ = load_blocks(location, encryption_key, None)
    with keep_open(loc, key):
        summary = prune_location(loc, key, repack_threshold=repack_threshold)
        compact_catalog(loc, key)
    create_table_artifact([summary.__dict__ | {"messages": "; ".join(summary.messages)}], key="prune-report",
                          description=f"Prune of {loc.describe()}")
    return summary


def _approval_text(plan: RetentionPlan, what: str) -> str:
    apps = "\n".join(f"* **{s.app}**: {s.dropped} of {s.total} points" for s in plan.over_threshold())
    return (f"The retention plan of {what} deletes more than {plan.approval_share:.0%} of the restore points of:\n\n"
            f"{apps}\n\nSee the retention plan artifact of this run for every point and why. Approve to delete.")


def _publish_plan(plan: RetentionPlan, what: str) -> None:
    create_table_artifact(plan.rows(), key=f"retention-plan-{_slug(what)}",
                          description=f"Retention plan of {what}: {plan.summary()} (timezone {plan.timezone})")


def _publish_report(outcome: RetentionOutcome, what: str) -> None:
    lines = [f"# Retention of {what}", "", f"* plan: {outcome.plan.summary()}, approval: {outcome.approval}"]
    if outcome.expiry:
        e = outcome.expiry
        lines += [f"* deleted: {len(e.deleted)} restore point(s), {e.snapshots_deleted} snapshot(s), "
                  f"finished {len(e.finished)} interrupted deletion(s)",
                  *[f"* held by Object Lock: `{h.id}` (expires when its lock ends"
                    f"{', ' + h.retain_until.isoformat() if h.retain_until else ''})" for h in e.held],
                  *[f"* {m}" for m in e.messages]]
    if outcome.prune:
        p = outcome.prune
        lines.append(f"* prune: {p.packs_deleted} pack(s) deleted, {p.packs_repacked} repacked, {p.bytes_freed} bytes "
                     f"freed, {p.locked_kept} locked object(s) kept")
    if outcome.renew:
        r = outcome.renew
        lines.append(f"* locks renewed: {len(r.renewed)} point(s) until {r.retain_until or '-'}"
                     + (f", errors: {'; '.join(r.errors)}" if r.errors else ""))
    if outcome.catalog and outcome.catalog.tables:
        c = outcome.catalog
        lines.append(f"* catalog compacted: {c.files_merged} file(s) of {', '.join(c.tables)} merged into "
                     f"{c.parts_written} part(s)" + (f", {c.files_kept} kept under retention" if c.files_kept else ""))
    create_markdown_artifact("\n".join(lines), key=f"retention-report-{_slug(what)}",
                             description=f"Retention of {what}")
