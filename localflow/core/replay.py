"""Replay: fold a history event by event and check every recorded decision (pure).

At each decision event, ``decide`` on the state folded so far must produce the
command that event records; a difference raises ``NondeterminismError`` naming
the seq, what the flow decides now, what the history holds, and the flow line.
Pass ``flow`` to replay an old history against a *new* definition: that is how
a user checks that editing a flow is safe for workflows already running.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence, Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.state import WorkflowState, evolve, initial, label_of
from localflow.errors import NondeterminismError


def replay(events: Sequence[ev.Event], flow: Union[ir.Flow, None] = None,
           upto: Union[int, None] = None) -> WorkflowState:
    """The state after ``events`` (up to seq ``upto``), every decision checked on the way."""
    first = events[0]
    if not isinstance(first, ev.WorkflowStarted):
        raise NondeterminismError(first.seq, "WorkflowStarted", type(first).__name__, "a history starts the workflow")
    state = initial(first, flow)
    expected: deque = deque()
    for event in events[1:]:
        if upto is not None and event.seq > upto:
            break
        if event.decision:
            if not expected:
                expected.extend(decide(state))
            recorded = ev.command_of(event)
            wanted = expected.popleft() if expected else None
            if wanted != recorded:
                raise NondeterminismError(event.seq, wanted, recorded, _where(state))
        else:
            expected.clear()  # decisions not yet recorded are decided again after new facts
        state = evolve(state, event)
    return state


def _where(state: WorkflowState) -> str:
    places = [f"{state.flow.file}:{f.current.line}: {label_of(f.current)}{f.suffix}"
              for f in state.frames.values() if f.current is not None and not f.entered]
    return "; ".join(places) or "after the last statement"
