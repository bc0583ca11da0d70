"""Files that must be whole: tmp -> fsync -> rename -> fsync(dir), and the fsync helpers.

The history is the one file that is appended instead (see history.py). Every
function that works under var/ takes the *anchor* (normally var/) below which no
symlink is followed (store/safe.py).
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Union

from localflow import faults
from localflow.errors import StorageError, UnsafePath
from localflow.store import safe
from localflow.store.safe import DIR_MODE, FILE_MODE

TMP_SUFFIX = ".tmp"

__all__ = ["DIR_MODE", "FILE_MODE", "TMP_SUFFIX", "ensure_dir", "fsync_dir", "remove", "storage_error",
           "sweep_tmp", "write_atomic"]


def storage_error(action: str, path: Union[Path, str], exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space and retry"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "permission denied"
    else:
        hint = exc.strerror or str(exc)
    return StorageError(f"could not {action} {path}: {hint}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if faults.ACTIVE:
            faults.hit("fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, anchor: Union[Path, None] = None) -> None:
    """Create a private directory if missing (parents too), fsyncing each parent it changes.

    Below ``anchor`` no symlink is followed; with no anchor (var/ itself) the path is
    taken as it is.
    """
    try:
        if anchor is None:
            if not path.is_dir():
                if faults.ACTIVE:
                    faults.hit("mkdir", path)
                path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                fsync_dir(path.parent)
            return
        with safe.directory(anchor, path, create=True):
            pass
    except UnsafePath:
        raise
    except OSError as exc:
        raise storage_error("create directory", path, exc) from exc


def write_atomic(path: Path, data: bytes, anchor: Path) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old file or the new, never half."""
    # unique per process and thread: two threads writing the same file must not share a temp file
    tmp = f"{path.name}.{os.getpid()}-{threading.get_ident()}{TMP_SUFFIX}"
    try:
        with safe.directory(anchor, path.parent) as dir_fd:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                         dir_fd=dir_fd)
            try:
                os.fchmod(fd, FILE_MODE)
                safe.write_all(fd, data)
                if faults.ACTIVE:
                    faults.hit("fsync", path)
                os.fsync(fd)
            except OSError:
                _unlink_quietly(tmp, dir_fd)  # (its own failure no longer hides the one that counts)
                raise
            finally:
                os.close(fd)
            try:
                if faults.ACTIVE:
                    faults.hit("rename", path)
                os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError:
                _unlink_quietly(tmp, dir_fd)  # (it was left behind when the rename failed)
                raise
            if faults.ACTIVE:
                faults.hit("fsync", path.parent)
            os.fsync(dir_fd)
    except UnsafePath:
        raise
    except OSError as exc:
        raise storage_error("write", path, exc) from exc


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def remove(path: Path, anchor: Path) -> bool:
    """Unlink ``path`` (never through a symlinked directory) and fsync its directory; False if absent."""
    try:
        with safe.directory(anchor, path.parent) as dir_fd:
            if faults.ACTIVE:
                faults.hit("unlink", path)
            os.unlink(path.name, dir_fd=dir_fd)
            if faults.ACTIVE:
                faults.hit("fsync", path.parent)
            os.fsync(dir_fd)
    except FileNotFoundError:
        return False
    except UnsafePath:
        raise
    except OSError as exc:
        raise storage_error("remove", path, exc) from exc
    return True


def sweep_tmp(directory: Path) -> list[Path]:
    """Remove leftovers of interrupted atomic writes; returns what was removed."""
    removed: list[Path] = []
    if directory.is_symlink() or not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name.endswith(TMP_SUFFIX) and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
