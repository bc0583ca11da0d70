"""Workflow state and the fold that builds it from events (pure).

``evolve(state, event)`` returns a new ``WorkflowState``; one handler per event
type (``functools.singledispatch``, as in eventsourcing's aggregates), and
``fold(events)`` is ``evolve`` over a whole history.

Where the workflow is lives in *frames* (``frames.py``): the live instances of
the flow's blocks, each with its program counter, so deciding costs what is
running now, not what ran before.

Statuses: ``running``, ``completed``, ``failed``, ``cancelled``, ``terminated``, ``nondeterministic``.
A failed workflow keeps a ``checkpoint``, the state just before it began to fail,
which ``WorkflowResumed`` goes back to (``lf resume``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any, Iterable, Mapping, Union

from localflow.core.frozen import replace
from localflow import ir
from localflow.core import events as ev
from localflow.core.frames import (
    ROOT, Frame, advance, frame_at, iteration, jump, keep_rest, open_blocks, open_child, update_frame)
from localflow.errors import FoldError

RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"
TERMINATED = "terminated"  # `lf terminate`: ended at once, without compensation
NONDETERMINISTIC = "nondeterministic"  # not terminal: it can still be cancelled
TERMINAL = (COMPLETED, FAILED, CANCELLED, TERMINATED)
UNDO_PREFIX = "undo:"
STEP_TIMEOUT = "step-timeout"  # the purpose of a step's total (schedule-to-close) timeout timer


@dataclass(frozen=True)
class Attempt:
    number: int
    scheduled_at: int
    argv: tuple = ()
    stdin: Any = None
    timeout_ms: int = 0
    started_at: Union[int, None] = None
    pid: Union[int, None] = None
    pgid: Union[int, None] = None
    proc_start: Union[str, None] = None
    ended_at: Union[int, None] = None
    outcome: Union[str, None] = None  # None while pending, then "completed" or "failed"
    error: Any = None
    result: Any = None
    measured_ms: Union[int, None] = None  # the runner's own measure of the attempt
    call: Any = None  # {"target", "kwargs"} of a call step
    env: Any = None  # the step's evaluated `env` ({name: text}, secrets as references)
    cwd: Any = None  # the step's `cwd` (relative to the home)
    secrets: Any = None  # the secret names its references may name
    heartbeat_ms: Union[int, None] = None  # no heartbeat for this long fails the attempt
    handed_details: Any = None  # the heartbeat details this attempt was given (from earlier attempts)
    heartbeat_details: Any = None  # the last heartbeat details recorded for this attempt
    heartbeat_at: Union[int, None] = None  # when they were recorded
    queued_at: Union[int, None] = None  # waited for room under a concurrency bound, from then
    waiting_for: Union[str, None] = None
    worker: Union[str, None] = None  # the Dask worker it ran on (ActivityStarted.worker); None: this machine

    @property
    def pending(self) -> bool:
        return self.outcome is None

    @property
    def duration_ms(self) -> Union[int, None]:
        if self.measured_ms is not None:
            return self.measured_ms
        start = self.started_at if self.started_at is not None else self.scheduled_at
        return None if self.ended_at is None else self.ended_at - start


@dataclass(frozen=True)
class StepState:
    """One step instance: an activity's attempts, a signal wait, or a child workflow."""

    step: str
    kind: str = "activity"  # activity | wait | child | undo
    frame: str = ROOT
    attempts: tuple[Attempt, ...] = ()
    undo: Any = None  # evaluated compensation argv, for activities that declare one
    child_id: Union[str, None] = None
    child_flow: Union[str, None] = None
    child_input: Any = None
    outcome: Union[str, None] = None  # for wait/child steps
    result_value: Any = None
    error_value: Any = None
    caught: Union[int, None] = None  # index of the catch block that handled its failure
    fresh_from: Union[int, None] = None  # after a resume: attempts before this index no longer count
    detached: bool = False  # a child flow started detached: the step completed when it was started
    tells_ending: bool = False  # a wait step whose value says how it ended (WaitSignal.tells_ending)

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]

    @property
    def status(self) -> str:
        """scheduled | queued | running | completed | failed (may retry) | waiting."""
        if self.kind in ("wait", "child"):
            return self.outcome or "running"
        last = self.last
        if last.outcome is not None:
            return last.outcome
        if last.started_at is not None:
            return "running"
        return "queued" if last.queued_at is not None else "scheduled"

    @property
    def pending(self) -> bool:
        if self.kind in ("wait", "child"):
            return self.outcome is None
        return bool(self.attempts) and self.last.pending

    @property
    def result(self) -> Any:
        if self.kind in ("wait", "child"):
            return self.result_value if self.outcome == "completed" else None
        return self.last.result if self.last.outcome == "completed" else None

    @property
    def error(self) -> Any:
        if self.kind in ("wait", "child"):
            return self.error_value
        return self.last.error if self.attempts else None

    @property
    def heartbeat_details(self) -> Any:
        """The last heartbeat details recorded by any attempt of the step (what its next attempt gets)."""
        for attempt in reversed(self.attempts):
            if attempt.heartbeat_at is not None:
                return attempt.heartbeat_details
        return None

    @property
    def counted_failures(self) -> int:
        """Failed attempts that count against the retry budget (interruptions do not)."""
        return sum(
            1 for a in self.attempts[self.fresh_from or 0:]
            if a.outcome == "failed" and (a.error or {}).get("kind") != "interrupted"
        )


