"""The progress printer of `lf run` and `lf watch`: one line per event as it lands.

It also keeps its own fold of the events it is given, so that whenever the workflow
comes to wait for a signal it can say which command answers it, once per wait:

    waiting for signal 'approve' (step approval, times out at 12:00:30Z):
      lf signal Approval-20261130-120000-1a2b3c approve --data '{}'

Events may arrive more than once (each caller passes what it read); those at or before
``seen`` are skipped. Printing only: nothing here reads files.
"""

from __future__ import annotations

import shlex
import threading
from typing import Any, Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.state import WorkflowState, evolve, initial
from localflow.core.timefmt import to_iso
from localflow.present import describe
from localflow.timeline import SignalWait, signal_waits


class ProgressPrinter:
    def __init__(self, workflow_id: str, lf: str = "lf") -> None:
        self.workflow_id = workflow_id
        self.seen = 0
        self.flow = None  # the pinned flow, so control-flow events can name their statement
        self.lf = lf  # how the user runs lf (``lf --home DIR``), for the commands it suggests
        self._guard = threading.Lock()
        self._state: Union[WorkflowState, None] = None
        self._folded = 0  # the last seq folded into ``_state``; 0 and a gap: no hints
        self._hinted: set[tuple[str, str]] = set()
        self._child_flows: dict[str, Any] = {}
        self._day: Union[str, None] = None  # the UTC date of the first line: later days are written out
        print(f"workflow {workflow_id}")

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def child(self, workflow_id: str, events: list) -> None:
        for event in events:
            if isinstance(event, ev.WorkflowStarted):  # its pinned flow names its statements in the flow's words
                try:
                    self._child_flows[workflow_id] = ir.from_json(event.flow)
                except Exception:  # noqa: BLE001 - a flow that cannot be read: its lines without names
                    pass
            flow = self._child_flows.get(workflow_id)
            print(f"  {self._time(event.ts)}  [{workflow_id}] {describe(event, flow)}", flush=True)

    def events(self, events: list) -> None:
        with self._guard:
            for event in events:
                self._fold(event)
                if event.seq <= self.seen:
                    continue
                self.seen = event.seq
                print(f"  {self._time(event.ts)}  {describe(event, self.flow)}", flush=True)
            self._hint_signals()

    def _time(self, ms: int) -> str:
        """UTC, named, as every time inside the line; with its date once it is not the run's first day
        (a 30-day sleep, a skipped month)."""
        iso = to_iso(ms)
        if self._day is None:
            self._day = iso[:10]
        return iso[11:19] + "Z" if iso[:10] == self._day else f"{iso[:10]} {iso[11:19]}Z"

    def _fold(self, event: Any) -> None:
        """Keep a state of our own (a signal wait records no event: it shows only in the state)."""
        try:
            if isinstance(event, ev.WorkflowStarted) and event.seq == 1:
                self._state, self._folded = initial(event), 1
            elif self._state is not None and event.seq == self._folded + 1:
                self._state, self._folded = evolve(self._state, event), event.seq
        except Exception:  # noqa: BLE001 - a history the printer cannot fold gets no hints, still its lines
            self._state = None

    def _hint_signals(self) -> None:
        if self._state is None or self._folded < self.seen or not settled(self._state):
            return
        waits = signal_waits(self._state)
        for wait in waits:
            if (wait.step, wait.signal) not in self._hinted:
                self._hinted.add((wait.step, wait.signal))
                print(f"  {self.signal_hint(wait)}", flush=True)
        self._hinted &= {(w.step, w.signal) for w in waits}  # a later wait on the same step is told again

    def signal_hint(self, wait: SignalWait) -> str:
        """What the workflow waits for, and the exact command that answers it (on the next line)."""
        name = wait.label or wait.step
        why = {"wait": f"step {name}", "loop": name, "close": f"closes {name}", "handler": name}[wait.kind]
        if wait.timeout_at is not None:
            why += f", times out at {self._time(wait.timeout_at)}"
        command = f"{self.lf} signal {shlex.quote(self.workflow_id)} {shlex.quote(wait.signal)} --data '{{}}'"
        return f"waiting for signal '{wait.signal}' ({why}):\n    {command}"


def settled(state: WorkflowState) -> bool:
    """Nothing more to decide now: what the state waits for is what the workflow waits for (right
    after WorkflowStarted, say, a wait's timeout timer is yet to be recorded)."""
    try:
        return not decide(state)
    except Exception:  # noqa: BLE001 - a state decide refuses is no place to suggest commands
        return False
