"""Writing below a restore target without ever leaving it.

Everything here works relative to directory file descriptors: a directory is
opened with ``O_NOFOLLOW | O_DIRECTORY`` one name at a time, so a symlink met on
the way is an error, never a detour. A new file is an unnamed ``O_TMPFILE`` inode
linked under its final name when complete; other new entries (and files where
``O_TMPFILE`` is unavailable) are created under a temporary name with ``O_EXCL``
(a link planted there is never opened). Where the final name is taken, the new
entry is renamed over it, which replaces whatever was there — a symlink or a
hard link to a file elsewhere is dropped, never written through. An entry of the wrong
type is removed by a walk that unlinks symlinks instead of following them and
stops at mount points.

Only the target directory itself is opened by path: the user named it, so
links in that path are theirs to choose.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

#: temporary names of entries being restored (a crash may leave one; O_EXCL never reuses it)
TMP_PREFIX = ".kubekeep-restore-"

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_T = TypeVar("_T")
_tmp_counter = itertools.count()
_tmp_prefix = f"{TMP_PREFIX}{os.getpid()}-"


def _after_fork() -> None:
    global _tmp_prefix
    _tmp_prefix = f"{TMP_PREFIX}{os.getpid()}-"


os.register_at_fork(after_in_child=_after_fork)


class TargetError(OSError):
    """An entry in the target that a restore must not touch (e.g. a mount point in the way)."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be the name of a directory entry, or None if it can."""
    if not isinstance(name, str):
        return "not a string"
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:
        return "not encodable as a file name"
    if raw in (b"", b".", b".."):
        return "empty, '.' or '..'"
    if b"/" in raw:
        return "contains '/'"
    if b"\0" in raw:
        return "contains NUL"
    return None


def open_target(path: Path) -> int:
    """The restore target directory, created if missing, opened for ``*at`` calls."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileExistsError, NotADirectoryError) as exc:
        if os.path.lexists(path):
            raise TargetError(errno.ENOTDIR, f"restore target {path} exists and is not a directory") from None
        raise TargetError(exc.errno, f"cannot create restore target {path}: {exc.strerror}") from None
    except OSError as exc:
        raise TargetError(exc.errno, f"cannot open restore target {path}: {exc.strerror}") from None


def open_dir_at(dir_fd: int, name: str) -> int:
    """An existing directory entry of ``dir_fd`` (ELOOP/ENOTDIR if it is a symlink or not a directory)."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def make_dir_at(dir_fd: int, name: str, mode: int = 0o700) -> tuple[int, bool]:
    """Open directory ``name`` of ``dir_fd``, creating it (``mode``) if missing; anything else
    there — a symlink, a file, a fifo — is removed first. Returns (fd, created)."""
    created = False
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
        created = True
    except FileExistsError:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            os.mkdir(name, mode, dir_fd=dir_fd)
            created = True
    return open_dir_at(dir_fd, name), created


def open_dir_below(root_fd: int, parts: Sequence[str]) -> int:
    """The existing directory ``root/parts...``, every component opened without following links."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            sub = open_dir_at(fd, part)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_below(root: Path, parts: Sequence[str]) -> int:
    """Open the regular file ``root/parts...`` for reading without following any link below ``root``."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dir_fd = open_dir_below(root_fd, parts[:-1])
    finally:
        os.close(root_fd)
    try:
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def create_temp_at(dir_fd: int, make: Callable[[str], _T]) -> tuple[str, _T]:
    """Create a new entry under a fresh temporary name in ``dir_fd``; ``make(name)`` must fail with
    FileExistsError if the name is taken (O_EXCL, mkdir, mkfifo, symlink and link all do)."""
    for _ in range(1000):
        name = f"{_tmp_prefix}{next(_tmp_counter)}"
        try:
            return name, make(name)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name")


def _proc_fd_links() -> bool:
    """Whether ``/proc/self/fd/N`` can name an open file for linkat (procfs mounted)."""
    global _PROC_FD
    if _PROC_FD is None:
        _PROC_FD = os.path.isdir("/proc/self/fd")
    return _PROC_FD


_PROC_FD: bool | None = None


def new_file_at(dir_fd: int, mode: int = 0o600) -> tuple[int, str | None]:
    """A new, empty file in ``dir_fd`` to be named later by place_file_at: (fd, temporary name).

    Where the filesystem supports it the file is an unnamed ``O_TMPFILE`` inode (name
    None): nothing is visible, and nothing is left behind by a crash, until it is linked
    under its final name. Elsewhere (NFS, no procfs) it gets a temporary name. ``mode``
    is subject to the umask.
    """
    if _proc_fd_links():
        try:
            return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dir_fd), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    tmp, fd = create_temp_at(dir_fd, lambda n: os.open(n, NEW_FILE_FLAGS, mode, dir_fd=dir_fd))
    return fd, tmp


def place_file_at(dir_fd: int, fd: int, tmp: str | None, name: str, *, replace_dir: bool = True) -> None:
    """Give a file made by new_file_at its final ``name``, replacing whatever holds it (a
    symlink or hard link there is dropped, never written through; a directory is removed
    only with ``replace_dir``, else IsADirectoryError)."""
    if tmp is None:
        proc = f"/proc/self/fd/{fd}"
        try:
            os.link(proc, name, dst_dir_fd=dir_fd, follow_symlinks=True)
            return
        except FileExistsError:
            tmp, _ = create_temp_at(dir_fd, lambda n: os.link(proc, n, dst_dir_fd=dir_fd, follow_symlinks=True))
    try:
        if replace_dir:
            replace_at(dir_fd, tmp, name)
        else:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        discard_at(dir_fd, tmp)
        raise


def write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        with memoryview(data) as view:
            while written < len(view):
                written += os.write(fd, view[written:])


def replace_at(dir_fd: int, tmp: str, name: str) -> None:
    """Rename ``tmp`` over ``name`` in ``dir_fd``; a directory in the way is removed first.

    A symlink or hard link at ``name`` is replaced, so what it pointed to is untouched.
    """
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise
        remove_at(dir_fd, name)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def discard_at(dir_fd: int, name: str) -> None:
    """Best-effort removal of a temporary entry this restore created."""
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def remove_at(dir_fd: int, name: str) -> None:
    """Remove entry ``name`` of ``dir_fd`` and, if it is a directory, everything below it.

    Symlinks are unlinked, never followed; a directory on another device (a mount
    point) is refused, so nothing outside the directory's own filesystem tree is touched.
    The walk keeps its own stack, so a deep tree cannot exhaust the recursion limit.
    """
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    device = os.fstat(dir_fd).st_dev
    # (fd of a directory being emptied, names left in it, its name in the parent)
    stack: list[tuple[int, list[str], str]] = []
    try:
        stack.append(_open_for_removal(dir_fd, name, device))
        while stack:
            fd, names, dirname = stack[-1]
            if names:
                child = names.pop()
                if stat.S_ISDIR(os.stat(child, dir_fd=fd, follow_symlinks=False).st_mode):
                    stack.append(_open_for_removal(fd, child, device))
                else:
                    os.unlink(child, dir_fd=fd)
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(dirname, dir_fd=stack[-1][0] if stack else dir_fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _open_for_removal(parent_fd: int, name: str, device: int) -> tuple[int, list[str], str]:
    fd = open_dir_at(parent_fd, name)
    try:
        if os.fstat(fd).st_dev != device:
            raise TargetError(errno.EXDEV, f"{name!r} is a mount point; not removed")
        return fd, os.listdir(fd), name
    except BaseException:
        os.close(fd)
        raise
