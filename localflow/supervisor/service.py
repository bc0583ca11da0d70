"""`lf supervise`: one supervisor per var/, driving every workflow until stopped.

Start: take var/supervisor.lock (or say who holds it and fail), record who we
are in var/supervisor.json, sweep *.tmp leftovers, register the flows present,
and reconcile every unfinished workflow: orphaned activity processes are killed
and retried, overdue timers fire, the rest continues.

Loop: wait for a hint (watchdog), a due timer, or the rescan period; debounce;
reconcile what changed; process the drop folder; start due schedule slots
(localflow/schedules.py, then a wake-up at the next slot). A periodic rescan catches
whatever the filesystem events missed. Stop (Ctrl-C / SIGTERM): stop
watching, stop running attempts (recorded as interrupted, retried at the next
start), release the lock.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Union

from filelock import FileLock, Timeout

from localflow.engine import Engine
from localflow.errors import LocalFlowError, StorageError, SupervisorRunning, UnsafePath, WorkflowNotFound
from localflow.present import describe
from localflow.store import safe, summaries
from localflow.store.atomic import remove, storage_error, sweep_tmp, write_atomic
from localflow.store.creation import sweep_staging
from localflow.supervisor.defaults import DEFAULT_RESCAN_S
from localflow.supervisor.dropfolder import DropFolder
from localflow.listing import note_settled
from localflow.schedules import Scheduler
from localflow.runner.subprocess_runner import Runner
from localflow.supervisor.executor import Executor
from localflow.supervisor.loop import drive
from localflow.supervisor.watch import Hints, WatchdogWarnings, observer_alive, start_observer, stop_observer


class ExecutorSlot:
    """The right to execute activities in a var/: held by a supervisor or a driving `lf run`."""

    def __init__(self, engine: Engine, role: str) -> None:
        self.engine = engine
        self.role = role
        self._lock = _slot_lock(engine)

    def acquire(self) -> None:
        self.engine.ensure_layout()
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SupervisorRunning(self.engine.display(self.engine.paths.supervisor_lock),
                                    holder(self.engine, wait_s=_HOLDER_WAIT_S)) from None
        except OSError as exc:
            raise _lock_error(self.engine, exc) from None
        info = {"pid": os.getpid(), "role": self.role, "since": self.engine.clock()}
        try:
            write_atomic(self.engine.paths.supervisor_info, json.dumps(info).encode(), self.engine.paths.var_dir)
        except LocalFlowError:
            self._lock.release()
            raise

    def release(self) -> None:
        try:
            remove(self.engine.paths.supervisor_info, self.engine.paths.var_dir)
        except LocalFlowError:
            pass
        self._lock.release()


_HOLDER_WAIT_S = 2.0


def _slot_lock(engine: Engine) -> FileLock:
    safe.check(engine.paths.var_dir, engine.paths.supervisor_lock)
    return FileLock(str(engine.paths.supervisor_lock), mode=0o600)


def _lock_error(engine: Engine, exc: OSError) -> LocalFlowError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return UnsafePath(str(engine.paths.supervisor_lock), "it is a symlink or not a regular file")
    return storage_error("lock", engine.paths.supervisor_lock, exc)


def holder(engine: Engine, wait_s: float = 0.0) -> str:
    """Who holds the executor slot, as recorded in var/supervisor.json.

    The holder writes that file just after it takes the lock, so a caller that lost
    the race may look a moment too early: it waits up to ``wait_s`` for the file.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(safe.read_bytes(engine.paths.var_dir, engine.paths.supervisor_info))
            return f"{info.get('role', 'supervisor')} pid {info.get('pid')}"
        except (OSError, ValueError, LocalFlowError, AttributeError):
            if time.monotonic() >= deadline:
                return "pid unknown"
            time.sleep(0.05)


def supervisor_running(engine: Engine) -> Union[str, None]:
    """Who holds the executor slot, or None if nobody does."""
    if not engine.paths.var_dir.is_dir():
        return None
    lock = _slot_lock(engine)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return holder(engine, wait_s=_HOLDER_WAIT_S)
    except OSError as exc:
        raise _lock_error(engine, exc) from None
    lock.release()
    return None


