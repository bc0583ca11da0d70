"""What the engine needs from a history store, and the cursor that makes reads incremental.

Two stores implement it and one contract test runs against both
(tests/integration/test_store_contract.py): ``FileStore`` (store/files.py, the
real one: JSONL files under var/) and ``MemoryStore`` (store/memory.py, the
in-memory twin for fast tests of the engine, executor and supervisor).

A ``Cursor`` says where a reader stopped: the size of the valid prefix it read,
the last seq, and enough identity (inode, the prefix's last bytes, mtime) to
tell that the history still begins with exactly what was read. With it a
long-lived reader reads only what was appended since (``read(id, since)``) and
can tell with one ``stat`` whether anything was (``changed``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Sequence, Union


@dataclass(frozen=True)
class Cursor:
    size: int
    last_seq: int
    inode: int = 0
    tail: bytes = b""
    mtime_ns: int = 0


@dataclass
class Chunk:
    """What a read found: records (all, or those after the cursor read from), the new cursor,
    and a crash's torn tail after the valid prefix (the next append repairs it)."""

    records: list[dict[str, Any]]
    cursor: Cursor
    torn: bytes = b""
    whole: bool = True  # False: ``records`` continue the cursor the read started from
    extra: dict[str, Any] = field(default_factory=dict)


class HistoryStore(ABC):
    """Histories by workflow id: create, read (incrementally), append under a lock."""

    @abstractmethod
    def workflow_ids(self) -> list[str]:
        """Every workflow that has a history, sorted."""

    @abstractmethod
    def create(self, workflow_id: str, first: dict[str, Any], more: Sequence[dict[str, Any]] = ()) -> None:
        """Make a workflow whose history holds ``first`` (seq 1) and then ``more`` (seq 2, ...),
        all or nothing; WorkflowExists if the id is taken."""

    @abstractmethod
    def read(self, workflow_id: str, since: Union[Cursor, None] = None) -> Chunk:
        """The history, or only what follows ``since`` when the history still extends it.

        WorkflowNotFound if there is none; HistoryCorruptError if it is damaged.
        """

    @abstractmethod
    def append(self, workflow_id: str, after: Chunk, records: list[dict[str, Any]]) -> Cursor:
        """Append ``records`` right after what ``after`` read (the caller holds the lock)."""

    @abstractmethod
    def lock(self, workflow_id: str) -> AbstractContextManager:
        """The workflow's append lock."""

    @abstractmethod
    def changed(self, workflow_id: str, cursor: Cursor) -> bool:
        """False only if the history is provably still what ``cursor`` saw (a stat, no read)."""
