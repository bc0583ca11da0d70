"""The in-memory twin of FileStore: the same contract, no disk (for fast engine and supervisor tests).

Lines are encoded with the real codec, so sizes, limits and checksums behave as
on disk; ``corrupt``/``tear`` let tests damage a history the way a crash or a
bad disk would.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any, Sequence, Union

from localflow.errors import ConflictError, HistoryCorruptError, PayloadTooLarge, WorkflowExists, WorkflowNotFound
from localflow.store import codec
from localflow.store.base import Chunk, Cursor, HistoryStore
from localflow.store.history import MAX_HISTORY_BYTES
from localflow.store.paths import validate_workflow_id


class MemoryStore(HistoryStore):
    def __init__(self) -> None:
        self._lines: dict[str, list[bytes]] = {}
        self._sizes: dict[str, int] = {}
        self._versions: dict[str, int] = {}  # bumped on every change: the twin of mtime
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def workflow_ids(self) -> list[str]:
        with self._guard:
            return sorted(self._lines)

    def create(self, workflow_id: str, first: dict[str, Any], more: Sequence[dict[str, Any]] = ()) -> None:
        validate_workflow_id(workflow_id)
        lines = [codec.encode(record) for record in (first, *more)]
        with self._guard:
            if workflow_id in self._lines:
                raise WorkflowExists(workflow_id)
            self._lines[workflow_id] = lines
            self._sizes[workflow_id] = sum(len(line) for line in lines)
            self._versions[workflow_id] = 1

    def read(self, workflow_id: str, since: Union[Cursor, None] = None) -> Chunk:
        validate_workflow_id(workflow_id)
        with self._guard:
            if workflow_id not in self._lines:
                raise WorkflowNotFound(workflow_id)
            lines = list(self._lines[workflow_id])
            version = self._versions[workflow_id]
        extends = since is not None and since.inode == id(self) and since.last_seq <= len(lines)
        start = since.last_seq if extends else 0
        records = []
        for number, line in enumerate(lines[start:], start=start + 1):
            try:
                records.append(codec.decode(line[:-1]))
            except codec.LineError as exc:
                raise HistoryCorruptError(f"<memory>/{workflow_id}", number, str(exc)) from None
        size = sum(len(line) for line in lines)
        return Chunk(records, Cursor(size, len(lines), id(self), b"", version), b"", not extends)

    def append(self, workflow_id: str, after: Chunk, records: list[dict[str, Any]]) -> Cursor:
        validate_workflow_id(workflow_id)
        encoded = [codec.encode(r) for r in records]
        with self._guard:
            if workflow_id not in self._lines:
                raise WorkflowNotFound(workflow_id)
            lines = self._lines[workflow_id]
            if len(lines) != after.cursor.last_seq:
                raise ConflictError(f"<memory>/{workflow_id}", after.cursor.last_seq + 1, len(lines))
            for offset, record in enumerate(records):
                if record["seq"] != len(lines) + 1 + offset:
                    raise ConflictError(f"<memory>/{workflow_id}", len(lines) + 1 + offset, record["seq"])
            size = self._sizes[workflow_id] + sum(len(line) for line in encoded)
            if size > MAX_HISTORY_BYTES:
                raise PayloadTooLarge(f"history <memory>/{workflow_id}", size, MAX_HISTORY_BYTES)
            if encoded:
                lines.extend(encoded)
                self._sizes[workflow_id] = size
                self._versions[workflow_id] += 1
            return Cursor(size, len(lines), id(self), b"", self._versions[workflow_id])

    def lock(self, workflow_id: str) -> AbstractContextManager:
        validate_workflow_id(workflow_id)
        with self._guard:
            return self._locks.setdefault(workflow_id, threading.RLock())

    def changed(self, workflow_id: str, cursor: Cursor) -> bool:
        validate_workflow_id(workflow_id)
        with self._guard:
            return self._versions.get(workflow_id) != cursor.mtime_ns or cursor.inode != id(self)

    # --- damage, as tests need it ---------------------------------------------------

    def corrupt(self, workflow_id: str, seq: int, line: bytes) -> None:
        """Replace line ``seq`` with raw bytes (a bad disk, a careless edit)."""
        with self._guard:
            self._lines[workflow_id][seq - 1] = line
            self._versions[workflow_id] += 1
