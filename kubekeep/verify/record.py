"""Where a verdict is kept: a small snapshot in the repository, then a catalog row (like restore reports).

The verdict is committed to the repository first (a snapshot tagged ``kubekeep:verification`` whose
stream ``verification.json`` holds it); the catalog's ``verifications`` row is derived from it and
can be rebuilt (:func:`rebuild_verifications`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubekeep.catalog import Catalog, TableName, VerificationRecord
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention

from .verdict import Verdict

VERIFICATION_STREAM = "verification.json"
VERIFICATION_TAG = "kubekeep:verification"
FORMAT = 1


def record_verification(repo: Repository, verdict: Verdict, *, retention: Retention | None = None) -> str:
    """Commit the verdict to the repository, then add its catalog row; return the catalog key."""
    doc = {"format": FORMAT, "verification": verdict.model_dump(mode="json")}
    repo.backup(streams={VERIFICATION_STREAM: [json.dumps(doc, sort_keys=True).encode()]},
                tags=[VERIFICATION_TAG], metadata={"verification": verdict.id,
                                                   "restore_point": verdict.restore_point_id,
                                                   "result": verdict.result.value},
                retention=retention)
    return Catalog(repo.storage, codec=repo.catalog_codec()).add_verification(verdict.to_record())


def verification_records(repo: Repository) -> Iterator[VerificationRecord]:
    """The catalog rows of every verification whose verdict is in the repository."""
    for info in repo.snapshots(tags=[VERIFICATION_TAG]):
        doc: dict[str, Any] = json.loads(b"".join(repo.read_stream(info.id, VERIFICATION_STREAM)))
        if doc.get("format") != FORMAT:
            raise ValueError(f"verification {info.id}: format {doc.get('format')!r} is not supported")
        yield Verdict.model_validate(doc["verification"]).to_record()


def rebuild_verifications(repo: Repository, *, cache_dir: str | None = None) -> tuple[int, int]:
    """Add the ``verifications`` rows the catalog lacks; return (written, already present)."""
    catalog = Catalog(repo.storage, cache_dir=cache_dir, codec=repo.catalog_codec())
    return catalog.add_missing(TableName.VERIFICATIONS, verification_records(repo), catalog.add_verification)
