"""Files that must be whole: tmp -> fsync -> rename -> fsync(dir), and the fsync helpers.

The history is the one file that is appended instead (see history.py).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from localflow.errors import StorageError

TMP_SUFFIX = ".tmp"
FILE_MODE = 0o600
DIR_MODE = 0o700


def storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space and retry"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "permission denied"
    else:
        hint = exc.strerror or str(exc)
    return StorageError(f"could not {action} {path}: {hint}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create a private directory (and parents) if missing, fsyncing the parent when created."""
    if path.is_dir():
        return
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fsync_dir(path.parent)
    except OSError as exc:
        raise storage_error("create directory", path, exc) from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old file or the new, never half."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise storage_error("write", path, exc) from exc


def sweep_tmp(directory: Path) -> list[Path]:
    """Remove leftovers of interrupted atomic writes; returns what was removed."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name.endswith(TMP_SUFFIX) and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
