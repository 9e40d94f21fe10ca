"""Filesystem (and NFS) backend.

Writes go to a unique temporary file in the target directory, are fsynced,
then linked into place with ``os.link`` — which fails if the name exists, so
an existing object is never overwritten even by two writers racing (rename
would silently replace). The temporary name is then removed and the directory
fsynced. On NFS, link is atomic on the server, which is what makes this safe
there too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .base import (
    ObjectExistsError,
    ObjectInfo,
    ObjectNotFoundError,
    Retention,
    Storage,
    StorageError,
    TransientStorageError,
    check_key,
)

_TMP_MARK = ".tmp-"
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EIO, errno.ESTALE, errno.EBUSY}


def _classify(exc: OSError, what: str) -> StorageError:
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientStorageError(f"{what}: {exc}")
    return StorageError(f"{what}: {exc}")


class FilesystemStorage(Storage):
    """Objects as files under ``root``.

    The root directory is never created implicitly (only ``create_location``, which
    `init` calls, or ``create=True`` makes it): a mistyped path or an unmounted NFS
    mount point must fail, not quietly become a new location on the local disk.
    """

    supports_retention = False
    missing_hint = ("if it lives on a mounted volume (NFS, a disk), check that the volume is mounted; "
                    "`kubekeep repo init` creates a new repository")

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        if create:
            self.create_location()

    def location_exists(self) -> bool:
        return self.root.is_dir()

    def create_location(self, *, object_lock: bool = False) -> None:
        if object_lock:
            from .base import RetentionNotSupportedError

            raise RetentionNotSupportedError(f"{self.url}: the filesystem backend cannot lock objects")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StorageError(f"{self.root} exists and is not a directory") from None
        except NotADirectoryError:
            raise StorageError(f"cannot create {self.root}: a parent is not a directory") from None
        except OSError as exc:
            raise _classify(exc, f"create {self.root}") from exc
        if not self.root.is_dir():
            raise StorageError(f"{self.root} exists and is not a directory")

    def _make_parents(self, directory: Path) -> None:
        """Create the directories between the root and ``directory``; never the root itself."""
        if not self.root.is_dir():
            raise StorageError(f"location {self.root} does not exist or is not a directory "
                               f"({self.missing_hint})")
        current = self.root
        for part in directory.relative_to(self.root).parts:
            current = current / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | bytearray | memoryview, *,
            retention: Retention | None = None) -> None:
        if retention is not None:
            from .base import RetentionNotSupportedError

            raise RetentionNotSupportedError(f"{self.url}: the filesystem backend cannot lock objects")
        path = self._path(key)
        if path.exists():
            raise ObjectExistsError(key)
        try:
            tmp = path.with_name(f"{_TMP_MARK}{path.name}.{secrets.token_hex(8)}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                self._make_parents(path.parent)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ObjectExistsError(key) from None
            finally:
                os.unlink(tmp)
            self._fsync_dir(path.parent)
        except StorageError:
            raise
        except OSError as exc:
            raise _classify(exc, f"write {key}") from exc

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        try:
            dfd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass  # some filesystems (and NFS clients) refuse fsync on directories
        finally:
            os.close(dfd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _classify(exc, f"read {key}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        try:
            with open(self._path(key), "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _classify(exc, f"read {key}") from exc

    reads_into = True

    def get_range_into(self, key: str, offset: int, buffer: memoryview) -> int:
        if offset < 0:
            raise ValueError("offset must be non-negative")
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _classify(exc, f"read {key}") from exc
        try:
            done = 0
            while done < len(buffer):
                n = os.preadv(fd, [buffer[done:]], offset + done)
                if n == 0:
                    break
                done += n
            return done
        except OSError as exc:
            raise _classify(exc, f"read {key}") from exc
        finally:
            os.close(fd)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, then filter by string prefix.
        base_dir = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base_dir.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base_dir):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(_TMP_MARK):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue  # deleted while listing
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            raise ObjectNotFoundError(key) from None
        except OSError as exc:
            raise _classify(exc, f"stat {key}") from exc
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def remove_leftovers(self, older_than: datetime) -> tuple[int, int]:
        """Unlink ``.tmp-*`` files of interrupted puts last written before ``older_than``.

        A put rewrites its temporary file's mtime with every write and links it into
        place right after its fsync, so an old temporary file belongs to no running
        put; if one were merely stalled that long, its link fails and the put reports
        an error (nothing half-written becomes visible)."""
        count = freed = 0
        limit = older_than.timestamp()
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(_TMP_MARK):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                    if st.st_mtime >= limit:
                        continue
                    os.unlink(full)
                except FileNotFoundError:
                    continue  # linked and removed by its writer meanwhile
                except OSError as exc:
                    raise _classify(exc, f"remove {full}") from exc
                count += 1
                freed += st.st_size
        return count, freed

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _classify(exc, f"delete {key}") from exc
