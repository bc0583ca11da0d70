"""One-line, human descriptions of events, shared by supervisor logs, `lf run` and `lf history`."""

from __future__ import annotations

import json
from typing import Any

from localflow.core import events as ev
from localflow.core.timefmt import format_duration, to_iso

_MAX_VALUE = 120


def short_json(value: Any, limit: int = _MAX_VALUE) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(event: ev.Event) -> str:
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
        return f"failed: {(event.error or {}).get('message')}"
    return type(event).__name__
