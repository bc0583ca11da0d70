"""One-line, human descriptions of events, shared by supervisor logs, `lf run` and `lf history`."""

from __future__ import annotations

import json
from typing import Any

from localflow.core import events as ev
from localflow.core.frames import statement_at
from localflow.core.state import label_of
from localflow.core.timefmt import format_duration, to_iso

_MAX_VALUE = 120


def short_json(value: Any, limit: int = _MAX_VALUE) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(event: ev.Event, flow: Any = None) -> str:
    """One line for an event; with the pinned ``flow``, control-flow events name their statement."""
    if flow is not None and hasattr(event, "at"):
        stmt = statement_at(flow, event.frame, event.at)
        if stmt is not None:
            return _describe_flow_event(event, label_of(stmt))
    return _describe(event)


def _describe(event: ev.Event) -> str:
    if isinstance(event, ev.WorkflowStarted):
        return f"started {event.flow_name} with input {short_json(event.input)}"
    if isinstance(event, ev.ActivityScheduled):
        return f"{event.step}: attempt {event.attempt} scheduled: {' '.join(event.argv)}"
    if isinstance(event, ev.ActivityStarted):
        return f"{event.step}: attempt {event.attempt} running (pid {event.pid})"
    if isinstance(event, ev.ActivityCompleted):
        return (f"{event.step}: attempt {event.attempt} completed in {format_duration(event.duration_ms)}"
                f" -> {short_json(event.result)}")
    if isinstance(event, ev.ActivityFailed):
        error = event.error or {}
        return f"{event.step}: attempt {event.attempt} failed ({error.get('kind')}): {error.get('message')}"
    if isinstance(event, ev.TimerStarted):
        when = to_iso(event.fire_at)[11:19]
        if event.purpose == "sleep":
            return f"{event.step}: sleeping {format_duration(event.duration_ms)} (timer {event.timer}, until {when})"
        return (f"{event.step}: {event.purpose.replace('-', ' attempt ')} in {format_duration(event.duration_ms)}"
                f" (timer {event.timer}, at {when})")
    if isinstance(event, ev.TimerFired):
        return f"timer {event.timer} fired"
    if isinstance(event, ev.WorkflowCompleted):
        return f"completed -> {short_json(event.result)}"
    if isinstance(event, ev.WorkflowFailed):
        return f"failed: {(event.error or {}).get('message')}" + _compensated(event.error)
    if isinstance(event, ev.WorkflowCancelled):
        return f"cancelled: {(event.reason or {}).get('message')}" + _compensated(event.reason)
    return _describe_flow_event(event)


def _compensated(reason: Any) -> str:
    done = (reason or {}).get("compensated")
    return f" (compensated: {', '.join(done)})" if done else ""


def _describe_flow_event(event: ev.Event, where: str = "") -> str:
    where = where or f"{getattr(event, 'frame', '')}#{getattr(event, 'at', '')}"
    if isinstance(event, ev.BranchChosen):
        return f"{where}: took {event.branch or 'no branch'}"
    if isinstance(event, ev.VariableSet):
        return f"set {event.name} = {short_json(event.value)}"
    if isinstance(event, ev.ParallelStarted):
        return f"{where}: {'race' if event.race else 'parallel'} of {event.branches} branches started"
    if isinstance(event, ev.LoopStarted):
        return f"{where}: loop over {len(event.items)} items started"
    if isinstance(event, ev.CatchEntered):
        return f"{event.step}: failed, handled by catch {event.catch}: {(event.error or {}).get('message')}"
    if isinstance(event, ev.SignalReceived):
        return f"signal '{event.signal}' received: {short_json(event.data)}"
    if isinstance(event, ev.SignalConsumed):
        return f"{event.step}: took signal '{event.signal}' (seq {event.signal_seq})"
    if isinstance(event, ev.ChildStarted):
        return f"{event.step}: child workflow {event.child_id} ({event.flow}) requested"
    if isinstance(event, ev.ChildCompleted):
        return f"{event.step}: child {event.child_id} completed -> {short_json(event.result)}"
    if isinstance(event, ev.ChildFailed):
        return f"{event.step}: child {event.child_id} failed: {(event.error or {}).get('message')}"
    if isinstance(event, ev.CancelRequested):
        return f"cancel requested: {event.reason}"
    if isinstance(event, ev.CompensationStarted):
        why = (event.reason or {}).get("message")
        steps = ", ".join(event.steps) or "nothing to undo"
        return f"compensating ({why}): undo {steps}"
    return type(event).__name__
