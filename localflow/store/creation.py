"""Creating a workflow directory so that it appears whole or not at all.

A new workflow is built in a staging directory ``var/workflows/.new-<pid>-<hex>``
(its ``lock`` and its ``history.jsonl`` holding the first event, both fsynced)
and renamed into place as ``var/workflows/<id>``; the rename is atomic, so a
crash, a full disk or a value that cannot be stored never leaves a half-made
workflow behind (ARCHITECTURE rule 3). If the fsync of ``var/workflows`` after the
rename fails, the rename may not be durable and the start is reported as failed, so
the workflow is moved back out of sight and removed (unless something already
appended to it: then the error says it was taken up). Staging names start with a dot, which
no workflow id can, so no reader ever takes them for workflows; leftovers of a
crashed creator are swept by ``sweep_staging``.

Lock files are never deleted (rule 9) except in a staging directory nobody
else can know of. A directory already at the id (made by an older LocalFlow
whose creation crashed) is completed in place under its lock, as before.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Sequence

from localflow import faults
from localflow.errors import LocalFlowError, StorageError, UnsafePath, WorkflowExists
from localflow.store import history, locks, safe
from localflow.store.atomic import fsync_dir, storage_error

STAGING_PREFIX = ".new-"


def create_workflow(paths: Any, workflow_id: str, first: dict[str, Any], more: Sequence[dict[str, Any]] = ()) -> None:
    """Make ``var/workflows/<id>`` holding ``first`` (seq 1) and ``more``; WorkflowExists if the id is taken."""
    target = paths.workflow_dir(workflow_id)
    if _exists(target):
        with locks.hold(paths.lock(workflow_id), anchor=paths.var_dir):
            history.create(paths.history(workflow_id), first, more)
        return
    staging = paths.workflows_dir / f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with safe.directory(paths.var_dir, staging, create=True):
            pass
        safe.write_new(paths.var_dir, staging / "lock", b"")
        history.create(staging / "history.jsonl", first, more)
        size = os.stat(staging / "history.jsonl", follow_symlinks=False).st_size
        if faults.ACTIVE:
            faults.hit("rename", target)
        os.rename(staging, target)
    except OSError as exc:
        _discard(staging)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            _exists(target)  # a symlink says so; a directory means another creator won
            raise WorkflowExists(workflow_id) from None
        raise storage_error("create workflow", target, exc) from exc
    except StorageError as exc:  # named after the workflow, not after its staging directory
        _discard(staging)
        if isinstance(exc.__cause__, OSError):
            raise storage_error("create workflow", target, exc.__cause__) from exc.__cause__
        raise
    except BaseException:
        _discard(staging)
        raise
    try:
        fsync_dir(paths.workflows_dir)
    except OSError as exc:
        # The rename may not be durable, so the start must not be reported: take the workflow out of
        # sight again, as long as nobody took it up in the meantime (nothing appended, nothing run).
        error = storage_error("create workflow", target, exc)
        if not _take_back(paths, workflow_id, size):
            error = StorageError(f"{error}; it was already visible, and has been taken up: see `lf list`")
        raise error from exc


def _take_back(paths: Any, workflow_id: str, size: int) -> bool:
    """Move a just-created workflow out of sight and remove it, if its history is still what was created."""
    aside = paths.workflows_dir / f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with locks.hold(paths.lock(workflow_id), anchor=paths.var_dir):
            if os.stat(paths.history(workflow_id), follow_symlinks=False).st_size != size:
                return False
            os.rename(paths.workflow_dir(workflow_id), aside)
    except (OSError, LocalFlowError):
        return False
    _discard(aside)
    return True


def _exists(target: Path) -> bool:
    """True if something is at ``target``; UnsafePath if it is a symlink or not a directory."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise UnsafePath(str(target), "it is a symlink" if stat.S_ISLNK(mode) else "it is not a directory")
    return True


def _discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def sweep_staging(workflows_dir: Path) -> list[str]:
    """Remove staging directories whose creator process is gone; returns their names."""
    removed = []
    try:
        entries = list(os.scandir(workflows_dir))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(STAGING_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        pid = entry.name[len(STAGING_PREFIX):].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _discard(Path(entry.path))
            removed.append(entry.name)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
