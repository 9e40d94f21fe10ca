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

    async def _save(self, *args: Any, **kwargs: Any) -> Any:
        # validate on save: also a block built without validation (model_construct) or changed since
        try:
            PolicySpec.model_validate(self.model_dump(include=set(PolicySpec.model_fields)))
        except ValidationError as exc:
            raise PolicyError(describe_errors(exc, f"policy {getattr(self, 'name', '?')}")) from None
        return await super()._save(*args, **kwargs)

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
