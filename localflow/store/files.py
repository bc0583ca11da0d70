"""The real history store: ``var/workflows/<id>/history.jsonl`` files (see history.py for the rules)."""

from __future__ import annotations

import errno
import os
from contextlib import AbstractContextManager
from typing import Any, Sequence, Union

from localflow.errors import UnsafePath, WorkflowNotFound
from localflow.store import creation, history, locks
from localflow.store.atomic import ensure_dir
from localflow.store.base import Chunk, Cursor, HistoryStore
from localflow.store.paths import WORKFLOW_ID_RE, Paths


class FileStore(HistoryStore):
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def workflow_ids(self) -> list[str]:
        root = self.paths.workflows_dir
        try:
            entries = list(os.scandir(root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(
            entry.name for entry in entries
            if WORKFLOW_ID_RE.fullmatch(entry.name) and (entry.is_symlink() or entry.is_dir())
            and os.path.lexists(os.path.join(entry.path, "history.jsonl"))
        )

    def create(self, workflow_id: str, first: dict[str, Any], more: Sequence[dict[str, Any]] = ()) -> None:
        ensure_dir(self.paths.var_dir)
        ensure_dir(self.paths.workflows_dir, self.paths.var_dir)
        creation.create_workflow(self.paths, workflow_id, first, more)

    def read(self, workflow_id: str, since: Union[Cursor, None] = None) -> Chunk:
        path = self.paths.history(workflow_id)
        try:
            info = os.stat(path, follow_symlinks=False)
            current = None
            if since is not None and info.st_ino == since.inode and info.st_size >= since.size:
                current = history.read_after(path, since.size, since.last_seq, since.tail)
            whole = current is None
            if current is None:
                current = history.read(path)
        except (FileNotFoundError, NotADirectoryError):
            raise WorkflowNotFound(workflow_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink loop on the way (var/workflows linked into itself)
                raise UnsafePath(str(path), "a symlink on the way to it loops") from None
            raise
        if whole and not current.records:
            raise WorkflowNotFound(workflow_id)
        cursor = Cursor(current.valid_size, current.last_seq, info.st_ino, current.tail, info.st_mtime_ns)
        return Chunk(current.records, cursor, current.torn, whole)

    def append(self, workflow_id: str, after: Chunk, records: list[dict[str, Any]]) -> Cursor:
        start = after.cursor
        current = history.HistoryRead(self.paths.history(workflow_id), valid_size=start.size, torn=after.torn,
                                      base_seq=start.last_seq, tail=start.tail)
        history.append(current, records)
        return Cursor(current.valid_size, current.last_seq, start.inode, current.tail, _mtime(current.path))

    def lock(self, workflow_id: str) -> AbstractContextManager:
        return locks.hold(self.paths.lock(workflow_id))

    def changed(self, workflow_id: str, cursor: Cursor) -> bool:
        try:
            info = os.stat(self.paths.history(workflow_id), follow_symlinks=False)
        except OSError:
            return True
        return (info.st_ino, info.st_size, info.st_mtime_ns) != (cursor.inode, cursor.size, cursor.mtime_ns)


def _mtime(path: os.PathLike) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime_ns
    except OSError:
        return 0
