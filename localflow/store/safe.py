"""Opening and creating files under var/ without ever following a symlink (ARCHITECTURE rule 10).

``var/`` itself may be a symlink (a user may keep state on another disk); below
it, every directory on the way to a file is opened relative to its parent's
descriptor with ``O_NOFOLLOW | O_DIRECTORY``, and the file itself with
``O_NOFOLLOW``. A symlink, or a file where a directory belongs, raises
``UnsafePath`` naming the path: LocalFlow never reads or writes through it.

Callers name the *anchor*, the directory the walk starts from (normally
``var/``); everything between it and the target is checked. Descriptors are
closed before returning, except the one handed back.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

from localflow import faults
from localflow.errors import UnsafePath

DIR_MODE = 0o700
FILE_MODE = 0o600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REFUSED = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


def _parts(anchor: Path, directory: Path) -> list[str]:
    """The names from ``anchor`` down to ``directory`` (plain string work: this is a hot path)."""
    top, below = os.fspath(anchor).rstrip("/"), os.fspath(directory)
    if below == top:
        return []
    if not below.startswith(top + "/"):
        raise UnsafePath(below, f"it is not inside {top}")
    return [name for name in below[len(top) + 1:].split("/") if name and name != "."]


def _refusal(path: Path, exc: OSError) -> UnsafePath:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = 0
    what = "it is a symlink" if stat.S_ISLNK(mode) else "it is not the kind of file LocalFlow expects there"
    return UnsafePath(str(path), what)


@contextmanager
def directory(anchor: Path, target: Union[Path, str], create: bool = False) -> Iterator[int]:
    """A descriptor of ``target``, every component below ``anchor`` opened without following links.

    With ``create``, missing directories are made (0700) and their parents fsynced.
    """
    names = _parts(anchor, target)
    fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(names):
            parent, fd = fd, -1  # _step_into closes the parent, whatever happens
            fd = _step_into(parent, name, lambda: Path(anchor, *names[:depth + 1]), create)
        yield fd
    finally:
        if fd >= 0:
            os.close(fd)


def _step_into(parent_fd: int, name: str, path: Callable[[], Path], create: bool) -> int:
    """Open ``name`` under ``parent_fd`` as a directory (creating it if asked); closes the parent."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
        try:
            if faults.ACTIVE:
                faults.hit("mkdir", name)
            os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
        except FileExistsError:
            pass  # someone else made it: open it like any other
        child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            os.fchmod(child, DIR_MODE)  # whatever the umask said
            if faults.ACTIVE:
                faults.hit("fsync", name)
            os.fsync(parent_fd)
        except BaseException:
            os.close(child)  # (it was leaked when the fsync failed)
            raise
        return child
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise _refusal(path(), exc) from None
        raise
    finally:
        os.close(parent_fd)


def open_file(anchor: Path, path: Path, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` of ``path`` with no symlink followed anywhere below ``anchor``."""
    parent, name = os.path.split(os.fspath(path))
    with directory(anchor, parent) as dir_fd:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _REFUSED:
                raise _refusal(Path(path), exc) from None
            raise


def check(anchor: Path, path: Path) -> None:
    """Raise UnsafePath if ``path`` or a directory between ``anchor`` and it is a symlink.

    For paths handed to code that opens them itself (filelock); a missing path passes.
    """
    here = Path(anchor)
    for name in _parts(anchor, path):
        here = here / name
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise UnsafePath(str(here), "it is a symlink")


def read_bytes(anchor: Path, path: Path, offset: int = 0) -> bytes:
    fd = open_file(anchor, path, os.O_RDONLY)
    try:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part of it)."""
    if faults.ACTIVE:
        faults.hit("write", fd)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_new(anchor: Path, path: Path, data: bytes) -> None:
    """Create (or truncate) a private file holding ``data`` and fsync it."""
    fd = open_file(anchor, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.fchmod(fd, FILE_MODE)
        write_all(fd, data)
        if faults.ACTIVE:
            faults.hit("fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)
