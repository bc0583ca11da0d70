"""Per-workflow append locks: ``flock`` on the workflow's ``lock`` file, held for one transaction.

Each hold opens the lock file (no symlink followed anywhere below var/), takes an
exclusive ``flock`` and closes the descriptor at the end, which releases it. ``flock``
locks belong to the open file description, so two holds of the same file exclude each
other whether they come from two processes or two threads of one, and a process that
dies releases its lock with its descriptors. (filelock, which the rest of LocalFlow
uses for the supervisor's lock, takes the same ``flock``, so both interoperate; this is
the hot path of every transaction, where filelock's per-path objects and fork
bookkeeping cost more than the lock itself, and kept one object per workflow forever.)
Lock files are never deleted by LocalFlow, and no lock lifetime is used: the append
lock must never expire under a writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from localflow.errors import LocalFlowError, WorkflowNotFound
from localflow.store import safe
from localflow.store.atomic import FILE_MODE, storage_error

LOCK_TIMEOUT_S = 60.0
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.0005, 0.05


class LockTimeout(LocalFlowError):
    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        super().__init__(f"{path} stayed locked for {seconds:.0f}s; is another LocalFlow process stuck?")


@contextmanager
def hold(path: Path, timeout: float = LOCK_TIMEOUT_S, anchor: Union[Path, None] = None) -> Iterator[None]:
    """Hold the lock at ``path`` (thread- and process-exclusive) for the block.

    Nothing between ``anchor`` (default: the var/ above ``<var>/workflows/<id>/lock``) and
    the lock file may be a symlink (UnsafePath).
    """
    anchor = anchor if anchor is not None else path.parents[2]
    try:
        # read-only: flock needs no write access, and closing a read-only descriptor is no
        # close-after-write event for the supervisor's watcher to wake up for
        fd = safe.open_file(anchor, path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except FileNotFoundError:  # no such workflow directory: nothing is created for it
        raise WorkflowNotFound(path.parent.name) from None
    except OSError as exc:
        raise storage_error("lock", path, exc) from None
    try:
        _acquire(fd, path, timeout)
        yield
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline, pause = time.monotonic() + timeout, _FIRST_PAUSE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EINTR):
                raise storage_error("lock", path, exc) from None
        if time.monotonic() >= deadline:
            raise LockTimeout(path, timeout)
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
