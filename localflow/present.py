"""One-line, human descriptions of events, shared by supervisor logs, `lf run` and `lf history`.

Also how much of a value any view shows: ``clip_text`` / ``clip_json`` keep the start of
it (``MAX_SHOWN_CHARS``, ``MAX_SHOWN_LINES``) and say how much was left out, encoding no
more JSON than they show, so a million-element result prints as fast as a small one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from localflow import ir
from localflow.core import events as ev
from localflow.core.frames import statement_at
from localflow.core.timefmt import format_duration, format_span, to_iso

_MAX_VALUE = 120
MAX_SHOWN_CHARS = 4000
MAX_SHOWN_LINES = 200


def clip_text(text: str, max_chars: int = MAX_SHOWN_CHARS, max_lines: int = MAX_SHOWN_LINES) -> tuple[str, int]:
    """The start of ``text`` to show (at most ``max_chars`` characters and ``max_lines`` lines),
    and how many characters that leaves out (0: all of it is shown)."""
    cut = min(len(text), max_chars)
    newline = -1
    for _ in range(max_lines):
        newline = text.find("\n", newline + 1, cut)
        if newline < 0:
            break
    else:
        cut = newline
    return text[:cut], len(text) - cut


def _encoded(value: Any, indent: int | None, enough: int) -> tuple[str, bool]:
    """JSON text of ``value``, encoded lazily and stopped once longer than ``enough``; True when whole."""
    separators = (",", ": ") if indent is not None else (", ", ": ")
    chunks: list[str] = []
    size = 0
    try:
        for chunk in json.JSONEncoder(ensure_ascii=False, indent=indent, separators=separators).iterencode(value):
            chunks.append(chunk)
            size += len(chunk)
            if size > enough:
                return "".join(chunks), False
    except (RecursionError, TypeError, ValueError):
        return "(a value that cannot be shown as JSON)", True
    return "".join(chunks), True


def clip_json(value: Any, indent: int | None = None, max_chars: int = MAX_SHOWN_CHARS,
              max_lines: int = MAX_SHOWN_LINES) -> tuple[str, int]:
    """``clip_text`` of the JSON text of ``value`` without encoding all of a huge value.

    With ``indent``, a value whose indented form does not fit is shown compact instead.
    The count of characters left out is of the compact form (measured by the C encoder).
    """
    text, whole = _encoded(value, indent, max_chars)
    if whole:
        shown, more = clip_text(text, max_chars, max_lines)
        if not more or indent is None:
            return shown, more
    if indent is not None:
        return clip_json(value, None, max_chars, max_lines)
    shown = text[:max_chars]
    try:
        return shown, len(json.dumps(value, ensure_ascii=False)) - len(shown)
    except (RecursionError, ValueError):  # too deep for the C encoder: count what was seen
        return shown, len(text) - len(shown)


def short_json(value: Any, limit: int = _MAX_VALUE) -> str:
    text, whole = _encoded(value, None, limit)
    return text if whole and len(text) <= limit else text[: limit - 1] + "…"


def describe(event: ev.Event, flow: Any = None) -> str:
    """One line for an event; with the pinned ``flow``, control-flow events name their statement.

    At most ``MAX_SHOWN_CHARS`` characters and ``MAX_SHOWN_LINES`` lines (a huge argv or
    error message is cut, saying how much was left out).
    """
    text = None
    if flow is not None and hasattr(event, "frame") and hasattr(event, "at"):  # WorkflowNondeterministic has no frame
        stmt = statement_at(flow, event.frame, event.at)
        if stmt is not None:
            text = _describe_flow_event(event, ir.shown_name(stmt), stmt)
    if text is None and flow is not None and isinstance(event, ev.TimerStarted):  # a sleep is keyed by its id
        text = _describe(dataclasses.replace(event, step=ir.statement_name(flow, event.step)))
    shown, more = clip_text(_describe(event) if text is None else text)
    return shown + (f" … ({more:,} more characters)" if more else "")


def timer_purpose(purpose: str) -> str:
    """``retry-2`` reads "retry attempt 2"; ``signal-timeout`` "signal timeout"."""
    kind, _, number = purpose.partition("-")
    return f"retry attempt {number}" if kind == "retry" and number.isdigit() else purpose.replace("-", " ")


def _describe(event: ev.Event) -> str:
    if isinstance(event, ev.WorkflowStarted):
        return f"started {event.flow_name} with input {short_json(event.input)}"
    if isinstance(event, ev.ActivityScheduled):
        if event.call is not None:
            return f"{event.step}: attempt {event.attempt} scheduled: call {_call_text(event.call)}" + _handed(event)
        return f"{event.step}: attempt {event.attempt} scheduled: {' '.join(map(str, event.argv))}" + _handed(event)
    if isinstance(event, ev.ActivityHeartbeat):
        return f"{event.step}: attempt {event.attempt} heartbeat: {short_json(event.details)}"
    if isinstance(event, ev.ActivityStarted):
        return f"{event.step}: attempt {event.attempt} running (pid {event.pid})"
    if isinstance(event, ev.ActivityQueued):
        return f"{event.step}: attempt {event.attempt} waits for room: {event.waiting_for}"
    if isinstance(event, ev.ActivityCompleted):
        return (f"{event.step}: attempt {event.attempt} completed in {format_duration(event.duration_ms)}"
                f" -> {short_json(event.result)}")
    if isinstance(event, ev.ActivityFailed):
        error = event.error or {}
        return f"{event.step}: attempt {event.attempt} failed ({error.get('kind')}): {error.get('message')}"
    if isinstance(event, ev.TimerStarted):
        fires, now = to_iso(event.fire_at), to_iso(event.ts)  # UTC, named; with the date unless the same day
        when = (fires[11:19] if fires[:10] == now[:10] else fires[:10] + " " + fires[11:19]) + "Z"
        if event.purpose == "sleep":
            return f"{event.step}: sleeping {format_duration(event.duration_ms)} (timer {event.timer}, until {when})"
        return (f"{event.step}: {timer_purpose(event.purpose)} in {format_duration(event.duration_ms)}"
                f" (timer {event.timer}, at {when})")
    if isinstance(event, ev.TimerFired):
        return f"timer {event.timer} fired"
    if isinstance(event, ev.WorkflowCompleted):
        return f"completed -> {short_json(event.result)}"
    if isinstance(event, ev.WorkflowFailed):
        return f"failed: {(event.error or {}).get('message')}" + _compensated(event.error)
    if isinstance(event, ev.WorkflowNondeterministic):
        return f"nondeterministic: {divergence_text(event.at, event.expected, event.recorded, event.where)}"
    if isinstance(event, ev.WorkflowCancelled):
        return f"cancelled: {(event.reason or {}).get('message')}" + _compensated(event.reason)
    if isinstance(event, ev.WorkflowResumed):
        if event.from_seq is None:
            return f"released: {event.reason}"
        pinned = f", now on {event.flow_file}" if event.flow is not None else ""
        return f"resumed from before seq {event.from_seq}{pinned}: {event.reason}"
    if isinstance(event, ev.WorkflowForked):
        origin = event.origin or {}
        return f"forked from {origin.get('workflow_id')} at seq {origin.get('seq')} (events above are its copy)"
    if isinstance(event, ev.WorkflowImported):
        return f"imported from {short_json(event.bundle)}: held until `lf resume`"
    if isinstance(event, ev.TimeSkipped):
        return f"time skipped ahead {format_span(event.skipped_ms)} (virtual clock)"
    return _describe_flow_event(event)


def _handed(event: ev.ActivityScheduled) -> str:
    """What a scheduled attempt was handed from its step's last heartbeat, if anything."""
    details = getattr(event, "heartbeat_details", None)
    return "" if details is None else f" (resuming from heartbeat {short_json(details, 60)})"


