"""ProtectionPolicy: the Prefect Block of a protection policy (the same content as the CLI's YAML file).

The fields, their descriptions and their validation are the core's
(:class:`kubekeep.policy.ProtectionPolicy`): this block adds only what makes it a Block, so a policy
saved from the UI, from Python or from ``kubekeep policy save FILE`` is checked by one set of rules
(schedule, timezone, GFS counts, app selectors) and a bad one is never saved. ``location`` and
``dr_copy.location`` name LocationProfile blocks.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import ValidationError

from kubekeep.policy import PolicyError, describe_errors
from kubekeep.policy import ProtectionPolicy as PolicySpec


class ProtectionPolicy(Block, PolicySpec):
    """Which apps to protect, when, how long to keep their restore points, where, and their DR copy
    and verification."""

    _block_type_name = "Kubekeep Protection Policy"
    _block_type_slug = "kubekeep-protection-policy"
    _description = "Which Kubernetes apps to back up, when (cron + timezone), GFS retention, location, DR copy."

    def validate_policy(self) -> None:
        """PolicyError (one line naming the fields) unless every field holds (also for a block built
        without validation, ``model_construct``)."""
        try:
            PolicySpec.model_validate(self.model_dump(include=set(PolicySpec.model_fields), warnings=False))
        except ValidationError as exc:
            raise PolicyError(describe_errors(exc, f"policy {getattr(self, 'name', '?')}")) from None

    # validate on save: Block.save goes through _save_sync, Block.asave through _save
    async def _save(self, *args: Any, **kwargs: Any) -> Any:
        self.validate_policy()
        return await super()._save(*args, **kwargs)

    def _save_sync(self, *args: Any, **kwargs: Any) -> Any:
        self.validate_policy()
        return super()._save_sync(*args, **kwargs)

    def spec(self) -> PolicySpec:
        """The Prefect-free policy (what the core's matching and retention take)."""
        return PolicySpec.model_validate(self.model_dump(include=set(PolicySpec.model_fields)))

    @classmethod
    def of(cls, spec: PolicySpec) -> ProtectionPolicy:
        return cls.model_validate(spec.model_dump())


def load_policy(policy: str | PolicySpec) -> PolicySpec:
    """A policy given by block name (saved in the Prefect API) or as an instance (from Python, the CLI)."""
    if isinstance(policy, str):
        block: Any = ProtectionPolicy.load(policy)
        return block.spec()  # type: ignore[no-any-return]
    return policy.spec() if isinstance(policy, ProtectionPolicy) else policy


def saved_policies() -> list[PolicySpec]:
    """Every ProtectionPolicy block saved in the Prefect API (to tell protected apps from unprotected ones).
    A saved document that no longer validates is skipped: it protects nothing until it is fixed."""
    from prefect.client.orchestration import get_client

    out: list[PolicySpec] = []
    with get_client(sync_client=True) as client:
        try:
            documents = client.read_block_documents_by_type(ProtectionPolicy.get_block_type_slug())
        except Exception as exc:  # noqa: BLE001 - the block type is not registered yet: no policy saved
            if "404" in str(exc) or "not found" in str(exc).lower():
                return []
            raise
    for document in documents:
        try:
            out.append(PolicySpec.model_validate({k: v for k, v in document.data.items()
                                                  if k in PolicySpec.model_fields}))
        except ValidationError:
            continue
    return out


def sync_protect_schedule(policy: PolicySpec) -> tuple[str, bool] | None:
    """Put the policy's cron and timezone on its deployment ``protect/<policy name>`` (replacing that
    deployment's schedules), so the deployment runs on the policy's schedule. Returns the deployment's name
    and whether its schedule changed (a schedule that already matches is left as it is, with the runs it
    planned), or None when no such deployment exists (nothing is created: deployments come from prefect.yaml)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound

    name = f"protect/{policy.name}"
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
        wanted = CronSchedule(cron=policy.schedule.cron, timezone=policy.schedule.timezone)
        existing = client.read_deployment_schedules(deployment.id)
        if [(getattr(s.schedule, "cron", None), getattr(s.schedule, "timezone", None), s.active)
                for s in existing] == [(wanted.cron, wanted.timezone, True)]:
            return name, False
        for schedule in existing:
            client.delete_deployment_schedule(deployment.id, schedule.id)
        client.create_deployment_schedules(deployment.id, [DeploymentScheduleCreate(schedule=wanted, active=True)])
    return name, True
