"""Replay: fold a history event by event and check every recorded decision (pure).

At each decision event, ``decide`` on the state folded so far must produce the
command that event records, compared in canonical JSON (so a recorded ``1``
never accepts ``true`` or ``1.0``). Replay is also *complete*: where one
transaction ended and another began, and at the end of an unfinished history,
the flow must have had nothing more to decide, since the engine decides until
nothing is left before it lets a transaction end. So a definition that would
now do more (a wider ``parallel``, a new ``timeout``) is caught too.

Transactions are recognised by the ``end`` mark the engine puts on the last event
of each batch (``WorkflowStarted`` included). A batch without its mark is one a
crash cut short (a partial write, or power lost before the fsync): nothing is
asked of it, since the next executor simply goes on deciding. Histories written
before the mark existed are split by timestamp instead (every event of one
transaction shares one ``ts``; transactions in the same millisecond are checked as
one), and their end is not checked.

A difference raises ``NondeterminismError`` naming the seq, what the flow decides
now, what the history holds, and the flow line. Pass ``flow`` to replay an old
history against a *new* definition: that is how a user checks that editing a
flow is safe for workflows already running.

Repairs: a ``WorkflowResumed`` that re-pinned a definition (``lf resume --flow``)
holds for the whole history, and the decisions of the failure it went back over
(from its ``from_seq`` up to it) are not asked of any definition: the one that
failed made them, and the resume set them aside. A fork's copied events (before
its ``WorkflowForked``) are checked as decided by the origin, under the origin's
id, and where the copy ends the fork may decide more than the origin did.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import fields
from typing import Any, Sequence, Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.frozen import replace
from localflow.core.state import WorkflowState, evolve, initial, label_of
from localflow.core.timefmt import format_duration
from localflow.errors import NondeterminismError


def replay(events: Sequence[ev.Event], flow: Union[ir.Flow, None] = None,
           upto: Union[int, None] = None, source: Union[str, None] = None) -> WorkflowState:
    """The state after ``events`` (up to seq ``upto``), every decision checked on the way.

    ``source`` is the text of ``flow`` (for the quoted line of a divergence); without
    ``flow`` the pinned definition and its pinned source are used.
    """
    first = events[0]
    if not isinstance(first, ev.WorkflowStarted):
        raise NondeterminismError(first.seq, "WorkflowStarted", type(first).__name__, "a history starts the workflow")
    text = source if flow is not None else first.flow_source
    if flow is None:
        resumes = [e for e in events if isinstance(e, ev.WorkflowResumed) and e.flow is not None]
        if resumes:  # `lf resume --flow` re-pinned the definition for the whole history
            flow, text = ir.from_json(resumes[-1].flow), resumes[-1].flow_source
    state = initial(first, flow)
    # A fork's copied decisions were made as its origin (whose id is in stdin, child ids, jitter);
    # a fork of a fork holds two copies: before the first WorkflowForked they were the first
    # origin's, up to the next one the next origin's, and after the last one they are its own.
    forks = [e for e in events if isinstance(e, ev.WorkflowForked)]
    deciders = [f.origin["workflow_id"] for f in forks] + [first.workflow_id]
    state = replace(state, workflow_id=deciders[0])
    superseded = _superseded(events)
    marked = first.end  # batches carry end marks (else: the timestamp rule of older histories)
    expected: deque = deque()
    previous: ev.Event = first
    for event in events[1:]:
        if upto is not None and event.seq > upto:
            return replace(state, workflow_id=first.workflow_id)  # (a fork's copy is checked as its origin)
        if isinstance(event, ev.WorkflowNondeterministic):
            break  # the executor's own record of a divergence: what follows was never decided
        if event.decision and any(start <= event.seq < end for start, end in superseded):
            expected.clear()  # the failure a resume superseded: the definition that failed decided it
        elif event.decision:
            if not expected:
                expected.extend(decide(state))
            recorded = ev.command_of(event)
            wanted = expected.popleft() if expected else None
            if canonical(wanted) != canonical(recorded):
                raise NondeterminismError(event.seq, wanted, recorded, _where(state),
                                          _excerpt(state, text) + _differences(wanted, recorded))
        else:
            if _transaction_ended(previous, event, marked) and not isinstance(event, ev.WorkflowForked):
                _nothing_left(state, expected, event.seq, text)  # (a fork may go on from there differently)
            expected.clear()  # decisions not yet recorded are decided again after new facts
        state = evolve(state, event)
        if isinstance(event, ev.WorkflowForked):
            state = replace(state, workflow_id=deciders[forks.index(event) + 1])
        previous = event
    whole = upto is None or upto >= previous.seq
    if whole and marked and previous.end and not isinstance(previous, ev.WorkflowStarted):
        _nothing_left(state, expected, previous.seq + 1, text)  # the last transaction decided all it could
    return replace(state, workflow_id=first.workflow_id)


def _superseded(events: Sequence[ev.Event]) -> list[tuple[int, int]]:
    """The seq ranges ``[from, resume)`` each ``lf resume`` went back over."""
    return [(e.from_seq, e.seq) for e in events if isinstance(e, ev.WorkflowResumed) and e.from_seq is not None]


def canonical(command: Any) -> str:
    """A command as the codec would write it: its kind and its fields in canonical JSON."""
    if command is None:
        return "null"
    body = {f.name: getattr(command, f.name) for f in fields(command)}
    return type(command).__name__ + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _transaction_ended(previous: ev.Event, event: ev.Event, marked: bool) -> bool:
    """Did a transaction end (whole) right before ``event``?"""
    if isinstance(previous, ev.WorkflowStarted):
        return False  # written alone, and it decides nothing: nothing to ask of it
    return previous.end if marked else event.ts != previous.ts


def _nothing_left(state: WorkflowState, expected: deque, seq: int, text: Union[str, None]) -> None:
    """A transaction ended here: the flow must not want to decide anything more."""
    if state.terminal or state.divergence is not None:
        return
    more = list(expected) or decide(state)
    if more:
        raise NondeterminismError(seq, more[0], None, _where(state) + "; the history recorded no such decision",
                                  _excerpt(state, text) + (_described(more[0]),))


def _excerpt(state: WorkflowState, text: Union[str, None]) -> tuple[str, ...]:
    """The flow line deciding now, with a caret under the statement (the IR keeps positions)."""
    for frame in state.frames.values():
        stmt = frame.current
        if stmt is None or frame.entered or not getattr(stmt, "line", 0):
            continue
        lines = (text or "").splitlines()
        if not 0 < stmt.line <= len(lines):
            return (f"{state.flow.file}:{stmt.line}",)
        col = max(getattr(stmt, "col", 1), 1)
        return (f"{state.flow.file}:{stmt.line}:{col}:", f"    {lines[stmt.line - 1]}", "    " + " " * (col - 1) + "^")
    return ()


def _differences(wanted: Any, recorded: Any) -> tuple[str, ...]:
    """Field by field: ``timeout_ms: recorded 10m, now 1h``; or what each side is when the kinds differ."""
    if wanted is None or recorded is None or type(wanted) is not type(recorded):
        return (f"recorded {_kind(recorded)}, now {_kind(wanted)}",)
    found = []
    for f in fields(wanted):
        then, now = getattr(recorded, f.name), getattr(wanted, f.name)
        if _json(then) != _json(now):
            found.append(f"{f.name}: recorded {_value(f.name, then)}, now {_value(f.name, now)}")
    return tuple(found)


def _described(command: Any) -> str:
    """Every field of a decision the history does not have."""
    values = ", ".join(f"{f.name} {_value(f.name, getattr(command, f.name))}" for f in fields(command))
    return f"the flow would now record {ev.recorded_name(command)}: {values}"


def _kind(command: Any) -> str:
    if command is None:
        return "no decision"
    step = getattr(command, "step", None)
    return ev.recorded_name(command) + (f" of step {step!r}" if step else "")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _value(name: str, value: Any) -> str:
    if name.endswith("_ms") and isinstance(value, int):
        return format_duration(value)
    text = _json(value)
    return text if len(text) <= 120 else text[:119] + "…"


def _where(state: WorkflowState) -> str:
    places = [f"{state.flow.file}:{f.current.line}: {label_of(f.current)}{f.suffix}"
              for f in state.frames.values() if f.current is not None and not f.entered]
    return "; ".join(places) or "after the last statement"
