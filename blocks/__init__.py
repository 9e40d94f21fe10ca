"""Prefect Blocks of Kubekeep: register with `prefect block register -m blocks`."""

from typing import Any, TypeVar

from prefect.blocks.core import Block
from pydantic import ValidationError

from .cluster import ClusterConnection
from .encryption import EncryptionKey
from .location import LocationProfile
from .policy import ProtectionPolicy, load_policy
from .repositories import keep_open, open_catalog, repository

B = TypeVar("B", bound=Block)


class BlockError(ValueError):
    """A block named by a run is missing or invalid; the message is one sentence with the fix."""


def validation_reasons(error: ValidationError) -> str:
    """The reasons of a block's refusal, one clause each: ``an encryption key needs a passphrase, ...``."""
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())


def load_block(cls: type[B], name: str, what: str) -> B:
    """``cls.load(name)`` with a one-sentence error (BlockError) for a missing block and for one whose
    validators refuse it: the Prefect UI saves blocks without running them (docs/ui.md, Blocks)."""
    try:
        return cls.load(name)  # type: ignore[return-value]
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise BlockError(f"no {what} block named {name!r}: create it in the Prefect UI (Blocks → + → "
                         f"{cls.get_block_type_name()}) or name another one") from None
    except RuntimeError as exc:
        if not isinstance(exc.__cause__, ValidationError):
            raise
        reasons = validation_reasons(exc.__cause__)
        raise BlockError(f"the {what} block {name!r} is invalid: {reasons}; edit it in the Prefect UI under "
                         "Blocks") from None


def load_blocks(location: str | LocationProfile, encryption_key: str | EncryptionKey,
                cluster: str | ClusterConnection | None) -> tuple[LocationProfile, EncryptionKey, ClusterConnection]:
    """Blocks given by name (saved in the Prefect API) or as instances (from Python); no cluster block
    means the worker's default kubeconfig."""
    loc: Any = load_block(LocationProfile, location, "location") if isinstance(location, str) else location
    key: Any = (load_block(EncryptionKey, encryption_key, "encryption key") if isinstance(encryption_key, str)
                else encryption_key)
    conn: Any = ClusterConnection()
    if cluster is not None:
        conn = load_block(ClusterConnection, cluster, "cluster") if isinstance(cluster, str) else cluster
    return loc, key, conn


__all__ = ["BlockError", "ClusterConnection", "EncryptionKey", "LocationProfile", "ProtectionPolicy", "keep_open",
           "load_block", "load_blocks", "load_policy", "open_catalog", "repository"]
