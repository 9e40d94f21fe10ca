"""Protection policies: what to protect, when, how long to keep it, where (Prefect-free; the Block and
the CLI's YAML share :class:`ProtectionPolicy`), and matching discovered applications to policies."""

from .discovery import namespace_labels
from .matching import AppStatus, DiscoveredApp, ProtectionMap, match_apps
from .model import (
    AppSelector,
    DrCopy,
    PolicyError,
    ProtectionPolicy,
    Schedule,
    Verify,
    describe_errors,
    load_policies,
    parse_policy,
    policies_from_yaml,
)
from .report import RunOutcome, protection_rows
from .selector import LabelSelector, SelectorError

__all__ = [
    "AppSelector",
    "AppStatus",
    "DiscoveredApp",
    "DrCopy",
    "LabelSelector",
    "PolicyError",
    "ProtectionMap",
    "ProtectionPolicy",
    "RunOutcome",
    "Schedule",
    "SelectorError",
    "Verify",
    "describe_errors",
    "load_policies",
    "match_apps",
    "namespace_labels",
    "parse_policy",
    "policies_from_yaml",
    "protection_rows",
]
