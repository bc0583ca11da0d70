"""The executor: carries out what histories ask for, and records what comes back.

Shared by ``lf supervise`` (every workflow) and ``lf run`` (one workflow). It
keeps no truth of its own: ``reconcile(id)`` re-reads the history and makes the
world match it.

- an attempt that is pending and not running here: if a dead executor started it
  (the history names its pid), the orphan's process group is killed and the
  attempt recorded as ``interrupted`` (decide retries it at once); if it never
  started, it is started now;
- a pending timer gets its marker file and a wake-up; an overdue one fires
  (``TimerFired`` is appended under the lock only if the timer is still pending,
  so racing parties fire it once);
- markers of fired timers, and of finished workflows, are removed;
- an attempt the workflow no longer wants (a race's loser, a failing or
  cancelled workflow) is stopped: SIGTERM to its group, grace, SIGKILL;
- a child flow the history started is created (id ``<parent>.<step>``) and its
  outcome is recorded in the parent when it ends; a parent that no longer
  wants a child cancels it; a terminated parent terminates its running children;
- a terminated workflow's running attempts are killed (recorded as ``cancelled``) and its
  timers never fire.

Each attempt runs on its own thread, which starts it (a process, or a call handed to
the worker pool), appends ActivityStarted (not for a call: see docs/design.md, "The
worker protocol") and then the outcome, and carries out what the outcome led to.
Carrying out (starting attempts, writing timer markers) happens one state at a time,
never from a state older than one already carried out. Attempts that wait for room
under a concurrency bound are admitted by ``supervisor/admission.py``.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Iterable, Union

from localflow.core import events as ev
from localflow.core.state import TERMINATED, Attempt, StepState, WorkflowState
from localflow.engine import Engine, Transaction
from localflow.errors import (InvalidValue, LocalFlowError, PayloadTooLarge, StorageError, WorkflowExists,
                              WorkflowFinished, WorkflowNotFound)
from localflow.runner.local import LocalRunner
from localflow.runner.proctree import attempt_tag
from localflow.runner.subprocess_runner import (
    DEFAULT_GRACE_S,
    AttemptSpec,
    Running,
    Runner,
    spawn_failure,
)
from localflow.store import summaries
from localflow.store.paths import TimerMarker
from localflow.supervisor.admission import Admission
from localflow.supervisor.heartbeats import HeartbeatRecorder, final_heartbeat
from localflow.supervisor.home_locks import HomeLocks, Request
from localflow.supervisor.wakeups import Wakeups

EventSink = Callable[[str, list], None]
_STORAGE_RETRIES_S = (0.2, 1.0, 5.0)  # an outcome whose append hit a storage error is tried again after these
_STORAGE_LATER_MS = 2_000  # then by the loop (and the supervisor's backoff when that fails too)


def _storage_error(problems: list) -> bool:
    """Did recording fail because of the disk (full, an I/O error), not because of the value?"""
    return bool(problems) and isinstance(problems[-1], (StorageError, OSError)) \
        and not isinstance(problems[-1], (PayloadTooLarge, InvalidValue))
Log = Callable[[str], None]
_Key = tuple  # (workflow id, step, attempt number)


class Executor:
    def __init__(
        self,
        engine: Engine,
        on_events: Union[EventSink, None] = None,
        log: Union[Log, None] = None,
        grace_s: float = DEFAULT_GRACE_S,
        runner: Union[Runner, None] = None,
        workers: int = 0,
        max_activities: int = 0,
        wakeups: Union[Wakeups, None] = None,
        waiter: Union[Callable[[threading.Condition, float, float], object], None] = None,
        lock_grantor: bool = True,
    ) -> None:
        self.engine = engine
        engine.verify = True  # what executes workflows replays each history before deciding for it
        self.paths = engine.paths
        # `run` steps as subprocesses, `call` steps on a pool of ``workers`` Python processes
        self.runner = runner if runner is not None else LocalRunner(engine.paths.home, workers)
        self.admission = Admission(max_activities)  # concurrency bounds (supervisor/admission.py)
        self.home_locks = HomeLocks()  # `lock NAME global:` (supervisor/home_locks.py)
        self.lock_grantor = lock_grantor  # False: never grants them (`lf terminate`'s executor)
        self._detached_seen: set[str] = set()  # detached children known to exist
        # An attempt's own thread carries out what its outcome led to (one transaction less a step);
        # a harness that runs one thread at a time (tests/golden/make_histories.py) turns it off.
        self.carry_out_from_attempts = True
        self._carrying = threading.RLock()
        # (started_at, last_seq) of the state last carried out, by workflow: a workflow deleted and started
        # again under its id (`lf delete`, then `lf start --id`) begins anew, at a lower seq
        self._carried: dict[str, tuple[int, int]] = {}
        self.wakeups = wakeups if wakeups is not None else Wakeups(engine.paths)
        # How to wait for work: the clock's own wait when it has one (a virtual clock skips ahead).
        self._waiter = waiter or getattr(engine.clock, "wait", None) or (lambda cond, seconds, _: cond.wait(seconds))
        self.on_events = on_events or (lambda workflow_id, events: None)
        self.log = log or (lambda message: None)
        self.grace_s = grace_s
        self._guard = threading.Lock()
        self._running: dict[_Key, Union[Running, None]] = {}
        self._cancel_when_started: dict[_Key, tuple[str, str]] = {}  # cancels that came while it was spawned
        self._unrecorded: dict[_Key, list] = {}  # outcomes a storage error kept out of the history, for now
        self._threads: list[threading.Thread] = []
        self._wake = threading.Condition()
        self._dirty: set[str] = set()  # must be reconciled
        self._hinted: set[str] = set()  # reconciled only if its history changed (file events, rescans)
        self._launched: set[_Key] = set()  # attempts this executor started: never start one twice
        self._stopping = threading.Event()
        # Attempts scheduled from now on were scheduled by this executor (it holds the slot), so
        # only older ones can have been spawned by a crashed executor that never recorded the pid.
        self._since = engine.clock()
        # Imported workflows not yet released (``state.held``), with the (inode, size, mtime) their
        # history had when last seen held: until it changes, a hint costs one stat.
        self._held: dict[str, tuple] = {}

    # --- hints --------------------------------------------------------------

    def mark_dirty(self, workflow_id: str) -> None:
        """Reconcile ``workflow_id`` on the next pass ("" only wakes the loop)."""
        with self._wake:
            self._dirty.add(workflow_id)
            self._wake.notify_all()

    def hint(self, workflow_id: str) -> None:
        """Something may have changed ``workflow_id``: reconciled on the next pass if its history did."""
        with self._wake:
            self._hinted.add(workflow_id)
            self._wake.notify_all()

    def wait_for_work(self, max_wait_s: float) -> set[str]:
        """Block until there is work, a wake-up is due, or ``max_wait_s`` passes; returns what to reconcile.

        No fixed debounce: hints that arrive while a pass runs are coalesced into the next
        one, and a hinted workflow whose history this process already folded costs a stat.
        """
        with self._wake:
            to_next = self._seconds_to_next_wakeup()
            if not (self._dirty or self._hinted) and to_next > 0:
                # A virtual clock may skip ahead to the next wake-up only when nothing else can
                # happen first: never over a running attempt (it reports as soon as it ends).
                self._waiter(self._wake, min(max_wait_s, to_next), float("inf") if self.busy else to_next)
            dirty, self._dirty = self._dirty, set()
            hinted, self._hinted = self._hinted, set()
        dirty |= self.wakeups.due(self.engine.clock())
        dirty |= {w for w in hinted - dirty if w and self._changed(w)}
        dirty.discard("")
        return dirty

    def _changed(self, workflow_id: str) -> bool:
        held = self._held.get(workflow_id)
        if held is not None:
            return _stamp(self.paths.history(workflow_id)) != held
        try:
            return self.engine.changed(workflow_id)
        except LocalFlowError:
            return True

    def _seconds_to_next_wakeup(self) -> float:
        at = self.wakeups.next_at()
        if at is None:
            return float("inf")
        return max(0.0, (at - self.engine.clock()) / 1000)

    @property
    def busy(self) -> bool:
        with self._guard:
            return bool(self._running)

    def running_keys(self) -> list:
        """(workflow id, step, attempt) of every attempt whose thread has not finished."""
        with self._guard:
            return list(self._running)

    def running_in(self, workflow_id: str) -> bool:
        with self._guard:
            return any(key[0] == workflow_id for key in self._running)

    # --- reconcile ----------------------------------------------------------

    def reconcile(self, workflow_id: str) -> WorkflowState:
        """Bring one workflow forward and make the world match its history."""
        cached = self.engine.cached_state(workflow_id)
        if cached is None or cached.held:  # (held comes only with an import, which creates the workflow)
            held = self._held_state(workflow_id)
            if held is not None:
                return held
        now = self.engine.clock()
        remote = self._kill_remote_orphans_first(workflow_id)  # (a cluster's, over the network: not under the lock)
        tx = self.engine.transact(workflow_id, lambda state: self._recover(state, now, remote))
        if tx.appended:
            self.on_events(workflow_id, tx.appended)
        if tx.state.held:  # (a workflow imported again under an id this process knew unheld)
            self._held_state(workflow_id)
            return tx.state
        self._carry_out(workflow_id, tx.state)
        return tx.state

    def _held_state(self, workflow_id: str) -> Union[WorkflowState, None]:
        """The state of a held workflow (imported, not released), else None.

        A held workflow belongs to another machine: nothing of it is done here and nothing is
        recorded. Its recorded pids are not looked for or killed, no timer gets a marker or fires,
        no child is started (a cancel goes through ``lf cancel``'s own transaction). Read without
        the lock or a transaction, so its history stays byte for byte what was imported.
        """
        stamp = _stamp(self.paths.history(workflow_id))  # before the read: a later change shows in the next stat
        state = self.engine.state_of(workflow_id)
        if not state.held:
            self._held.pop(workflow_id, None)
            return None
        if stamp is not None:
            self._held[workflow_id] = stamp
        for timer in state.timers.values():
            self.wakeups.clear(TimerMarker(timer.fire_at, workflow_id, timer.timer))
        return state

    def _recover(self, state: WorkflowState, now: int, remote: Union[dict, None] = None) -> list[ev.Event]:
        """World events the history is missing: lost attempts, fired timers, finished children."""
        found: list[ev.Event] = []
        if state.held:
            return found  # another machine's: its pids, timers and children are none of ours
        with self._guard:
            kept = {k: v for k, v in self._unrecorded.items() if k[0] == state.workflow_id}
        for key, events in kept.items():  # outcomes known but not yet written: written now, if still pending
            if state.attempt_pending(key[1], key[2]):
                found.extend(events)
            else:
                with self._guard:
                    self._unrecorded.pop(key, None)
        for step, attempt in state.pending_attempts():
            if self._is_running(state.workflow_id, step, attempt.number) or (state.workflow_id, step, attempt.number) in kept:
                continue
            wanted = state.wanted(state.steps[step])
            name = f"{state.workflow_id}: {step} attempt {attempt.number}"
            if attempt.pid is None and wanted and attempt.scheduled_at >= self._since:
                continue  # scheduled while this executor held the slot: never spawned by another
            # every process of the attempt, by its tag and (if the history names it) its session
            killed = self._kill_orphans(state.workflow_id, step, attempt, remote)
            processes = f"{killed} process{'es' if killed != 1 else ''}"
            if attempt.pid is None and killed:  # spawned, but a crash came before its pid was recorded
                self.log(f"{name} was started but its pid never recorded; killed {processes} of it")
            if attempt.pid is not None:
                where = f" on Dask worker {attempt.worker}" if attempt.worker else ""
                what = (f"killed {processes} of it{where}" if killed
                        else f"its process {attempt.pid}{where} was gone, nothing of it left" if killed is not None
                        else f"it ran on Dask worker {attempt.worker}, which cannot be reached now (its task "
                             f"stops itself once its supervisor's connection to the scheduler closes)")
                self.log(f"{name} was orphaned; {what}")
                kind, message = ("interrupted", f"its executor stopped while it ran ({what})") if wanted else (
                    "cancelled", f"cancelled ({what})")
            elif not wanted:
                kind, message = "cancelled", "cancelled before it started"
            else:
                continue
            found.append(ev.ActivityFailed(
                step=step, attempt=attempt.number, duration_ms=max(0, now - (attempt.started_at or attempt.scheduled_at)),
                error={"kind": kind, "message": message, "exit_code": None},
            ))
        fired = [ev.TimerFired(timer=t.timer) for t in state.pending_timers()
                 if t.fire_at <= now and state.timer_wanted(t)]
        skipped = getattr(self.engine.clock, "skipped_since", None)  # a virtual clock's jumps, if any
        if fired and skipped is not None and (skipped_ms := skipped(state.updated_at)) > 0:
            found.append(ev.TimeSkipped(skipped_ms=skipped_ms))  # the history says the wait was skipped
        found.extend(fired)
        for child in state.pending_children():
            outcome = self._child_outcome(child)
            if outcome is not None:
                found.append(outcome)
        return found

    def _kill_orphans(self, workflow_id: str, step: str, attempt: Attempt,
                      remote: Union[dict, None] = None) -> Union[int, None]:
        """Kill what is left of an attempt a crashed executor started: how many processes (None: it ran
        on a Dask worker that cannot be reached from here; its pid is that machine's, never signalled here).

        On a cluster the remote part was done before the lock was taken (``remote``, from
        ``_kill_remote_orphans_first``); an attempt that became an orphan in between is killed here."""
        cluster = getattr(self.runner, "kill_remote_orphans", None)  # runner/dask_runner.py
        local = None
        if attempt.worker is None:
            local = self.runner.kill_orphans(attempt_tag(self.paths.home, workflow_id, step, attempt.number),
                                             attempt.pid, attempt.proc_start)
            if cluster is None or attempt.pid is not None:
                return local  # (a pid and no worker: it ran here)
        if cluster is None:
            return None
        key = (workflow_id, step, attempt.number)
        if remote is not None and key in remote:
            far = remote[key]
        else:
            far = cluster([_remote_orphan(workflow_id, step, attempt)])[0]
        if local is None:
            return far
        return local + (far or 0)

    def _kill_remote_orphans_first(self, workflow_id: str) -> Union[dict, None]:
        """On a cluster: kill the remote leftovers of this workflow's orphaned attempts, all at once and
        without holding its lock; {(workflow, step, attempt): processes killed, or None}."""
        cluster = getattr(self.runner, "kill_remote_orphans", None)
        if cluster is None:
            return None
        state = self.engine.cached_state(workflow_id)
        if state is None:
            try:
                state = self.engine.state_of(workflow_id)
            except LocalFlowError:
                return None  # (the transaction says what is wrong with it)
        if state.held:
            return None
        orphans = []
        with self._guard:
            unrecorded = set(self._unrecorded)
        for step, attempt in state.pending_attempts():
            if self._is_running(workflow_id, step, attempt.number) or (workflow_id, step, attempt.number) in unrecorded:
                continue
            if attempt.worker is not None or (attempt.pid is None and attempt.scheduled_at < self._since):
                orphans.append(((workflow_id, step, attempt.number), _remote_orphan(workflow_id, step, attempt)))
        if not orphans:
            return {}
        return dict(zip([k for k, _ in orphans], cluster([o for _, o in orphans])))

    def _child_outcome(self, child: StepState) -> Union[ev.Event, None]:
        try:
            child_state = self.engine.state_of(child.child_id)
        except WorkflowNotFound:
            return None
        except LocalFlowError as exc:
            error = {"kind": "child", "message": str(exc)}
            return ev.ChildFailed(step=child.step, child_id=child.child_id, error=error)
        if child_state.status == "completed":
            return ev.ChildCompleted(step=child.step, child_id=child.child_id, result=child_state.result)
        if child_state.terminal:
            error = dict(child_state.error or {})
            error.setdefault("message", child_state.status)
            error["status"] = child_state.status
            return ev.ChildFailed(step=child.step, child_id=child.child_id, error=error)
        return None

    def _carry_out(self, workflow_id: str, state: WorkflowState) -> None:
        """Make the world match ``state``: one carry-out at a time, and never from a state older than one
        already carried out (the loop and attempt threads each carry out the state they recorded, and
        an older one would still show a finished attempt as pending: it would run again)."""
        with self._carrying:
            started, done = self._carried.get(workflow_id, (state.started_at, 0))
            if started == state.started_at and state.last_seq < done:
                return
            self._carried.pop(workflow_id, None)
            self._carried[workflow_id] = (state.started_at, state.last_seq)
            if len(self._carried) > 4096:
                self._carried.pop(next(iter(self._carried)))
            self._carry_out_now(workflow_id, state)

    def _carry_out_now(self, workflow_id: str, state: WorkflowState) -> None:
        with self._guard:  # kept outcomes this state holds now are written: forget them
            for key in [k for k in self._unrecorded if k[0] == workflow_id and not state.attempt_pending(k[1], k[2])]:
                del self._unrecorded[key]
        for timer in state.timers.values():
            marker = TimerMarker(timer.fire_at, workflow_id, timer.timer)
            if state.timer_wanted(timer):
                self.wakeups.set(marker)
            else:
                self.wakeups.clear(marker)
        self._wake_up_loop()
        pending = state.pending_attempts()
        with self._guard:  # forget attempts this state shows are over
            keep = {(workflow_id, step, a.number) for step, a in pending}
            self._launched = {k for k in self._launched if k[0] != workflow_id or k in keep}
        for step, attempt in pending:
            key = (workflow_id, step, attempt.number)
            wanted = state.wanted(state.steps[step])
            if self._is_running(workflow_id, step, attempt.number):
                if not wanted:
                    self._cancel_running(workflow_id, step, attempt.number, state.status == TERMINATED)
            elif attempt.pid is None and wanted and key not in self._launched:
                self._admit(state, step, attempt)
            elif not wanted:
                # never started here and no longer wanted: the next pass records it as cancelled, and
                # if it waited for room, the attempts behind it no longer wait for it
                if self.admission.is_waiting(key):
                    self.admission.release(key)
                    self._grant_waiting()
                self.mark_dirty(workflow_id)
        for child in state.pending_children():
            self._carry_out_child(state, child)
        for child in state.detached_children():
            self._start_detached(state, child)
        self.home_locks.update(state)
        self._grant_home_locks()
        if state.terminal and state.parent and not state.parent.get("detached"):
            self.mark_dirty(state.parent["workflow_id"])

    def _start_detached(self, state: WorkflowState, child: StepState) -> None:
        """Create a child flow its parent started detached, once: nothing else links the two."""
        if child.child_id in self._detached_seen or state.held:
            return
        try:
            self.engine.state_of(child.child_id)
        except WorkflowNotFound:
            try:
                self.engine.start(child.child_flow, child.child_input, child.child_id,
                                  parent={"workflow_id": state.workflow_id, "step": child.step, "detached": True})
            except WorkflowExists:
                pass
            except LocalFlowError as exc:
                self.log(f"{state.workflow_id}: could not start detached child flow {child.child_flow} "
                         f"as {child.child_id}: {exc}")
                return
            self.log(f"{state.workflow_id}: started detached child workflow {child.child_id} ({child.child_flow})")
            self.mark_dirty(child.child_id)
        except LocalFlowError:
            pass  # it exists, damaged: `lf list` shows it
        self._detached_seen.add(child.child_id)

    def _scan_home_locks(self) -> None:
        """Read every unfinished workflow's home-wide lock requests once, before the first grant."""
        ids = self.engine.workflow_ids()
        for workflow_id in sorted(set(ids) - summaries.settled(self.paths.var_dir, self.paths.workflows_dir, ids)):
            try:
                self.home_locks.update(self.engine.state_of(workflow_id))
            except LocalFlowError:
                continue  # a damaged history holds nothing it could show
        self.home_locks.complete = True

    def _grant_home_locks(self) -> None:
        """Record LockGranted for each home-wide lock that is free, to the first in line."""
        if not self.lock_grantor or not self.home_locks.wanted():
            return
        if not self.home_locks.complete:
            self._scan_home_locks()
        for request in self.home_locks.grants():
            self.home_locks.mark_granted(request)

            def if_still_waiting(state: WorkflowState, request: Request = request) -> list[ev.Event]:
                current = next((r for r in state.live_locks() if (r.frame, r.at) == (request.frame, request.at)), None)
                if current is None or current.granted:
                    return []
                return [ev.LockGranted(frame=request.frame, at=request.at, lock=request.lock)]

            self._append(request.workflow_id, if_still_waiting)
            self.mark_dirty(request.workflow_id)

    def _child_failed(self, workflow_id: str, child: StepState, error: dict) -> None:
        failed = ev.ChildFailed(step=child.step, child_id=child.child_id, error=error)

        def if_still_pending(state: WorkflowState) -> list[ev.Event]:
            current = state.steps.get(child.step)
            return [failed] if current is not None and current.pending else []

        self._append(workflow_id, if_still_pending)
        self.mark_dirty(workflow_id)  # what it decided next is carried out by the next reconcile

    def _cancel_running(self, workflow_id: str, step: str, number: int, terminated: bool = False) -> None:
        why = ("cancelled", "killed: the workflow was terminated" if terminated
               else "cancelled: the workflow no longer needs it")
        key = (workflow_id, step, number)
        with self._guard:
            running = self._running.get(key)
            if running is None and key in self._running:  # still being started: cancelled once it is
                self._cancel_when_started[key] = why
        if running is not None:
            running.cancel(*why)

    def _carry_out_child(self, state: WorkflowState, child: StepState) -> None:
        """Start a child workflow the history asks for, or pass a cancellation down to it."""
        flow, given = child.child_flow, child.child_input
        try:
            child_state = self.engine.state_of(child.child_id)
        except WorkflowNotFound:
            if not state.wanted(child):  # abandoned before it was ever created
                self._child_failed(state.workflow_id, child, {"kind": "cancelled",
                                                              "message": "cancelled before it started"})
                return
            try:
                self.engine.start(flow, given, child.child_id,
                                  parent={"workflow_id": state.workflow_id, "step": child.step})
            except WorkflowExists:
                pass
            except LocalFlowError as exc:
                error = {"kind": "child", "message": f"could not start child flow {flow}: {exc}"}
                self._child_failed(state.workflow_id, child, error)
                return
            self.log(f"{state.workflow_id}: started child workflow {child.child_id} ({flow})")
            self.mark_dirty(child.child_id)
            return
        if state.status == TERMINATED and not child_state.terminal:
            # A terminated parent terminates its running children (Temporal's default parent-close policy)
            try:
                self.engine.terminate(child.child_id, f"its parent {state.workflow_id} was terminated")
            except WorkflowFinished:
                pass  # it ended meanwhile
            self.mark_dirty(child.child_id)
        elif not state.wanted(child) and not child_state.terminal and child_state.cancel_requested is None:
            self.engine.cancel(child.child_id, f"its parent {state.workflow_id} no longer needs it")
            self.mark_dirty(child.child_id)  # our own append: a hint would find nothing changed
        elif not child_state.terminal:
            self.hint(child.child_id)  # a signal or cancel may have reached it from another process

    def schedule_wakeup(self, workflow_id: str, fire_at: int) -> None:
        """Reconcile ``workflow_id`` at ``fire_at`` (ms) even if nothing else happens ("" only wakes)."""
        if self.wakeups.poke(workflow_id, fire_at):
            self._wake_up_loop()

    def _wake_up_loop(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # --- attempts -----------------------------------------------------------

    def _is_running(self, workflow_id: str, step: str, number: int) -> bool:
        with self._guard:
            return (workflow_id, step, number) in self._running

    def _admit(self, state: WorkflowState, step: str, attempt: Attempt) -> None:
        """Start the attempt if its concurrency bounds have room; else it waits (recorded once)."""
        key = (state.workflow_id, step, attempt.number)
        admitted = self.admission.admit(key, attempt.scheduled_at, self.admission.bounds_for(state, step))
        if admitted is True:
            if not self._start(state.workflow_id, step, attempt, waited=attempt.queued_at is not None):
                self.admission.release(key)
            return
        if attempt.queued_at is None:
            queued = ev.ActivityQueued(step=step, attempt=attempt.number, waiting_for=admitted)

            def once(current: WorkflowState) -> list[ev.Event]:  # recorded once, while it is pending
                if not current.attempt_pending(step, attempt.number):
                    return []
                return [queued] if current.steps[step].last.queued_at is None else []

            self._append(state.workflow_id, once)

    def _grant_waiting(self) -> None:
        """Start the waiting attempts that now fit (each still pending and wanted), in their order;
        one that no longer should start gives its room back, and the next ones are looked at again."""
        while granted := self.admission.granted():
            gave_back = False
            for key in granted:
                workflow_id, step, number = key
                started = False
                try:
                    state = self.engine.state_of(workflow_id)
                    current = state.steps.get(step)
                    if current is not None and state.attempt_pending(step, number) and state.wanted(current):
                        started = self._start(workflow_id, step, current.last, waited=True)
                except LocalFlowError as exc:
                    self.log(f"{workflow_id}: {step} attempt {number} could not start: {exc}")
                if not started:
                    self.admission.release(key)
                    gave_back = True
            if not gave_back:
                return

    def _start(self, workflow_id: str, step: str, attempt: Attempt, waited: bool = False) -> bool:
        key = (workflow_id, step, attempt.number)
        with self._guard:  # checked and taken at once: two threads may carry out the same state
            if key in self._launched or key in self._running:
                return False
            self._running[key] = None
            self._launched.add(key)
        spec = AttemptSpec(
            workflow_id=workflow_id,
            step=step,
            attempt=attempt.number,
            argv=list(attempt.argv),
            stdin=attempt.stdin,
            timeout_ms=attempt.timeout_ms,
            cwd=self.paths.home,
            stdin_path=self.paths.attempt_log(workflow_id, step, attempt.number, "in"),
            stdout_path=self.paths.attempt_log(workflow_id, step, attempt.number, "out"),
            stderr_path=self.paths.attempt_log(workflow_id, step, attempt.number, "err"),
            grace_s=self.grace_s,
            var_dir=self.paths.var_dir,
            call=attempt.call,
            heartbeat_ms=attempt.heartbeat_ms,
            heartbeat_details=attempt.handed_details,  # the step's last recorded details (decide put them there)
            on_heartbeat=HeartbeatRecorder(
                lambda events: self._record(workflow_id, step, attempt.number, events), step, attempt.number,
                handed=attempt.handed_details),
            env=attempt.env,
            step_cwd=attempt.cwd,
            secrets=attempt.secrets,
        )
        thread = threading.Thread(target=self._attempt, args=(key, spec, waited),
                                  name=f"lf-{step}-{attempt.number}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return True

    def _attempt(self, key: _Key, spec: AttemptSpec, waited: bool = False) -> None:
        workflow_id, step, number = key
        recorded = None
        try:
            try:
                running = self.runner.start(spec)
            except (OSError, ValueError, LocalFlowError) as exc:  # not found, not executable, a NUL
                outcome = spawn_failure(spec, exc)                  # byte in argv, a symlinked logs/
            else:
                with self._guard:
                    self._running[key] = running
                    cancelled = self._cancel_when_started.pop(key, None)
                if self._stopping.is_set():  # stop() came while it was being spawned
                    running.cancel()
                elif cancelled is not None:  # no longer wanted while it was being spawned
                    running.cancel(*cancelled)
                on_started = getattr(running, "when_started", None)
                if on_started is not None:
                    # (on a cluster: recorded when a worker starts it, with the worker's address, so a crash
                    # leaves the attempt's place in the history: runner/dask_runner.py, docs/cluster.md)
                    on_started(lambda where: self._record(workflow_id, step, number, [ev.ActivityStarted(
                        step=step, attempt=number, pid=where["pid"], pgid=where["pgid"],
                        proc_start=where["proc_start"], worker=where["worker"])]))
                elif spec.call is None or waited:
                    # (a call's worker is ours and dies with this process, and what the call spawns carries
                    # the attempt's tag: nothing to find by pid after a crash, so no append, no fsync;
                    # unless it waited for room: then its start shows when the wait ended)
                    started = ev.ActivityStarted(step=step, attempt=number, pid=running.pid, pgid=running.pgid,
                                                 proc_start=running.proc_start)
                    self._record(workflow_id, step, number, [started])
                outcome = running.wait()
            if outcome.ok:
                done: ev.Event = ev.ActivityCompleted(step=step, attempt=number, result=outcome.result,
                                                      duration_ms=outcome.duration_ms)
            else:
                done = ev.ActivityFailed(step=step, attempt=number, error=outcome.error,
                                         duration_ms=outcome.duration_ms)
            last_beat = final_heartbeat(spec.on_heartbeat)  # the attempt's last details, if not yet recorded
            problems: list[Exception] = []
            recorded = self._record(workflow_id, step, number, [*last_beat, done], problems)
            for delay in _STORAGE_RETRIES_S:  # the disk failed, not the value: the outcome is still known
                if recorded is not None or not _storage_error(problems) or self._stopping.wait(delay):
                    break
                problems.clear()
                recorded = self._record(workflow_id, step, number, [*last_beat, done], problems)
            if recorded is None and _storage_error(problems):
                # Never written, still known: the loop appends it once the disk lets it (``_recover``).
                with self._guard:
                    self._unrecorded[key] = [*last_beat, done]
                self.schedule_wakeup(workflow_id, self.engine.clock() + _STORAGE_LATER_MS)
            elif recorded is None and outcome.ok:
                # the result could not be stored (not JSON-able, too large): a failed attempt instead
                error = {"kind": "output", "message": "the result could not be recorded", "exit_code": None}
                recorded = self._record(workflow_id, step, number, [
                    *last_beat, ev.ActivityFailed(step=step, attempt=number, error=error, duration_ms=outcome.duration_ms)])
            if recorded is not None and recorded.appended and not recorded.state.terminal \
                    and self.carry_out_from_attempts and not self._stopping.is_set():
                # Carry out what the outcome led to (the next step) here, at once, rather than in
                # another transaction of the loop's: its state is the one just recorded. (Before this
                # attempt leaves the running set, so a virtual clock never sees a gap to skip.)
                self._carry_out(workflow_id, recorded.state)
            else:
                recorded = None
        except Exception as exc:  # a thread must never die silently
            self.log(f"{workflow_id}: {step} attempt {number}: could not record its outcome: {exc}")
            recorded = None
        finally:
            with self._guard:
                self._running.pop(key, None)
                self._cancel_when_started.pop(key, None)
            self.admission.release(key)
            if not self._stopping.is_set():
                self._grant_waiting()
            if recorded is None:  # the loop reconciles it (a failed record, the end, a shutdown)
                self.mark_dirty(workflow_id)
            else:
                self._wake_up_loop()  # nothing runs any more, maybe: a virtual clock may move on

    def _record(self, workflow_id: str, step: str, number: int, events: list[ev.Event],
                problems: Union[list, None] = None) -> Union[Transaction, None]:
        def only_if_pending(state: WorkflowState) -> Iterable[ev.Event]:
            return events if state.attempt_pending(step, number) else ()

        return self._append(workflow_id, only_if_pending, problems)

    def _append(self, workflow_id: str, world: Callable[[WorkflowState], Iterable[ev.Event]],
                problems: Union[list, None] = None) -> Union[Transaction, None]:
        """Record world events (a function of the state) and log what got appended; None if it failed
        (and the exception added to ``problems``)."""
        try:
            tx = self.engine.transact(workflow_id, world)
        except (LocalFlowError, ValueError, RecursionError, OSError) as exc:  # a value JSON cannot store, a disk
            self.log(f"{workflow_id}: could not record: {exc!s:.300}")
            if problems is not None:
                problems.append(exc)
            return None
        if tx.appended:
            self.on_events(workflow_id, tx.appended)
        return tx

    # --- shutdown -----------------------------------------------------------

    def stop(self) -> None:
        """Stop every running attempt (TERM, grace, KILL); each is recorded as interrupted."""
        self._stopping.set()
        with self._guard:
            running = [r for r in self._running.values() if r is not None]
        for attempt in running:
            attempt.cancel()
        for thread in list(self._threads):
            thread.join(timeout=self.grace_s + 5)
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()



def _remote_orphan(workflow_id: str, step: str, attempt: Attempt) -> tuple:
    """What a cluster needs to find an orphaned attempt (runner/dask_runner.py ``RemoteOrphan``). A
    ``call``'s pid is a long-lived pool worker on the Dask worker, which may run another attempt by
    now: it is never passed, so only what carries this attempt's tag is killed."""
    from localflow.runner.dask_runner import RemoteOrphan

    pid = None if attempt.call is not None else attempt.pid
    return RemoteOrphan(attempt.worker, workflow_id, step, attempt.number, pid,
                        None if pid is None else attempt.proc_start)


def _stamp(path: os.PathLike) -> Union[tuple, None]:
    """(inode, size, mtime) of a history, or None if it cannot be stat'ed."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
