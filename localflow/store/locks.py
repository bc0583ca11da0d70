"""Per-workflow append locks: one filelock object per path per process.

filelock's rule is one lock object per path per process; threads of one process
additionally serialise on a ``threading.Lock`` so a thread never re-enters a
hold that another thread owns. Lock files are never deleted by LocalFlow, and
no lock lifetime is used: the append lock must never expire under a writer.
"""

from __future__ import annotations

import errno
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Union


from localflow.errors import LocalFlowError, UnsafePath
from localflow.store import safe
from localflow.store.atomic import FILE_MODE, storage_error

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_TIMEOUT_S = 60.0

_registry_guard = threading.Lock()
_registry: dict[str, tuple[threading.Lock, "FileLock"]] = {}


class LockTimeout(LocalFlowError):
    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        super().__init__(f"{path} stayed locked for {seconds:.0f}s; is another LocalFlow process stuck?")


def _entry(path: Path) -> tuple[threading.Lock, "FileLock"]:
    from filelock import FileLock  # here, not at the top: read-only commands never lock (15 ms)

    key = str(path)
    with _registry_guard:
        entry = _registry.get(key)
        if entry is None:
            entry = (threading.Lock(), FileLock(key, mode=FILE_MODE))
            _registry[key] = entry
        return entry


@contextmanager
def hold(path: Path, timeout: float = LOCK_TIMEOUT_S, anchor: Union[Path, None] = None) -> Iterator[None]:
    """Hold the lock at ``path`` (thread- and process-exclusive) for the block.

    Nothing between ``anchor`` (default: the var/ above ``<var>/workflows/<id>/lock``)
    and the lock file may be a symlink: filelock opens the path itself, so it is
    checked first, and filelock's own O_NOFOLLOW refusal is reported the same way.
    """
    anchor = anchor if anchor is not None else path.parents[2]
    safe.check(anchor, path)
    thread_lock, file_lock = _entry(path)
    if not thread_lock.acquire(timeout=timeout):
        raise LockTimeout(path, timeout)
    try:
        from filelock import Timeout

        try:
            file_lock.acquire(timeout=timeout)
        except Timeout:
            raise LockTimeout(path, timeout) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(str(path), "it is a symlink or not a regular file") from None
            raise storage_error("lock", path, exc) from None
        try:
            yield
        finally:
            file_lock.release()
    finally:
        thread_lock.release()