@dataclass(frozen=True)
class TimerState:
    timer: int
    step: str
    purpose: str
    duration_ms: int
    started_at: int
    fire_at: int
    frame: str = ROOT
    fired_at: Union[int, None] = None
    retired: bool = False  # a deadline that fired before a resume: it no longer counts


@dataclass(frozen=True)
class Signal:
    seq: int
    signal: str
    data: Any
    received_at: int
    consumed_by: Union[str, None] = None


@dataclass(frozen=True)
class LockRequest:
    """A ``lock`` statement's request (``frame``/``at``), in line from ``seq``; ``granted`` once it holds it."""

    frame: str
    at: int
    lock: str
    scope: str
    seq: int
    requested_at: int
    granted: bool = False


@dataclass(frozen=True)
class WorkflowState:
    workflow_id: str
    flow: ir.Flow
    flow_hash: str
    input: Mapping[str, Any]
    started_at: int
    updated_at: int
    parent: Any = None
    last_seq: int = 1
    status: str = RUNNING
    frames: Mapping[str, Frame] = field(default_factory=dict)
    body_done: bool = False
    steps: Mapping[str, StepState] = field(default_factory=dict)
    timers: Mapping[int, TimerState] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    signals: tuple[Signal, ...] = ()
    completed_with_undo: tuple[str, ...] = ()  # step keys in order of completion
    cancel_requested: Union[str, None] = None
    compensation: Any = None  # the CompensationStarted reason/steps once it began
    result: Any = None
    error: Any = None
    ended_at: Union[int, None] = None
    divergence: Any = None  # the WorkflowNondeterministic facts, once recorded
    checkpoint: Any = None  # the state just before it began to fail (what a resume goes back to)
    held: bool = False  # imported and not yet released: nothing is decided or carried out
    cancelled_while_held: bool = False  # a cancel that came after the import (ends it as it is)
    origin: Any = None  # {"workflow_id", "seq"} of the workflow this one was forked from
    resumes: int = 0
    locks: Mapping[tuple, LockRequest] = field(default_factory=dict)  # by (frame, at); see live_locks

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def compensating(self) -> bool:
        return self.compensation is not None and not self.terminal

    @property
    def current_label(self) -> str:
        """What the workflow is doing now, for listings (``reserve``, ``sleep at line 7``, ``charge, ship``)."""
        return ", ".join(self.current_steps)

    @property
    def current_steps(self) -> list[str]:
        """What the workflow is doing now, one entry per statement at work, in the flow's words."""
        if self.terminal:
            return []
        if self.compensating:
            return ["compensating"]
        labels = []
        for frame in self.frames.values():
            stmt = frame.current
            if stmt is not None and not frame.entered:
                labels.append(ir.shown_name(stmt) + frame.suffix)
            elif isinstance(stmt, ir.Lock):
                request = self.locks.get((frame.id, frame.pc))
                if request is not None and not request.granted:
                    labels.append(f"waiting for lock '{request.lock}'")
        return labels

    def pending_attempts(self) -> list[tuple[str, Attempt]]:
        return [(s.step, s.last) for s in self.steps.values() if s.attempts and s.last.pending]

    def attempt_pending(self, step: str, number: int) -> bool:
        current = self.steps.get(step)
        return bool(current and current.attempts and current.last.number == number and current.last.pending)

    def wanted(self, step: StepState) -> bool:
        """Should this pending step still be running? No once its frame is gone or the workflow is ending."""
        if step.kind == "undo":
            return not self.terminal
        return not self.terminal and self.compensation is None and step.frame in self.frames \
            and not self.past_total_timeout(step.step)

    def past_total_timeout(self, step: str) -> bool:
        """Has this step's total timeout (``timeout D total T``) fired? Then nothing of it may run on."""
        timer = self.timer_for(step, STEP_TIMEOUT)
        return timer is not None and timer.fired_at is not None

    def pending_timers(self) -> list[TimerState]:
        return [t for t in self.timers.values() if t.fired_at is None]

    def timer_wanted(self, timer: TimerState) -> bool:
        """Does firing this timer still matter? Not for a race's losing sleep, an answered wait, ..."""
        if self.terminal or timer.fired_at is not None:
            return False
        if timer.purpose == "workflow-timeout":
            return self.compensation is None
        frame = self.frames.get(timer.frame)
        if frame is None or self.compensation is not None:
            return False
        if timer.purpose == "signal-timeout":
            return timer.step not in self.steps
        if timer.purpose in ("sleep", STEP_TIMEOUT):  # (a step that completed or was caught has moved on)
            return not frame.entered and frame.current is not None and label_of(frame.current) + frame.suffix == timer.step
        if timer.purpose.startswith("retry-"):
            return not self.past_total_timeout(timer.step)
        return True

    def pending_children(self) -> list[StepState]:
        return [s for s in self.steps.values() if s.kind == "child" and s.pending]

    def detached_children(self) -> list[StepState]:
        """Child flows started detached: the supervisor creates each once; nothing else links them."""
        return [s for s in self.steps.values() if s.detached]

    def live_locks(self) -> list[LockRequest]:
        """Lock requests still in force, in order of request: their ``lock`` statement is still
        where its frame is (a frame that ended, was cancelled, or a workflow that is ending, ended,
        imported and not released, or found nondeterministic holds and waits for nothing)."""
        if self.terminal or self.compensation is not None or self.held or self.divergence is not None:
            return []  # (held or nondeterministic: nothing of it moves, so it holds and waits for nothing)
        out = []
        for request in self.locks.values():
            frame = self.frames.get(request.frame)
            if frame is not None and frame.pc == request.at and frame.entered:
                out.append(request)
        return sorted(out, key=lambda r: r.seq)

    def timer_for(self, step: str, purpose: str) -> Union[TimerState, None]:
        for timer in self.timers.values():
            if timer.step == step and timer.purpose == purpose and not timer.retired:
                return timer
        return None


