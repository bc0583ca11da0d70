"""Derived per-workflow summaries (``var/workflows/<id>/summary.json``) that make listing fast.

A summary is a listing row folded from a history, stamped with what it was made
from: the history's inode, size and modification time (ns), as the supervisor's
stat-only rescans use them. It is used only while a ``stat`` of the history still
gives exactly that stamp (ARCHITECTURE rule 11), so listing reads no history at all;
otherwise the caller folds the history and writes a new one. (Any append or
rewrite changes size or mtime; only a rewrite that also restores the old mtime on
purpose would go unnoticed.) The history stays the only truth: deleting every summary changes no output,
only the time it takes.

Summaries are written tmp -> rename without fsync: a summary lost or torn by a
crash fails its check and is rebuilt, so durability buys nothing here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from localflow import faults
from localflow.errors import LocalFlowError
from localflow.store import safe

NAME = "summary.json"
HISTORY = "history.jsonl"
_MAX_SUMMARY = 64 * 1024
_VERSION = 4  # 4: rows have current_steps (a list) and parent


def _stamp(dir_fd: int) -> tuple[int, int, int]:
    info = os.stat(HISTORY, dir_fd=dir_fd, follow_symlinks=False)
    return info.st_ino, info.st_size, info.st_mtime_ns


def read(var_dir: Path, history: Path) -> Union[dict[str, Any], None]:
    """The row of a summary that still matches ``history``, or None (absent, stale, unreadable)."""
    workflow_dir = history.parent
    return read_many(var_dir, workflow_dir.parent, [workflow_dir.name])[workflow_dir.name]


def read_many(var_dir: Path, workflows_dir: Path, workflow_ids: list[str]) -> dict[str, Union[dict, None]]:
    """``read`` for many workflows, walking to ``workflows_dir`` once (listing 10,000 is the hot path)."""
    stamps = _stamps(var_dir, workflows_dir, workflow_ids)
    return {i: (s.get("row") if isinstance(s, dict) and isinstance(s.get("row"), dict) else None)
            for i, s in stamps.items()}


def settled(var_dir: Path, workflows_dir: Path, workflow_ids: list[str]) -> set[str]:
    """The workflows whose matching summary says they are over with nothing left to do."""
    return {i for i, s in _stamps(var_dir, workflows_dir, workflow_ids).items() if s and s.get("settled") is True}


def _stamps(var_dir: Path, workflows_dir: Path, workflow_ids: list[str]) -> dict[str, Union[dict, None]]:
    found: dict[str, Union[dict, None]] = dict.fromkeys(workflow_ids)
    try:
        with safe.directory(var_dir, workflows_dir) as parent:
            for workflow_id in workflow_ids:
                found[workflow_id] = _read_one(parent, workflow_id)
    except (OSError, LocalFlowError):
        pass
    return found


def _read_one(parent: int, workflow_id: str) -> Union[dict[str, Any], None]:
    try:
        dir_fd = os.open(workflow_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return None
    try:
        fd = os.open(NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            stamp = json.loads(os.read(fd, _MAX_SUMMARY))
        finally:
            os.close(fd)
        if stamp.get("version") != _VERSION or stamp.get("stamp") != list(_stamp(dir_fd)):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    finally:
        os.close(dir_fd)
    return stamp  # a matching stamp: its row (and whether the workflow is settled)


def write(var_dir: Path, history: Path, valid_size: int, row: dict[str, Any], settled: bool = False) -> None:
    """Record ``row`` as the summary of the first ``valid_size`` bytes of ``history`` (best effort).

    ``settled``: the workflow is over and nothing of it can still need doing (no attempt or
    child pending), so a supervisor starting up need not even read it.
    """
    target = history.with_name(NAME)
    tmp = f"{NAME}.{os.getpid()}.tmp"
    try:
        with safe.directory(var_dir, target.parent) as dir_fd:
            now = _stamp(dir_fd)
            if now[1] != valid_size:
                return  # appended since it was folded (or a torn tail): nothing to stamp it with
            stamp = {"version": _VERSION, "stamp": list(now), "row": row, "settled": settled}
            data = json.dumps(stamp, ensure_ascii=False, allow_nan=False).encode("utf-8")
            if len(data) > _MAX_SUMMARY:
                return
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                if faults.ACTIVE:
                    faults.hit("write", target)
                os.write(fd, data)
            finally:
                os.close(fd)
            if faults.ACTIVE:
                faults.hit("rename", target)
            os.replace(tmp, NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except (OSError, ValueError, LocalFlowError):
        pass  # a read-only var/ or a full disk: listing stays correct, only slower
