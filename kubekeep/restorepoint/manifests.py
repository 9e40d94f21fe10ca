"""Manifests in the repository: one JSON object per line, as served, encrypted like all data."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from kubekeep.repo.repository import Repository

MANIFESTS_STREAM = "manifests.jsonl"
_BATCH_BYTES = 1 << 20


def encode_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def manifest_stream(objects: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """JSON lines in batches of about 1 MiB (few, large writes into the repository)."""
    buf = bytearray()
    for obj in objects:
        buf += encode_line(obj)
        if len(buf) >= _BATCH_BYTES:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into lines without holding more than one line plus one chunk."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        yield from (line for line in lines if line)
    if rest:
        yield rest


def read_manifests(repo: Repository, snapshot_id: str) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each stored object with its exact stored line (for content hashes)."""
    for line in iter_lines(repo.read_stream(snapshot_id, MANIFESTS_STREAM)):
        yield json.loads(line), line