def label_of(stmt: Any) -> str:
    name = getattr(stmt, "name", None)  # a lock's name is an expression: its id (lock-N) labels it
    return (name if isinstance(name, str) else None) or getattr(stmt, "id", None) or type(stmt).__name__.lower()


def initial(started: ev.WorkflowStarted, flow: Union[ir.Flow, None] = None) -> WorkflowState:
    """The state right after ``started``; ``flow`` replaces the pinned definition (replay checks)."""
    flow = flow if flow is not None else ir.from_json(started.flow)
    return WorkflowState(
        workflow_id=started.workflow_id,
        flow=flow,
        flow_hash=started.flow_hash,
        input=dict(started.input),
        started_at=started.ts,
        updated_at=started.ts,
        parent=started.parent,
        last_seq=started.seq,
        frames={ROOT: Frame(ROOT, tuple(flow.body))} if flow.body else {},
        body_done=not flow.body,
    )


def fold(events: Iterable[ev.Event]) -> WorkflowState:
    events = list(events)
    first = events[0] if events else None
    if not isinstance(first, ev.WorkflowStarted):
        raise FoldError("a history must begin with WorkflowStarted")
    state = initial(first, repinned(events))
    for event in events[1:]:
        state = evolve(state, event)
    return state


def repinned(events: Iterable[Any]) -> Union[ir.Flow, None]:
    """The definition the last ``lf resume --flow`` pinned (events or their records), else None.

    It holds for the whole history: its prefix was replayed against it before the resume
    was recorded, so folding everything with it gives the state the resume went on from.
    """
    flow = None
    for event in events:
        if isinstance(event, dict):
            if event.get("type") == "WorkflowResumed" and event.get("flow") is not None:
                flow = event["flow"]
        elif isinstance(event, ev.WorkflowResumed) and event.flow is not None:
            flow = event.flow
    return None if flow is None else ir.from_json(flow)


