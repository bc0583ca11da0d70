"""Where a run's time went: the intervals of `lf timeline`, computed from a history (pure).

``timeline(events)`` folds the events one by one (core/state.py) and watches the state
change, so every interval begins and ends at the timestamp of a recorded event:

==========  ===========================================================================
kind        from -> to
==========  ===========================================================================
workflow    WorkflowStarted -> its ending event
attempt     ActivityScheduled -> ActivityCompleted/Failed (``run_start``: ActivityStarted;
            before it the attempt was scheduled or queued for room)
retry       a ``retry-N`` timer: the wait before attempt N of the step
timer       a ``sleep``: TimerStarted -> TimerFired (or the moment it no longer mattered)
deadline    a timeout (``*-timeout`` timer) that fired
wait        a ``wait signal`` step waiting: from the event after which it waits -> the
            event that answered it (or timed it out)
listen      a signal loop or ``on signal`` scope taking signals
signal      SignalReceived (an instant)
child       ChildStarted -> ChildCompleted/Failed
lock        LockRequested -> LockAcquired/Granted (the time spent waiting for the lock)
==========  ===========================================================================

An interval still open at the end of the history has ``end`` None (drawn up to now);
one open when the workflow ended ends there, ``stopped``. ``signal_waits(state)`` says
which signals a workflow waits for now (the live views print the `lf signal` command).

No I/O, no clock: the caller passes the events (and, to draw, the time now).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.state import SignalWait, WorkflowState, evolve, initial, repinned, signal_waits  # noqa: F401 - (re-exported)


@dataclass(frozen=True)
class Interval:
    kind: str
    label: str
    start: int  # epoch ms
    end: Union[int, None]  # None: still open
    status: str
    step: Union[str, None] = None
    attempt: Union[int, None] = None
    run_start: Union[int, None] = None  # attempts: when the process started
    detail: str = ""

    def to_json(self, origin: int) -> dict[str, Any]:
        from localflow.core.timefmt import to_iso  # (pure conversions)

        data = asdict(self)
        data.update(start=to_iso(self.start), end=None if self.end is None else to_iso(self.end),
                    run_start=None if self.run_start is None else to_iso(self.run_start),
                    offset_ms=self.start - origin,
                    duration_ms=None if self.end is None else self.end - self.start)
        return data


@dataclass(frozen=True)
class Timeline:
    workflow_id: str
    flow: str
    status: str
    start: int
    end: Union[int, None]
    intervals: tuple[Interval, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        from localflow.core.timefmt import to_iso

        return {"id": self.workflow_id, "flow": self.flow, "status": self.status, "started": to_iso(self.start),
                "ended": None if self.end is None else to_iso(self.end),
                "duration_ms": None if self.end is None else self.end - self.start,
                "intervals": [i.to_json(self.start) for i in self.intervals]}


_ENDINGS = (ev.WorkflowCompleted, ev.WorkflowFailed, ev.WorkflowCancelled, ev.WorkflowTerminated)


class _Builder:
    """Open intervals by key, closed ones in the order they were opened."""

    def __init__(self, flow: Union[ir.Flow, None] = None) -> None:
        self.order: list[object] = []
        self.items: dict[object, Interval] = {}
        self.flow = flow  # to name statements in the flow's words

    def open(self, key: object, interval: Interval) -> None:
        if key in self.items and self.items[key].end is None:
            return
        key = key if key not in self.items else (key, len(self.order))
        self.order.append(key)
        self.items[key] = interval

    def get(self, key: object) -> Union[Interval, None]:
        found = self.items.get(key)
        return found if found is not None and found.end is None else None

    def update(self, key: object, **changes: Any) -> None:
        found = self.get(key)
        if found is not None:
            self.items[key] = replace(found, **changes)

    def close(self, key: object, at: int, status: str, detail: Union[str, None] = None) -> None:
        found = self.get(key)
        if found is not None:
            self.items[key] = replace(found, end=max(at, found.start), status=status,
                                      detail=found.detail if detail is None else detail)

    def open_keys(self, prefix: str) -> list[object]:
        return [k for k in self.order if isinstance(k, tuple) and k[0] == prefix and self.get(k) is not None]

    def result(self) -> tuple[Interval, ...]:
        """By start time (a fired deadline is noted when it fires but began earlier), else in order."""
        return tuple(sorted((self.items[k] for k in self.order), key=lambda i: i.start))


def timeline(events: Iterable[ev.Event]) -> Timeline:
    """The intervals of a history (its events in order, beginning with WorkflowStarted)."""
    events = list(events)
    first = events[0]
    if not isinstance(first, ev.WorkflowStarted):
        raise ValueError("a history begins with WorkflowStarted")
    state = initial(first, repinned(events))
    out = _Builder(state.flow)
    out.open(("workflow",), Interval("workflow", "workflow", first.ts, None, "running", detail=first.flow_name))
    _note_waits(out, state, first.ts)
    for event in events[1:]:
        state = evolve(state, event)
        _on_event(out, event, state)
        _note_waits(out, state, event.ts)
        _note_timers(out, state, event.ts)
    if state.terminal:
        ended = state.ended_at if state.ended_at is not None else state.updated_at
        out.close(("workflow",), ended, state.status)
        for key in list(out.order):
            out.close(key, ended, "stopped")
    return Timeline(state.workflow_id, state.flow.name, state.status, first.ts,
                    state.ended_at if state.terminal else None, out.result())


def _on_event(out: _Builder, event: ev.Event, state: WorkflowState) -> None:
    if isinstance(event, ev.ActivityScheduled):
        out.open(("attempt", event.step, event.attempt),
                 Interval("attempt", f"{event.step} #{event.attempt}", event.ts, None, "scheduled",
                          event.step, event.attempt))
    elif isinstance(event, ev.ActivityQueued):
        out.update(("attempt", event.step, event.attempt), status="queued", detail=f"waits for {event.waiting_for}")
    elif isinstance(event, ev.ActivityStarted):
        out.update(("attempt", event.step, event.attempt), status="running", run_start=event.ts)
    elif isinstance(event, ev.ActivityCompleted):
        out.close(("attempt", event.step, event.attempt), event.ts, "completed")
    elif isinstance(event, ev.ActivityFailed):
        error = event.error if isinstance(event.error, dict) else {}
        stopped = error.get("kind") == "cancelled"  # its branch was no longer needed (a race lost, a cancel)
        out.close(("attempt", event.step, event.attempt), event.ts, "cancelled" if stopped else "failed",
                  f"{error.get('kind')}: {error.get('message')}")
    elif isinstance(event, ev.TimerStarted):
        _timer_started(out, event)
    elif isinstance(event, ev.TimerFired):
        timer = state.timers.get(event.timer)
        purpose = timer.purpose if timer is not None else ""
        if purpose.endswith("timeout") and timer is not None:
            out.open(("timer", event.timer), Interval("deadline", f"{timer.step} {purpose.replace('-', ' ')}",
                                                      timer.started_at, None, "fired", timer.step))
        out.close(("timer", event.timer), event.ts, "fired")
    elif isinstance(event, ev.SignalReceived):
        out.open(("signal", event.seq), Interval("signal", f"signal {event.signal}", event.ts, event.ts, "received"))
    elif isinstance(event, ev.ChildStarted):
        status = "detached" if event.detached else "running"
        out.open(("child", event.step), Interval("child", f"{event.step}: child {event.flow}", event.ts,
                                                 event.ts if event.detached else None, status, event.step,
                                                 detail=event.child_id))
    elif isinstance(event, ev.ChildCompleted):
        out.close(("child", event.step), event.ts, "completed")
    elif isinstance(event, ev.ChildFailed):
        error = event.error if isinstance(event.error, dict) else {}
        out.close(("child", event.step), event.ts, "failed", str(error.get("message")))
    elif isinstance(event, ev.LockRequested):
        out.open(("lock", event.frame, event.at), Interval("lock", f"lock {event.lock}", event.ts, None, "waiting",
                                                           detail="home-wide" if event.scope == "home" else ""))
    elif isinstance(event, (ev.LockAcquired, ev.LockGranted)):
        out.close(("lock", event.frame, event.at), event.ts, "acquired")
    elif isinstance(event, _ENDINGS):
        out.close(("workflow",), event.ts, state.status)


def _timer_started(out: _Builder, event: ev.TimerStarted) -> None:
    kind, _, number = event.purpose.partition("-")
    if kind == "retry" and number.isdigit():
        out.open(("timer", event.timer), Interval("retry", f"{event.step} #{number} retry wait", event.ts, None,
                                                  "waiting", event.step, int(number)))
    elif event.purpose == "sleep":
        label = ir.statement_name(out.flow, event.step)
        out.open(("timer", event.timer), Interval("timer", label, event.ts, None, "waiting", event.step))
    # a deadline (``*-timeout``) becomes an interval only if it fires (TimerFired)


def _note_timers(out: _Builder, state: WorkflowState, at: int) -> None:
    """A sleep or retry wait that no longer matters (a race's loser, a cancelled branch) ends here."""
    for key in out.open_keys("timer"):
        timer = state.timers.get(key[1])
        if timer is not None and timer.fired_at is None and not state.timer_wanted(timer):
            out.close(key, at, "cancelled")


def _note_waits(out: _Builder, state: WorkflowState, at: int) -> None:
    """Open an interval for each signal wait that began, close those that ended."""
    now = {("wait", w.step, w.signal): w for w in signal_waits(state) if w.kind != "close"}
    for key, wait in now.items():
        if out.get(key) is None:
            kind = "wait" if wait.kind == "wait" else "listen"
            label = f"{wait.label or wait.step}: {'signal' if kind == 'wait' else 'takes signal'} {wait.signal}"
            out.open(key, Interval(kind, label, at, None, "waiting", wait.step))
    for key in out.open_keys("wait"):
        if key not in now:
            step = state.steps.get(key[1])
            if step is None:
                status = "closed"
            elif step.outcome == "completed":
                status = "received"
            else:
                status = "timed out" if (step.error or {}).get("kind") == "timeout" else "failed"
            out.close(key, at, status)