def _call_text(call: Any) -> str:
    """``module.function(name=value, ...)`` as a call step's attempt was scheduled."""
    if not isinstance(call, dict):
        return short_json(call)
    kwargs = call.get("kwargs") if isinstance(call.get("kwargs"), dict) else {}
    args = ", ".join(f"{name}={short_json(value)}" for name, value in kwargs.items())
    return f"{str(call.get('target', '')).replace(':', '.')}({args})"


def _compensated(reason: Any) -> str:
    done = (reason or {}).get("compensated")
    return f" (compensated: {names_text(done)})" if done else ""


def names_text(names: Any) -> str:
    """Step names recorded as a list, comma-separated (whatever a hand-edited history holds there)."""
    return ", ".join(map(str, names)) if isinstance(names, (list, tuple)) else str(names)


def _branch_text(branch: str, stmt: Any) -> str:
    """``then0`` / ``then2`` / ``else`` / "" as the words of the flow: the if, the 2nd elif, the else."""
    if branch == "else":
        return "took the else branch"
    if not branch:
        return "took no branch (no condition held)"
    index = branch[4:] if branch.startswith("then") else ""
    if not index.isdigit():
        return f"took branch {branch}"
    number = int(index)
    arms = getattr(stmt, "branches", None) or ()
    line = getattr(arms[number], "line", 0) if number < len(arms) else 0
    at = f" (line {line})" if line else ""
    return "took the if branch" + at if number == 0 else f"took elif branch {number}{at}"