def evolve(state: WorkflowState, event: ev.Event) -> WorkflowState:
    state = _apply(event, state)
    return replace(state, last_seq=event.seq, updated_at=max(state.updated_at, event.ts))


@singledispatch
def _apply(event: ev.Event, state: WorkflowState) -> WorkflowState:
    raise FoldError(f"{type(event).__name__} cannot appear after the first event")


# --- steps ---------------------------------------------------------------------


def _put_step(state: WorkflowState, step: StepState) -> WorkflowState:
    return replace(state, steps={**state.steps, step.step: step})


def _with_attempt(state: WorkflowState, step: str, number: int, **changes: Any) -> WorkflowState:
    current = state.steps.get(step)
    if current is None or not current.attempts or current.last.number != number:
        raise FoldError(f"no attempt {number} of step {step!r} to update")
    attempts = current.attempts[:-1] + (replace(current.last, **changes),)
    return _put_step(state, replace(current, attempts=attempts))


@_apply.register
def _on_activity_scheduled(event: ev.ActivityScheduled, state: WorkflowState) -> WorkflowState:
    kind = "undo" if event.step.startswith(UNDO_PREFIX) else "activity"
    current = state.steps.get(event.step) or StepState(event.step, kind=kind, frame=event.frame, undo=event.undo)
    attempt = Attempt(event.attempt, event.ts, tuple(event.argv), event.stdin, event.timeout_ms, call=event.call,
                      heartbeat_ms=event.heartbeat_ms, handed_details=event.heartbeat_details,
                      env=event.env, cwd=event.cwd, secrets=event.secrets)
    return _put_step(state, replace(current, attempts=current.attempts + (attempt,), frame=event.frame))


@_apply.register
def _on_activity_started(event: ev.ActivityStarted, state: WorkflowState) -> WorkflowState:
    return _with_attempt(state, event.step, event.attempt,
                         started_at=event.ts, pid=event.pid, pgid=event.pgid, proc_start=event.proc_start,
                         worker=event.worker)


@_apply.register
def _on_activity_queued(event: ev.ActivityQueued, state: WorkflowState) -> WorkflowState:
    return _with_attempt(state, event.step, event.attempt, queued_at=event.ts, waiting_for=event.waiting_for)


@_apply.register
def _on_activity_heartbeat(event: ev.ActivityHeartbeat, state: WorkflowState) -> WorkflowState:
    return _with_attempt(state, event.step, event.attempt, heartbeat_details=event.details, heartbeat_at=event.ts)


@_apply.register
def _on_activity_completed(event: ev.ActivityCompleted, state: WorkflowState) -> WorkflowState:
    state = _with_attempt(state, event.step, event.attempt, ended_at=event.ts, outcome="completed",
                          result=event.result, measured_ms=event.duration_ms)
    step = state.steps[event.step]
    if step.undo is not None and step.kind == "activity":
        state = replace(state, completed_with_undo=state.completed_with_undo + (event.step,))
    return _finish_step(state, step)


@_apply.register
def _on_activity_failed(event: ev.ActivityFailed, state: WorkflowState) -> WorkflowState:
    return _with_attempt(state, event.step, event.attempt, ended_at=event.ts, outcome="failed",
                         error=event.error, measured_ms=event.duration_ms)


@_apply.register
def _on_signal_received(event: ev.SignalReceived, state: WorkflowState) -> WorkflowState:
    signal = Signal(event.seq, event.signal, event.data, event.ts)
    return replace(state, signals=state.signals + (signal,))


@_apply.register
def _on_signal_consumed(event: ev.SignalConsumed, state: WorkflowState) -> WorkflowState:
    signals = tuple(replace(s, consumed_by=event.step) if s.seq == event.signal_seq else s for s in state.signals)
    data = next((s.data for s in signals if s.seq == event.signal_seq), None)
    step = StepState(event.step, kind="wait", frame=event.frame, outcome="completed", result_value=data,
                     tells_ending=_tells_ending(state, event.frame))
    return _finish_step(_put_step(replace(state, signals=signals), step), step)


