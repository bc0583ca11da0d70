"""Workflow state and the fold that builds it from events (pure).

``evolve(state, event)`` returns a new ``WorkflowState``; there is one handler
per event type (``functools.singledispatch``, as in eventsourcing's aggregate
examples). ``fold(events)`` is ``evolve`` over a whole history.

The state knows where the workflow is (``pc``, the index of the current
statement of the flow body), every step's attempts, every timer, and how it
ended. Statuses: ``running``, ``completed``, ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import singledispatch
from typing import Any, Iterable, Mapping, Union

from localflow import ir
from localflow.core import events as ev

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
TERMINAL = (COMPLETED, FAILED)


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
    step: str
    attempts: tuple[Attempt, ...] = ()

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]

    @property
    def status(self) -> str:
        """scheduled | running | completed | failed (last attempt failed; may retry)."""
        last = self.last
        if last.outcome is not None:
            return last.outcome
        return "running" if last.started_at is not None else "scheduled"

    @property
    def result(self) -> Any:
        return self.last.result if self.last.outcome == "completed" else None

    @property
    def counted_failures(self) -> int:
        """Failed attempts that count against the retry budget (interruptions do not)."""
        return sum(
            1
            for a in self.attempts
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
    fired_at: Union[int, None] = None


@dataclass(frozen=True)
class WorkflowState:
    workflow_id: str
    flow: ir.Flow
    flow_hash: str
    input: Mapping[str, Any]
    started_at: int
    updated_at: int
    last_seq: int = 1
    status: str = RUNNING
    pc: int = 0
    steps: Mapping[str, StepState] = None  # type: ignore[assignment]
    timers: Mapping[int, TimerState] = None  # type: ignore[assignment]
    result: Any = None
    error: Any = None
    ended_at: Union[int, None] = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def current(self) -> Union[ir.Stmt, None]:
        body = self.flow.body
        return body[self.pc] if self.pc < len(body) else None

    @property
    def current_label(self) -> str:
        stmt = self.current
        if self.terminal or stmt is None:
            return ""
        return getattr(stmt, "name", None) or getattr(stmt, "id", None) or type(stmt).__name__.lower()

    def pending_attempts(self) -> list[tuple[str, Attempt]]:
        return [(s.step, s.last) for s in self.steps.values() if s.attempts and s.last.pending]

    def attempt_pending(self, step: str, number: int) -> bool:
        current = self.steps.get(step)
        return bool(current and current.attempts and current.last.number == number and current.last.pending)

    def pending_timers(self) -> list[TimerState]:
        return [t for t in self.timers.values() if t.fired_at is None]

    def next_timer_id(self) -> int:
        return len(self.timers) + 1


class FoldError(ValueError):
    """An event that cannot follow the state it is applied to (a broken history)."""


def initial(started: ev.WorkflowStarted) -> WorkflowState:
    return WorkflowState(
        workflow_id=started.workflow_id,
        flow=ir.from_json(started.flow),
        flow_hash=started.flow_hash,
        input=dict(started.input),
        started_at=started.ts,
        updated_at=started.ts,
        last_seq=started.seq,
        steps={},
        timers={},
    )


def fold(events: Iterable[ev.Event]) -> WorkflowState:
    iterator = iter(events)
    first = next(iterator, None)
    if not isinstance(first, ev.WorkflowStarted):
        raise FoldError("a history must begin with WorkflowStarted")
    state = initial(first)
    for event in iterator:
        state = evolve(state, event)
    return state


def evolve(state: WorkflowState, event: ev.Event) -> WorkflowState:
    state = _apply(event, state)
    return replace(state, last_seq=event.seq, updated_at=max(state.updated_at, event.ts))


@singledispatch
def _apply(event: ev.Event, state: WorkflowState) -> WorkflowState:
    raise FoldError(f"{type(event).__name__} cannot appear after the first event")


def _with_attempt(state: WorkflowState, step: str, number: int, **changes: Any) -> WorkflowState:
    current = state.steps.get(step)
    if current is None or not current.attempts or current.last.number != number:
        raise FoldError(f"no attempt {number} of step {step!r} to update")
    attempts = current.attempts[:-1] + (replace(current.last, **changes),)
    return replace(state, steps={**state.steps, step: replace(current, attempts=attempts)})


@_apply.register
def _on_activity_scheduled(event: ev.ActivityScheduled, state: WorkflowState) -> WorkflowState:
    current = state.steps.get(event.step) or StepState(event.step)
    attempt = Attempt(event.attempt, event.ts, tuple(event.argv), event.stdin, event.timeout_ms)
    step = replace(current, attempts=current.attempts + (attempt,))
    return replace(state, steps={**state.steps, event.step: step})


@_apply.register
def _on_activity_started(event: ev.ActivityStarted, state: WorkflowState) -> WorkflowState:
    return _with_attempt(
        state, event.step, event.attempt,
        started_at=event.ts, pid=event.pid, pgid=event.pgid, proc_start=event.proc_start,
    )


@_apply.register
def _on_activity_completed(event: ev.ActivityCompleted, state: WorkflowState) -> WorkflowState:
    state = _with_attempt(
        state, event.step, event.attempt, ended_at=event.ts, outcome="completed", result=event.result,
        measured_ms=event.duration_ms,
    )
    return _advance_if_current(state, event.step)


@_apply.register
def _on_activity_failed(event: ev.ActivityFailed, state: WorkflowState) -> WorkflowState:
    return _with_attempt(state, event.step, event.attempt, ended_at=event.ts, outcome="failed", error=event.error,
                         measured_ms=event.duration_ms)


@_apply.register
def _on_timer_started(event: ev.TimerStarted, state: WorkflowState) -> WorkflowState:
    timer = TimerState(event.timer, event.step, event.purpose, event.duration_ms, event.ts, event.fire_at)
    return replace(state, timers={**state.timers, event.timer: timer})


@_apply.register
def _on_timer_fired(event: ev.TimerFired, state: WorkflowState) -> WorkflowState:
    timer = state.timers.get(event.timer)
    if timer is None or timer.fired_at is not None:
        raise FoldError(f"timer {event.timer} fired but it was not pending")
    state = replace(state, timers={**state.timers, event.timer: replace(timer, fired_at=event.ts)})
    return _advance_if_current(state, timer.step) if timer.purpose == "sleep" else state


@_apply.register
def _on_workflow_completed(event: ev.WorkflowCompleted, state: WorkflowState) -> WorkflowState:
    return replace(state, status=COMPLETED, result=event.result, ended_at=event.ts)


@_apply.register
def _on_workflow_failed(event: ev.WorkflowFailed, state: WorkflowState) -> WorkflowState:
    return replace(state, status=FAILED, error=event.error, ended_at=event.ts)


def _advance_if_current(state: WorkflowState, step: str) -> WorkflowState:
    """Move past the current statement when the event finished it."""
    stmt = state.current
    if stmt is not None and (getattr(stmt, "name", None) == step or getattr(stmt, "id", None) == step):
        return replace(state, pc=state.pc + 1)
    return state