class Supervisor:
    def __init__(self, engine: Engine, log: Callable[[str], None], rescan_s: float = DEFAULT_RESCAN_S,
                 grace_s: float = 5.0, workers: int = 0, max_activities: int = 0,
                 runner: Union[Runner, None] = None) -> None:
        self.engine = engine
        self.paths = engine.paths
        self.log = log
        self.rescan_s = rescan_s
        # runner: where attempts run (default: this machine; runner/dask_runner.py for a cluster)
        self.executor = Executor(engine, on_events=self._log_events, log=log, grace_s=grace_s, workers=workers,
                                 max_activities=max_activities, runner=runner)
        self.drops = DropFolder(engine, log, on_started=self.executor.mark_dirty)
        self.schedules = Scheduler(engine, log, on_started=self.executor.mark_dirty)  # var/schedules/
        self._dropped: set[Path] = set()
        self._drop_guard = threading.Lock()
        self._finished: set[str] = set()
        self._broken: dict[str, str] = {}
        self._storage_retry_ms: dict[str, int] = {}  # a storage error: reconciled again after this long
        self._held: set[str] = set()  # imported, not released: said once, then quiet (executor: a stat per hint)
        self._hints: Union[Hints, None] = None
        self._observer = None  # the watchdog observer; None while it cannot be started (the rescan polls)
        self._observer_restarted = 0  # clock ms of the last restart of a dead observer
        self._rescan_now = False  # set from watchdog's thread when it warns (events lost): rescan on the next pass

    def run(self, stop: threading.Event) -> None:
        slot = ExecutorSlot(self.engine, "supervisor")
        slot.acquire()
        warnings = WatchdogWarnings(self.log, self._on_watch_trouble)
        try:
            warnings.attach()
            for directory in (self.paths.timers_dir, self.paths.registry_dir):
                sweep_tmp(directory)
            for name in sweep_staging(self.paths.workflows_dir):
                self.log(f"removed {name}: a workflow creation that never finished")
            self.schedules.prepare()  # var/schedules/ exists before the observer looks for it
            self._hints = Hints(self.paths, self.executor.hint, self._on_marker, self._on_drop, self.log,
                                on_schedule=self._on_schedule)
            self._observer = start_observer(self.paths, self._hints)
            warm = getattr(self.executor.runner, "warm", None)
            if warm is not None:
                warm()  # the worker pool for `call` steps starts with the supervisor
            self._scan_drops(startup=True)
            self._rescan(startup=True)
            self.schedules.rescan()
            # Said once the startup scan is done: a flow dropped from now on is new, and starts.
            self.log(f"supervising {self.engine.display(self.paths.var_dir)} in {self.paths.home} (pid {os.getpid()})")
            drive(self.executor, self._reconcile, until=stop.is_set, every_pass=self._every_pass,
                  periodic=self._periodic, period_s=self.rescan_s)
        finally:
            if self._observer is not None:
                stop_observer(self._observer)
            warnings.detach()
            self.log("stopping: interrupting running activities")
            self.executor.stop()
            slot.release()
            self.log("stopped")

    # --- hints ----------------------------------------------------------------

    def _on_marker(self, workflow_id: str, fire_at_ms: int) -> None:
        self.executor.schedule_wakeup(workflow_id, fire_at_ms)

    def _on_drop(self, path: Path, moved: bool = False) -> None:
        if moved:
            self.drops.note_arrival(path)  # renamed into flows/: complete as it is now
        with self._drop_guard:
            self._dropped.add(path)
        self.executor.mark_dirty("")  # wake the loop; "" is not a workflow id

    def _on_schedule(self, name: str) -> None:
        self.schedules.hint(name)
        self.executor.mark_dirty("")  # wake the loop

    def _on_watch_trouble(self) -> None:
        self._rescan_now = True
        self.executor.mark_dirty("")  # wake the loop

    def _every_pass(self) -> None:
        self._check_observer()
        if self._rescan_now:
            self._rescan_now = False
            self._periodic()
        self._process_drops()
        self._process_schedules()

    def _check_observer(self) -> None:
        """A dead observer delivers no hint, and says nothing: look at it every pass (a few attribute reads).
        A new one is started and everything rescanned at once; one that keeps dying is retried only at each
        rescan, which polls meanwhile."""
        if self._observer is None or observer_alive(self._observer):
            return
        stop_observer(self._observer)
        self._observer = None
        now = self.engine.clock()
        if now - self._observer_restarted < self.rescan_s * 1000:
            self.log(f"watch: the filesystem observer stopped again; retrying at each rescan ({self.rescan_s:g}s)")
            return
        self._observer_restarted = now
        if self._restart_observer():
            self.log("watch: the filesystem observer had stopped; restarted it, rescanning for what it missed")
        else:
            self.log(f"watch: the filesystem observer stopped and cannot be restarted; the rescan every "
                     f"{self.rescan_s:g}s catches up meanwhile")
        self._periodic()

    def _restart_observer(self) -> bool:
        try:
            self._observer = start_observer(self.paths, self._hints)
        except Exception:  # noqa: BLE001 - out of inotify watches or instances...: the rescan polls meanwhile
            return False
        return True

    def _process_schedules(self) -> None:
        """Start due schedule slots, then sleep until the next one (a wake-up; the file is the record)."""
        try:
            self.schedules.process()
        except Exception as exc:  # never stops the supervisor (each schedule already guards itself)
            self.log(f"schedules: {exc}")
        next_at = self.schedules.next_at()
        if next_at is not None:
            self.executor.schedule_wakeup("", next_at)

    def _process_drops(self) -> None:
        with self._drop_guard:
            dropped, self._dropped = self._dropped, set()
        for path in sorted(dropped):
            self._drop(path)
        for path, start_new in self.drops.due():
            self._drop(path, start_new)
        look_at = self.drops.next_look()
        if look_at is not None:
            # A fresh file written in place is taken once settled: wake up then, event or not.
            self.executor.schedule_wakeup("", look_at)

    def _drop(self, path: Path, start_new: bool = True) -> None:
        try:
            self.drops.handle(path, start_new)
        except Exception as exc:  # a vanished or unreadable file must not stop the supervisor
            self.log(f"drop folder: {path.name}: {exc}")

    def _scan_drops(self, startup: bool = False) -> None:
        try:
            self.drops.recover(startup)  # requests claimed before a crash (or left by a refused move)
        except Exception as exc:  # never stops the supervisor; the next rescan tries again
            self.log(f"drop folder: {exc}")
        if self.paths.flows_dir.is_dir():
            for path in sorted(self.paths.flows_dir.iterdir()):
                self._drop(path, start_new=not startup)

    # --- workflows ------------------------------------------------------------

    def _periodic(self) -> None:
        if self._observer is None and self._hints is not None and self._restart_observer():
            self.log("watch: the filesystem observer is running again")
        self._rescan()
        self._scan_drops()
        self.schedules.rescan()

    def _rescan(self, startup: bool = False) -> None:
        """Catch what file events missed: at start every unfinished workflow is reconciled (orphans,
        overdue timers); later a workflow whose history did not change costs a stat."""
        ids = self.engine.workflow_ids()
        known = set(ids)
        if startup:  # finished workflows whose summary says nothing is left: not even read
            self._finished |= summaries.settled(self.paths.var_dir, self.paths.workflows_dir, ids)
        for workflow_id in known - self._finished:
            (self.executor.mark_dirty if startup else self.executor.hint)(workflow_id)
        for marker in self.executor.wakeups.load():  # the durable schedule, re-read
            if marker.workflow_id not in known:
                self.executor.wakeups.clear(marker)

    def _reconcile(self, workflow_id: str) -> None:
        if not workflow_id:
            return
        try:
            state = self.executor.reconcile(workflow_id)
        except WorkflowNotFound:  # deleted (`lf delete`, `lf prune`): nothing left to do for it, said once
            self._finished.discard(workflow_id)
            self.executor.wakeups.forget_workflow(workflow_id)
            if self._broken.get(workflow_id) != "gone":
                self._broken[workflow_id] = "gone"
                self.log(f"{workflow_id}: its history is gone (deleted); nothing more to do for it")
            return
        except Exception as exc:  # one broken workflow must never stop the others
            text = str(exc) if isinstance(exc, LocalFlowError) else f"internal error: {exc!r} (please report it)"
            if self._broken.get(workflow_id) != text:
                self._broken[workflow_id] = text
                self.log(f"{workflow_id}: cannot continue: {text}")
            if isinstance(exc, (StorageError, OSError)):  # the disk, not the workflow: try again later
                delay = min(self._storage_retry_ms.get(workflow_id, 500) * 2, 60_000)
                self._storage_retry_ms[workflow_id] = delay
                self.executor.schedule_wakeup(workflow_id, self.engine.clock() + delay)
            return
        self._broken.pop(workflow_id, None)
        self._storage_retry_ms.pop(workflow_id, None)
        if not state.terminal:
            self._finished.discard(workflow_id)  # (an id deleted, then started again: rescans look at it)
        if state.held and not state.terminal and workflow_id not in self._held:
            self._held.add(workflow_id)
            self.log(f"{workflow_id}: imported and held: nothing of it runs here until `lf resume {workflow_id}`")
        elif not state.held and workflow_id in self._held:
            self._held.discard(workflow_id)
            self.log(f"{workflow_id}: released; carrying on")
        if state.terminal and not self.executor.running_in(workflow_id) and workflow_id not in self._finished:
            self._finished.add(workflow_id)
            note_settled(self.engine, workflow_id, state)

    def _log_events(self, workflow_id: str, events: list) -> None:
        state = self.engine.cached_state(workflow_id)  # its pinned flow names statements in the flow's words
        flow = state.flow if state is not None else None
        for event in events:
            self.log(f"{workflow_id}  {describe(event, flow)}")