def _tells_ending(state: WorkflowState, frame_id: str) -> bool:
    frame = state.frames.get(frame_id)
    return bool(frame is not None and getattr(frame.current, "tells_ending", None))


@_apply.register
def _on_child_started(event: ev.ChildStarted, state: WorkflowState) -> WorkflowState:
    step = StepState(event.step, kind="child", frame=event.frame, child_id=event.child_id,
                     child_flow=event.flow, child_input=event.input)
    if not event.detached:
        return _put_step(state, step)
    step = replace(step, detached=True, outcome="completed", result_value={"workflow_id": event.child_id})
    return _finish_step(_put_step(state, step), step)


@_apply.register
def _on_child_completed(event: ev.ChildCompleted, state: WorkflowState) -> WorkflowState:
    step = replace(_step(state, event.step), outcome="completed", result_value=event.result)
    return _finish_step(_put_step(state, step), step)


@_apply.register
def _on_child_failed(event: ev.ChildFailed, state: WorkflowState) -> WorkflowState:
    return _put_step(state, replace(_step(state, event.step), outcome="failed", error_value=event.error))


def _step(state: WorkflowState, key: str) -> StepState:
    if key not in state.steps:
        raise FoldError(f"no step {key!r}")
    return state.steps[key]


def _finish_step(state: WorkflowState, step: StepState) -> WorkflowState:
    """A step completed: its frame moves on if the step is still its current statement."""
    frame = state.frames.get(step.frame)
    if frame is None or frame.entered or frame.current is None:
        return state
    if getattr(frame.current, "name", None) is not None and frame.current.name + frame.suffix == step.step:
        return advance(state, frame.id)
    return state


# --- timers --------------------------------------------------------------------


@_apply.register
def _on_timer_started(event: ev.TimerStarted, state: WorkflowState) -> WorkflowState:
    timer = TimerState(event.timer, event.step, event.purpose, event.duration_ms, event.ts, event.fire_at, event.frame)
    return replace(state, timers={**state.timers, event.timer: timer})


@_apply.register
def _on_timer_fired(event: ev.TimerFired, state: WorkflowState) -> WorkflowState:
    timer = state.timers.get(event.timer)
    if timer is None or timer.fired_at is not None:
        raise FoldError(f"timer {event.timer} fired but it was not pending")
    state = replace(state, timers={**state.timers, event.timer: replace(timer, fired_at=event.ts)})
    frame = state.frames.get(timer.frame)
    if timer.purpose == "sleep" and frame is not None and not frame.entered and frame.current is not None \
            and getattr(frame.current, "id", None) is not None and frame.current.id + frame.suffix == timer.step:
        return advance(state, frame.id)
    return state


# --- control flow ----------------------------------------------------------------


