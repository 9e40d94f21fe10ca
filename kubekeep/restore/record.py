"""Where a restore's report is kept: a small snapshot in the repository, then a catalog row.

The write order of backups holds for restores too: the report is committed to
the repository first (a snapshot tagged ``kubekeep:restore`` whose stream
``restore-report.json`` holds the whole report), the catalog's ``restores`` row
is derived from it and can be rebuilt (:func:`rebuild_restores`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kubekeep.catalog import Catalog, Downtime, RestoreRecord, TableName
from kubekeep.repo.repository import Repository
from kubekeep.repo.storage import Retention

from .report import RestoreReport, catalog_record

RESTORE_REPORT_STREAM = "restore-report.json"
RESTORE_TAG = "kubekeep:restore"
FORMAT = 1


def new_restore_id(now: datetime | None = None) -> str:
    """``r-<UTC time>-<random>``: the id of a restore (or dry run) in reports and the catalog."""
    return f"r-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def record_restore(repo: Repository, report: RestoreReport, *, restore_id: str, restore_point_id: str,
                   target_namespaces: Sequence[str], retention: Retention | None = None,
                   downtime: Downtime | None = None) -> str:
    """Commit the report to the repository, then add its catalog row; return the catalog key.

    ``downtime``: the measured downtime when the restore was a migration's cutover.
    """
    head: dict[str, Any] = {"format": FORMAT, "restore_id": restore_id, "restore_point_id": restore_point_id,
                            "target_namespaces": list(target_namespaces)}
    if downtime is not None:
        head["downtime"] = downtime.to_dict()
    repo.backup(streams={RESTORE_REPORT_STREAM: _batched(_document(head, report))},
                tags=[RESTORE_TAG], metadata={"restore": restore_id, "restore_point": restore_point_id},
                retention=retention)
    record = replace(catalog_record(report, restore_id=restore_id, restore_point_id=restore_point_id,
                                    target_namespaces=target_namespaces), downtime=downtime)
    return Catalog(repo.storage, codec=repo.catalog_codec()).add_restore(record)


def _document(head: dict[str, Any], report: RestoreReport) -> Iterator[str]:
    """``{**head, "report": report}`` as JSON, piece by piece."""
    yield json.dumps(head, sort_keys=True)[:-1] + ', "report": '
    yield from report.json_chunks()
    yield "}"


def _batched(pieces: Iterator[str], size: int = 1 << 20) -> Iterator[bytes]:
    """Pieces of text joined into writes of about ``size`` bytes."""
    buf: list[str] = []
    held = 0
    for piece in pieces:
        buf.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(buf).encode()
            buf, held = [], 0
    if buf:
        yield "".join(buf).encode()


def restore_records(repo: Repository) -> Iterator[RestoreRecord]:
    """The catalog rows of every restore whose report is in the repository."""
    for info in repo.snapshots(tags=[RESTORE_TAG]):
        doc: dict[str, Any] = json.loads(b"".join(repo.read_stream(info.id, RESTORE_REPORT_STREAM)))
        if doc.get("format") != FORMAT:
            raise ValueError(f"restore report {info.id}: format {doc.get('format')!r} is not supported")
        record = catalog_record(RestoreReport.from_dict(doc["report"]), restore_id=str(doc["restore_id"]),
                                restore_point_id=str(doc["restore_point_id"]),
                                target_namespaces=list(doc.get("target_namespaces") or ()))
        downtime = doc.get("downtime")
        yield replace(record, downtime=Downtime.from_dict(downtime)) if downtime else record


def rebuild_restores(repo: Repository, *, cache_dir: str | None = None) -> tuple[int, int]:
    """Add the ``restores`` rows the catalog lacks; return (written, already present)."""
    catalog = Catalog(repo.storage, cache_dir=cache_dir, codec=repo.catalog_codec())
    return catalog.add_missing(TableName.RESTORES, restore_records(repo), catalog.add_restore)
