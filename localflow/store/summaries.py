"""Derived per-workflow summaries (``var/workflows/<id>/summary.json``) that make listing fast.

A summary is a listing row folded from a history, stamped with what it was made
from: the history's inode, the size of its valid prefix and that prefix's last 64
bytes. It is used only while the history still has exactly that prefix and no more
(ARCHITECTURE rule 11); otherwise the caller folds the history and writes a new
one. The history stays the only truth: deleting every summary changes no output,
only the time it takes.

Summaries are written tmp -> rename without fsync: a summary lost or torn by a
crash fails its check and is rebuilt, so durability buys nothing here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from localflow.errors import LocalFlowError
from localflow.store import safe

NAME = "summary.json"
HISTORY = "history.jsonl"
_MAX_SUMMARY = 64 * 1024
_TAIL = 64
_VERSION = 1


def _tail(dir_fd: int, size: int) -> bytes:
    fd = os.open(HISTORY, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        start = max(size - _TAIL, 0)
        return os.pread(fd, size - start, start)
    finally:
        os.close(fd)


def read(var_dir: Path, history: Path) -> Union[dict[str, Any], None]:
    """The row of a summary that still matches ``history``, or None (absent, stale, unreadable)."""
    try:
        with safe.directory(var_dir, history.parent) as dir_fd:
            fd = os.open(NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                stamp = json.loads(os.read(fd, _MAX_SUMMARY))
            finally:
                os.close(fd)
            info = os.stat(HISTORY, dir_fd=dir_fd, follow_symlinks=False)
            if (stamp.get("version") != _VERSION or stamp.get("inode") != info.st_ino
                    or stamp.get("size") != info.st_size or _tail(dir_fd, info.st_size).hex() != stamp.get("tail")):
                return None
        row = stamp.get("row")
    except (OSError, ValueError, LocalFlowError, AttributeError):
        return None
    return row if isinstance(row, dict) else None


def write(var_dir: Path, history: Path, valid_size: int, row: dict[str, Any]) -> None:
    """Record ``row`` as the summary of the first ``valid_size`` bytes of ``history`` (best effort)."""
    target = history.with_name(NAME)
    tmp = f"{NAME}.{os.getpid()}.tmp"
    try:
        with safe.directory(var_dir, target.parent) as dir_fd:
            stamp = {"version": _VERSION, "inode": os.stat(HISTORY, dir_fd=dir_fd, follow_symlinks=False).st_ino,
                     "size": valid_size, "tail": _tail(dir_fd, valid_size).hex(), "row": row}
            data = json.dumps(stamp, ensure_ascii=False, allow_nan=False).encode("utf-8")
            if len(data) > _MAX_SUMMARY:
                return
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except (OSError, ValueError, LocalFlowError):
        pass  # a read-only var/ or a full disk: listing stays correct, only slower