@_apply.register
def _on_branch_chosen(event: ev.BranchChosen, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if not event.branch:
        return advance(state, frame.id)
    block = dict(ir.child_blocks(frame.current)).get(event.branch)
    if block is None:
        raise FoldError(f"statement at {event.frame}:{event.at} has no block {event.branch!r}")
    return open_blocks(state, frame, [(event.branch, block, frame.suffix, frame.bindings)])


@_apply.register
def _on_variable_set(event: ev.VariableSet, state: WorkflowState) -> WorkflowState:
    frame_at(state, event.frame, event.at)
    state = replace(state, variables={**state.variables, event.name: event.value})
    return advance(state, event.frame)


@_apply.register
def _on_parallel_started(event: ev.ParallelStarted, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    blocks = ir.child_blocks(frame.current)
    if event.chosen is not None:  # `branch if`: only the branches whose condition held
        blocks = [blocks[i] for i in event.chosen if isinstance(i, int) and 0 <= i < len(blocks)]
        if not blocks:
            return advance(state, frame.id)
    frame = replace(frame, need=_need(frame.current, len(blocks)))
    return open_blocks(state, frame, [(label, block, frame.suffix, frame.bindings) for label, block in blocks])


def _need(stmt: Any, children: int) -> int:
    """How many children must end for a ``first K`` join (0: all, the usual join)."""
    first = getattr(stmt, "first", None)
    return min(first, children) if first else 0


@_apply.register
def _on_loop_started(event: ev.LoopStarted, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if not event.items:
        return advance(state, frame.id)
    frame = replace(frame, items=tuple(event.items), need=_need(frame.current, len(event.items)))
    first = min(max(frame.current.concurrency, 1), len(event.items))
    state = open_blocks(state, frame, [iteration(frame, i) for i in range(first)])
    return update_frame(state, frame.id, next_item=first)


@_apply.register
def _on_loop_iterated(event: ev.LoopIterated, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if not isinstance(frame.current, (ir.While, ir.Repeat)) or event.iteration != frame.next_item:
        raise FoldError(f"LoopIterated: no iteration {event.iteration} of a while or repeat loop "
                        f"at {event.frame}:{event.at}")
    if not event.go:
        return advance(state, frame.id)
    return open_child(state, frame, f"body[{event.iteration}]", frame.current.body,
                      f"{frame.suffix}[{event.iteration}]", frame.bindings, next_item=event.iteration + 1)


@_apply.register
def _on_loop_jumped(event: ev.LoopJumped, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if event.jump not in ("break", "continue"):
        raise FoldError(f"LoopJumped: unknown jump {event.jump!r}")
    return jump(state, frame.id, event.jump)


def _listening(state: WorkflowState, frame_id: str, at: int, kinds: tuple, what: str) -> Frame:
    """The frame whose current statement (at ``at``) is one that decides while its blocks run."""
    frame = state.frames.get(frame_id)
    if frame is None or frame.pc != at or not isinstance(frame.current, kinds):
        raise FoldError(f"{what}: frame {frame_id!r} is not at such a statement {at}")
    return frame


@_apply.register
def _on_signal_taken(event: ev.SignalTaken, state: WorkflowState) -> WorkflowState:
    frame = _listening(state, event.frame, event.at, (ir.SignalLoop, ir.Scope), "SignalTaken")
    stmt = frame.current
    signal = next((s for s in state.signals if s.seq == event.signal_seq), None)
    if signal is None or signal.consumed_by is not None or signal.signal != event.signal or frame.closed:
        raise FoldError(f"SignalTaken: signal {event.signal_seq} cannot be taken here")
    suffix = f"{frame.suffix}[{event.instance}]"
    state = replace(state, signals=tuple(replace(s, consumed_by=f"{stmt.id}{suffix}") if s is signal else s
                                         for s in state.signals))
    if isinstance(stmt, ir.SignalLoop):
        label, block, var = f"body[{event.instance}]", stmt.body, stmt.var
    else:
        index = next((i for i, h in enumerate(stmt.handlers) if h.signal == event.signal), None)
        if index is None:
            raise FoldError(f"SignalTaken: scope {stmt.id} has no handler for signal {event.signal!r}")
        label, block, var = f"on{index}[{event.instance}]", stmt.handlers[index].body, stmt.handlers[index].var
    bindings = {**frame.bindings, var: signal.data} if var else frame.bindings
    return open_child(state, frame, label, block, suffix, bindings, next_item=event.instance + 1)


@_apply.register
def _on_loop_closed(event: ev.LoopClosed, state: WorkflowState) -> WorkflowState:
    frame = _listening(state, event.frame, event.at, (ir.SignalLoop,), "LoopClosed")
    if event.signal_seq is not None:
        state = replace(state, signals=tuple(replace(s, consumed_by=f"{frame.current.id}{frame.suffix}")
                                             if s.seq == event.signal_seq else s for s in state.signals))
    if frame.open_children <= 0:
        return advance(state, frame.id)
    if frame.current.keep_rest:  # the running iterations go on in the background
        return keep_rest(state, frame)
    return update_frame(state, frame.id, closed=True, entered=True)


@_apply.register
def _on_scope_started(event: ev.ScopeStarted, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if not isinstance(frame.current, ir.Scope):
        raise FoldError(f"ScopeStarted: no scope at {event.frame}:{event.at}")
    return open_child(state, frame, "body", frame.current.body, frame.suffix, frame.bindings, since=event.seq)


@_apply.register
def _on_lock_requested(event: ev.LockRequested, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    if not isinstance(frame.current, ir.Lock):
        raise FoldError(f"LockRequested: no lock at {event.frame}:{event.at}")
    request = LockRequest(event.frame, event.at, event.lock, event.scope, event.seq, event.ts)
    state = replace(state, locks={**_live_requests(state), (event.frame, event.at): request})
    return update_frame(state, frame.id, entered=True, open_children=0)


def _live_requests(state: WorkflowState) -> dict:
    """The lock requests worth keeping (a request whose frame moved on is over): bounds their number."""
    return {(r.frame, r.at): r for r in state.live_locks()}


def _grant(event: Any, state: WorkflowState) -> WorkflowState:
    request = state.locks.get((event.frame, event.at))
    frame = state.frames.get(event.frame)
    if request is None or request.granted or frame is None or frame.pc != event.at or not frame.entered:
        return state  # (LockGranted only) a grant that came after the request was abandoned
    state = replace(state, locks={**state.locks, (event.frame, event.at): replace(request, granted=True)})
    return open_child(state, frame, "body", frame.current.body, frame.suffix, frame.bindings)


@_apply.register
def _on_lock_acquired(event: ev.LockAcquired, state: WorkflowState) -> WorkflowState:
    request = state.locks.get((event.frame, event.at))
    if request is None or request.granted or request.scope != "workflow":
        raise FoldError(f"LockAcquired: no waiting request at {event.frame}:{event.at}")
    return _grant(event, state)


@_apply.register
def _on_lock_granted(event: ev.LockGranted, state: WorkflowState) -> WorkflowState:
    return _grant(event, state)


@_apply.register
def _on_lock_released(event: ev.LockReleased, state: WorkflowState) -> WorkflowState:
    frame = _listening(state, event.frame, event.at, (ir.Lock,), "LockReleased")
    locks = dict(state.locks)
    if locks.pop((event.frame, event.at), None) is None or not frame.closed:
        raise FoldError(f"LockReleased: the lock at {event.frame}:{event.at} is not held with its body ended")
    return advance(replace(state, locks=locks), frame.id)


@_apply.register
def _on_catch_entered(event: ev.CatchEntered, state: WorkflowState) -> WorkflowState:
    frame = frame_at(state, event.frame, event.at)
    catch = frame.current.catches[event.catch]
    if event.step in state.steps:
        state = _put_step(state, replace(state.steps[event.step], caught=event.catch))
    else:  # a wait that timed out has no step record yet
        state = _put_step(state, StepState(event.step, kind="wait", frame=frame.id, outcome="failed",
                                           error_value=event.error, caught=event.catch,
                                           tells_ending=_tells_ending(state, frame.id)))
    bindings = {**frame.bindings, "error": event.error}
    return open_blocks(state, frame, [(f"catch{event.catch}", catch.body, frame.suffix, bindings)])


# --- endings -------------------------------------------------------------------


@_apply.register
def _on_cancel_requested(event: ev.CancelRequested, state: WorkflowState) -> WorkflowState:
    return replace(state, cancel_requested=event.reason, cancelled_while_held=state.held)


@_apply.register
def _on_nondeterministic(event: ev.WorkflowNondeterministic, state: WorkflowState) -> WorkflowState:
    divergence = {"at": event.at, "expected": event.expected, "recorded": event.recorded, "where": event.where}
    return replace(state, status=NONDETERMINISTIC, divergence=divergence)


@_apply.register
def _on_compensation_started(event: ev.CompensationStarted, state: WorkflowState) -> WorkflowState:
    compensation = {"reason": event.reason, "cancel": event.cancel, "steps": list(event.steps)}
    checkpoint = None if event.cancel else (event.seq, state)
    return replace(state, compensation=compensation, frames={}, checkpoint=checkpoint)


@_apply.register
def _on_workflow_completed(event: ev.WorkflowCompleted, state: WorkflowState) -> WorkflowState:
    return replace(state, status=COMPLETED, result=event.result, ended_at=event.ts, frames={})


@_apply.register
def _on_workflow_failed(event: ev.WorkflowFailed, state: WorkflowState) -> WorkflowState:
    checkpoint = state.checkpoint if state.compensation is not None else (event.seq, state)
    return replace(state, status=FAILED, error=event.error, ended_at=event.ts, frames={}, checkpoint=checkpoint)


# --- repairs the user asked for ----------------------------------------------------------


@_apply.register
def _on_workflow_resumed(event: ev.WorkflowResumed, state: WorkflowState) -> WorkflowState:
    """Back to just before the failure, keeping every fact since (attempts, timers, signals);
    failed steps get fresh attempts, and deadlines that fired no longer count."""
    if event.from_seq is None:
        if not state.held:
            raise FoldError("WorkflowResumed without from_seq releases an imported workflow; this one is not held")
        return replace(state, held=False)
    if state.status != FAILED or state.checkpoint is None or state.checkpoint[0] != event.from_seq:
        raise FoldError(f"WorkflowResumed from seq {event.from_seq}: the workflow did not fail there")
    base = state.checkpoint[1]
    steps = {key: _fresh(step) for key, step in state.steps.items()}
    timers = {n: replace(t, retired=True) if _spent_deadline(t, steps) else t for n, t in state.timers.items()}
    resumed = replace(base, steps=steps, timers=timers, signals=state.signals, checkpoint=None, held=False,
                      completed_with_undo=state.completed_with_undo, resumes=state.resumes + 1, origin=state.origin)
    for key, step in steps.items():  # steps that were stopped by the failure yet completed: move on
        if step.kind != "undo" and step.status == "completed" and base.steps.get(key) is not state.steps[key]:
            resumed = _finish_step(resumed, step)
    return resumed


def _fresh(step: StepState) -> StepState:
    if step.kind == "activity" and step.attempts and step.last.outcome == "failed":
        return replace(step, fresh_from=len(step.attempts))
    return step


def _spent_deadline(timer: TimerState, steps: Mapping[str, StepState]) -> bool:
    """A workflow timeout, or an unanswered wait's timeout, that fired: resumed, they start again."""
    if timer.fired_at is None or timer.retired:
        return False
    return timer.purpose in ("workflow-timeout", STEP_TIMEOUT) or (
        timer.purpose == "signal-timeout" and timer.step not in steps)


@_apply.register
def _on_workflow_forked(event: ev.WorkflowForked, state: WorkflowState) -> WorkflowState:
    return replace(state, origin=event.origin)


@_apply.register
def _on_workflow_imported(event: ev.WorkflowImported, state: WorkflowState) -> WorkflowState:
    return replace(state, held=True)


@_apply.register
def _on_time_skipped(event: ev.TimeSkipped, state: WorkflowState) -> WorkflowState:
    return state


@_apply.register
def _on_workflow_terminated(event: ev.WorkflowTerminated, state: WorkflowState) -> WorkflowState:
    if state.terminal:
        raise FoldError(f"WorkflowTerminated: the workflow had already ended ({state.status})")
    error = {"kind": "terminated", "message": event.reason}
    return replace(state, status=TERMINATED, error=error, ended_at=event.ts, frames={})


@_apply.register
def _on_workflow_cancelled(event: ev.WorkflowCancelled, state: WorkflowState) -> WorkflowState:
    return replace(state, status=CANCELLED, error=event.reason, ended_at=event.ts, frames={})


@dataclass(frozen=True)
class SignalWait:
    """A signal the workflow would take now: ``kind`` wait (a ``wait signal`` step), loop (a signal
    loop; ``close`` its closing signal) or handler (an ``on signal`` handler of a running block).
    ``step`` keys it as the history does; ``label`` names it in the flow's words."""

    step: str
    signal: str
    kind: str = "wait"
    timeout_at: Union[int, None] = None
    label: str = ""


def signal_waits(state: WorkflowState) -> list[SignalWait]:
    """The signals ``state`` waits for, in frame order (none once it ends, compensates, is held or diverged)."""
    if state.terminal or state.compensation is not None or state.held or state.divergence is not None:
        return []
    found: list[SignalWait] = []
    for frame in state.frames.values():
        stmt = frame.current
        if isinstance(stmt, ir.WaitSignal) and not frame.entered:
            key = stmt.name + frame.suffix
            if key in state.steps:
                continue
            timer = state.timer_for(key, "signal-timeout")
            found.append(SignalWait(key, stmt.signal, "wait", timer.fire_at if timer else None, key))
        elif isinstance(stmt, ir.SignalLoop) and not frame.closed:
            label = ir.shown_name(stmt) + frame.suffix
            found.append(SignalWait(stmt.id + frame.suffix, stmt.signal, "loop", label=label))
            if stmt.close_signal:
                found.append(SignalWait(stmt.id + frame.suffix, stmt.close_signal, "close", label=label))
        elif isinstance(stmt, ir.Scope) and frame.entered and not frame.closed:
            for handler in stmt.handlers:
                found.append(SignalWait(stmt.id + frame.suffix, handler.signal, "handler",
                                        label=f"on signal {handler.signal} (line {handler.line})"))
    return list(dict.fromkeys(found))
