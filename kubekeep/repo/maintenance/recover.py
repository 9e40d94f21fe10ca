"""Versioned locations: what delete markers and newer versions hide, and `recover` (docs/storage.md).

Kubekeep writes every key once (put-if-absent) and deletes every version of a key
when it deletes, so in a versioned bucket each key it owns has exactly one
version and no delete marker. Anything else was done by someone else: a plain
DELETE (a delete marker) hides an object whose data - locked or not - is still
stored; a PUT over a key adds a newer version that readers get instead of the
original. ``find_hidden`` lists such keys (``check`` reports them) and
``recover`` makes the authentic version current again: it removes the delete
markers and newer versions above it, or, when a newer version is itself locked,
copies the authentic version back on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ..crypto import BlobType
from ..errors import RepositoryError
from ..format import (
    CATALOG_PREFIX,
    CONFIG_KEY,
    DATA_PREFIX,
    INDEX_PREFIX,
    KEYS_PREFIX,
    LOCKS_PREFIX,
    PACK_MAGIC,
    PACK_TRAILER,
    PRUNE_PREFIX,
    SNAPSHOTS_PREFIX,
    id_from_key,
    pack_id_from_key,
)
from ..protocols import RecoverTarget
from ..storage import ObjectLockedError, ObjectVersion, Storage, StorageError, VersionsNotSupportedError


@dataclass(frozen=True)
class HiddenObject:
    key: str
    #: "delete-marker" (the key reads as missing) or "overwritten" (a newer version is read instead)
    kind: str
    #: every version and delete marker of the key, newest first
    versions: tuple[ObjectVersion, ...]
    #: the lock of the original (oldest) version, when it is locked now
    retained_until: datetime | None

    @property
    def original(self) -> ObjectVersion:
        return [v for v in self.versions if not v.delete_marker][-1]

    def describe(self) -> str:
        when = self.original.modified.isoformat(timespec="seconds") if self.original.modified else "?"
        kept = f", retained until {self.retained_until.isoformat(timespec='seconds')}" if self.retained_until else ""
        if self.kind == "delete-marker":
            return (f"{self.key} is hidden by a delete marker; its data (written {when}{kept}) is still stored: "
                    "`kubekeep repo recover` makes it visible again")
        newer = len([v for v in self.versions if not v.delete_marker]) - 1
        return (f"{self.key} has {newer} newer version(s) over the original (written {when}{kept}), written by "
                "something other than kubekeep: `kubekeep repo recover` restores the authentic version")


def find_hidden(storage: Storage) -> Iterator[HiddenObject]:
    """Keys of the location whose original version is hidden (nothing on unversioned locations)."""
    try:
        if not storage.versioned():
            return
    except VersionsNotSupportedError:
        return
    group: list[ObjectVersion] = []
    for version in storage.list_versions(""):
        if group and version.key != group[0].key:
            yield from _judge(storage, group)
            group = []
        group.append(version)
    if group:
        yield from _judge(storage, group)


def _judge(storage: Storage, versions: list[ObjectVersion]) -> Iterator[HiddenObject]:
    key = versions[0].key
    real = [v for v in versions if not v.delete_marker]
    if not real or key.startswith(LOCKS_PREFIX):
        return  # a delete marker over nothing; locks are short-lived and never restored
    latest = next((v for v in versions if v.latest), versions[0])
    if latest.delete_marker:
        kind = "delete-marker"
    elif len(real) > 1:
        kind = "overwritten"
    else:
        return
    yield HiddenObject(key, kind, tuple(versions), storage.version_retained_until(key, real[-1].version_id))


@dataclass(frozen=True)
class RecoverAction:
    key: str
    action: str


@dataclass
class RecoverResult:
    actions: list[RecoverAction] = field(default_factory=list)
    #: keys that were left as they are, with the reason
    problems: list[str] = field(default_factory=list)


def authentic(repo: RecoverTarget, key: str, raw: bytes) -> bool:
    """Whether ``raw`` is an object Kubekeep wrote under ``key`` in this repository (by its authentication)."""
    try:
        if key == CONFIG_KEY:
            repo.verify_config(raw)
        elif key.startswith(SNAPSHOTS_PREFIX):
            repo.decode_snapshot(key[len(SNAPSHOTS_PREFIX):], raw, what=key)
        elif key.startswith(INDEX_PREFIX):
            ident = id_from_key(key, INDEX_PREFIX)
            if ident is None:
                return False
            repo.open_object(BlobType.INDEX, ident, raw, what=key)
        elif key.startswith(PRUNE_PREFIX):
            ident = id_from_key(key, PRUNE_PREFIX)
            if ident is None:
                return False
            repo.open_object(BlobType.PRUNE_RECORD, ident, raw, what=key)
        elif key.startswith(DATA_PREFIX):
            pack_id = pack_id_from_key(key)
            if pack_id is None or len(raw) < PACK_TRAILER.size:
                return False
            header_len, magic = PACK_TRAILER.unpack(raw[-PACK_TRAILER.size:])
            if magic != PACK_MAGIC or header_len > len(raw) - PACK_TRAILER.size:
                return False
            end = len(raw) - PACK_TRAILER.size
            repo.open_object(BlobType.PACK_HEADER, pack_id, raw[end - header_len:end], what=key)
        elif key.startswith(CATALOG_PREFIX):
            repo.catalog_codec().open(key, raw)
        else:
            return False
    except (RepositoryError, ValueError):
        return False
    return True


def _choose(repo: RecoverTarget, hidden: HiddenObject) -> ObjectVersion | None:
    """The newest version that authenticates; for key slots and unknown keys (which cannot be
    authenticated without their passphrase) the original, since Kubekeep writes a key once."""
    real = [v for v in hidden.versions if not v.delete_marker]
    if hidden.key.startswith(KEYS_PREFIX) or not authenticable(hidden.key):
        return real[-1]
    for version in real:
        if authentic(repo, hidden.key, repo.storage.get_version(hidden.key, version.version_id)):
            return version
    return None


def authenticable(key: str) -> bool:
    return key == CONFIG_KEY or key.startswith((SNAPSHOTS_PREFIX, INDEX_PREFIX, PRUNE_PREFIX, DATA_PREFIX,
                                                CATALOG_PREFIX))


def recover(repo: RecoverTarget) -> RecoverResult:
    """Make the authentic version of every hidden or overwritten key current again."""
    result = RecoverResult()
    storage = repo.storage
    try:
        for hidden in list(find_hidden(storage)):
            chosen = _choose(repo, hidden)
            if chosen is None:
                result.problems.append(f"{hidden.key}: no version authenticates; left as it is")
                continue
            above = hidden.versions[:hidden.versions.index(chosen)]
            if not above:
                result.problems.append(f"{hidden.key}: the current version is authentic; nothing to do")
                continue
            markers = sum(1 for v in above if v.delete_marker)
            try:
                for version in above:
                    storage.delete_version(hidden.key, version.version_id)
                result.actions.append(RecoverAction(hidden.key, f"removed {markers} delete marker(s) and "
                                                                f"{len(above) - markers} newer version(s)"))
            except ObjectLockedError as exc:
                storage.restore_version(hidden.key, chosen.version_id)
                result.actions.append(RecoverAction(
                    hidden.key, f"copied the authentic version {chosen.version_id} back over a newer version "
                                f"that is locked ({exc})"))
    except StorageError as exc:
        raise repo.storage_error(exc) from exc
    return result
