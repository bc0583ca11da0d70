"""Per-workflow append locks: one filelock object per path per process.

filelock's rule is one lock object per path per process; threads of one process
additionally serialise on a ``threading.Lock`` so a thread never re-enters a
hold that another thread owns. Lock files are never deleted by LocalFlow, and
no lock lifetime is used: the append lock must never expire under a writer.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from localflow.errors import LocalFlowError
from localflow.store.atomic import FILE_MODE

LOCK_TIMEOUT_S = 60.0

_registry_guard = threading.Lock()
_registry: dict[str, tuple[threading.Lock, FileLock]] = {}


class LockTimeout(LocalFlowError):
    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        super().__init__(f"{path} stayed locked for {seconds:.0f}s; is another LocalFlow process stuck?")


def _entry(path: Path) -> tuple[threading.Lock, FileLock]:
    key = str(path)
    with _registry_guard:
        entry = _registry.get(key)
        if entry is None:
            entry = (threading.Lock(), FileLock(key, mode=FILE_MODE))
            _registry[key] = entry
        return entry


@contextmanager
def hold(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock at ``path`` (thread- and process-exclusive) for the block."""
    thread_lock, file_lock = _entry(path)
    if not thread_lock.acquire(timeout=timeout):
        raise LockTimeout(path, timeout)
    try:
        try:
            file_lock.acquire(timeout=timeout)
        except Timeout:
            raise LockTimeout(path, timeout) from None
        try:
            yield
        finally:
            file_lock.release()
    finally:
        thread_lock.release()