def _catch_text(event: ev.CatchEntered, stmt: Any) -> str:
    """Which ``catch`` took a failure, as written: ``catch timeout:``, ``catch exit 2, 3:``, ``catch:``."""
    catches = getattr(stmt, "catches", None) or ()
    if not isinstance(event.catch, int) or not 0 <= event.catch < len(catches):
        return "its catch block" if event.catch in (0, None) else f"its catch block #{event.catch + 1}"
    catch = catches[event.catch]
    values = ", ".join(str(v) if not isinstance(v, str) else f'"{v}"' for v in (catch.values or ()))
    written = "catch" if catch.match == "any" else f"catch {catch.match}" + (f" {values}" if values else "")
    return f"`{written}:`" + (f" (line {catch.line})" if getattr(catch, "line", 0) else "")


def _describe_flow_event(event: ev.Event, where: str = "", stmt: Any = None) -> str:
    where = where or f"statement {getattr(event, 'at', 0) + 1 if isinstance(getattr(event, 'at', None), int) else '?'}"
    if isinstance(event, ev.BranchChosen):
        return f"{where}: {_branch_text(event.branch, stmt)}"
    if isinstance(event, ev.VariableSet):
        return f"set {event.name} = {short_json(event.value)}"
    if isinstance(event, ev.ParallelStarted):
        return f"{where}: {'race' if event.race else 'parallel'} of {event.branches} branches started"
    if isinstance(event, ev.LoopStarted):
        return f"{where}: loop over {len(event.items)} items started"
    if isinstance(event, ev.CatchEntered):
        return f"{event.step}: failed, handled by {_catch_text(event, stmt)}: {(event.error or {}).get('message')}"
    if isinstance(event, ev.SignalReceived):
        return f"signal '{event.signal}' received: {short_json(event.data)}"
    if isinstance(event, ev.SignalConsumed):
        return f"{event.step}: took signal '{event.signal}' (seq {event.signal_seq})"
    if isinstance(event, ev.ChildStarted):
        detached = " detached (the step completes now)" if event.detached else ""
        return f"{event.step}: child workflow {event.child_id} ({event.flow}) requested{detached}"
    if isinstance(event, ev.LoopIterated):
        return f"{where}: loop test before iteration {event.iteration}: {'go on' if event.go else 'stop'}"
    if isinstance(event, ev.LoopJumped):
        return f"{where}: {event.jump}"
    if isinstance(event, ev.SignalTaken):
        return f"{where}: took signal '{event.signal}' (seq {event.signal_seq}) as instance {event.instance}"
    if isinstance(event, ev.LoopClosed):
        why = {"signal": f"closing signal taken (seq {event.signal_seq})", "until": "its condition holds",
               "max": "it ran its most iterations"}.get(event.reason, event.reason)
        return f"{where}: signal loop closed: {why}"
    if isinstance(event, ev.ScopeStarted):
        return f"{where}: scope started (its handlers take signals from here on)"
    if isinstance(event, ev.LockRequested):
        return f"{where}: lock '{event.lock}' requested ({'home-wide' if event.scope == 'home' else 'this workflow'})"
    if isinstance(event, (ev.LockAcquired, ev.LockGranted)):
        return f"{where}: lock '{event.lock}' acquired" + (" (granted by the supervisor)"
                                                          if isinstance(event, ev.LockGranted) else "")
    if isinstance(event, ev.LockReleased):
        return f"{where}: lock '{event.lock}' released"
    if isinstance(event, ev.ChildCompleted):
        return f"{event.step}: child {event.child_id} completed -> {short_json(event.result)}"
    if isinstance(event, ev.ChildFailed):
        return f"{event.step}: child {event.child_id} failed: {(event.error or {}).get('message')}"
    if isinstance(event, ev.CancelRequested):
        return f"cancel requested: {event.reason}"
    if isinstance(event, ev.WorkflowTerminated):
        return f"terminated: {event.reason} (no compensation; running work is killed)"
    if isinstance(event, ev.CompensationStarted):
        why = (event.reason or {}).get("message")
        steps = names_text(event.steps)
        return f"compensating ({why}): " + (f"undo {steps}" if steps else "nothing to undo")
    return type(event).__name__


def divergence_text(at: int, expected: Any, recorded: Any, where: str) -> str:
    """One line for a history that disagrees with its flow (the recorded divergence)."""
    decides = short_json(expected) if expected is not None else "nothing"
    holds = short_json(recorded) if recorded is not None else "nothing"
    return (f"at seq {at} the flow decides {decides} but the history recorded {holds} ({where}); "
            "nothing more is decided for it: `lf cancel` ends it")
