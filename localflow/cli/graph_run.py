"""`lf graph --run ID [--mermaid]`: the flow a workflow runs, each statement with how it went.

The graph is the workflow's *pinned* flow (what it really runs, whatever flows/ holds now),
drawn by graph_render with a mark per statement (``run_marks``):

- a step: its status and attempts (``completed, 2 attempts``; in a loop, every run:
  ``3 runs: 2 completed, 1 failed; 4 attempts``), a child's id, a wait's signal; ``undone``
  when its compensation ran; ``not run`` (yet) when it never started;
- ``sleep``: slept, sleeping until when, or skipped; ``if``: the branch(es) taken;
  loops: how many items or iterations; ``parallel``/``race``: started; a lock: acquired.

``--run`` takes a workflow id (prefix, tail, @last); FLOW is a flow name. They are
different arguments, so a flow and a workflow of the same name can never be confused.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any, Union

from localflow import ir
from localflow.cli.graph_render import Mark, flow_mermaid, flow_tree
from localflow.core import events as ev
from localflow.core.frames import statement_at
from localflow.core.state import UNDO_PREFIX, StepState, WorkflowState
from localflow.core.timefmt import format_span, to_iso
from localflow.timeline import signal_waits

_BRANCH = {"else": "else", "": "no branch"}


def run_marks(state: WorkflowState, events: list[ev.Event]) -> dict[int, Mark]:
    """A mark per statement of ``state.flow`` that has one, by ``id(statement)``."""
    facts = _Facts(state.flow, events)
    marks: dict[int, Mark] = {}
    for stmt in ir.walk(state.flow.body):
        mark = _mark(stmt, state, facts)
        if mark is not None:
            marks[id(stmt)] = mark
    return marks


class _Facts:
    """What decision events say about control statements: branches taken, items, iterations."""

    def __init__(self, flow: ir.Flow, events: list[ev.Event]) -> None:
        self.seen: dict[int, list[ev.Event]] = {}
        for event in events:
            if hasattr(event, "frame") and hasattr(event, "at"):
                stmt = statement_at(flow, event.frame, event.at)
                if stmt is not None:
                    self.seen.setdefault(id(stmt), []).append(event)

    def of(self, stmt: object, kind: type) -> list[Any]:
        return [e for e in self.seen.get(id(stmt), ()) if isinstance(e, kind)]


def _mark(stmt: object, state: WorkflowState, facts: _Facts) -> Union[Mark, None]:
    if isinstance(stmt, ir.STEP_KINDS):
        return _step_mark(stmt, state)
    if isinstance(stmt, ir.Sleep):
        return _sleep_mark(stmt, state)
    if isinstance(stmt, ir.If):
        taken = Counter(_branch_name(e.branch) for e in facts.of(stmt, ev.BranchChosen))
        return _counted("took", taken) if taken else _not_run(state)
    if isinstance(stmt, ir.For):
        loops = facts.of(stmt, ev.LoopStarted)
        items = sum(len(e.items) for e in loops)
        return Mark("completed", f"{items} item{'s' if items != 1 else ''}") if loops else _not_run(state)
    if isinstance(stmt, (ir.While, ir.Repeat)):
        tests = facts.of(stmt, ev.LoopIterated)
        runs = sum(1 for e in tests if e.go)
        return Mark("completed", f"{runs} iteration{'s' if runs != 1 else ''}") if tests else _not_run(state)
    if isinstance(stmt, ir.SignalLoop):
        taken = len(facts.of(stmt, ev.SignalTaken))
        closed = facts.of(stmt, ev.LoopClosed)
        status = "completed" if closed else ("waiting" if taken or not state.terminal else "not run")
        return Mark(status, f"took {taken} signal{'s' if taken != 1 else ''}" + (", closed" if closed else ""))
    if isinstance(stmt, ir.Parallel):
        started = facts.of(stmt, ev.ParallelStarted)
        return Mark("completed", f"{'race' if stmt.race else 'parallel'} started"
                    + (f" {len(started)} times" if len(started) > 1 else "")) if started else _not_run(state)
    if isinstance(stmt, ir.Lock):
        got = facts.of(stmt, ev.LockAcquired) + facts.of(stmt, ev.LockGranted)
        asked = facts.of(stmt, ev.LockRequested)
        if got:
            return Mark("completed", "acquired" + (f" {len(got)} times" if len(got) > 1 else ""))
        return Mark("waiting", "waiting for the lock") if asked and not state.terminal else _not_run(state)
    return None


def _branch_name(label: str) -> str:
    if label.startswith("then"):
        index = label[4:]
        return "then" if index in ("", "0") else f"elif {index}"
    return _BRANCH.get(label, label)


def _counted(verb: str, counts: Counter) -> Mark:
    parts = [name if n == 1 else f"{name} ({n} times)" for name, n in counts.items()]
    return Mark("completed", f"{verb} {', '.join(parts)}")


def _not_run(state: WorkflowState) -> Mark:
    return Mark("not run", "not run" if state.terminal else "not run yet")


def _instances(stmt: Any, state: WorkflowState) -> list[StepState]:
    """The runs of a step: its key, or in loops its key with an iteration suffix (``pack[2]``)."""
    name = stmt.name
    return [s for key, s in state.steps.items() if key == name or (key.startswith(name + "[") and s.kind != "undo")]


def _step_mark(stmt: Any, state: WorkflowState) -> Mark:
    runs = _instances(stmt, state)
    if not runs:
        waiting = [w for w in signal_waits(state) if w.kind == "wait" and w.step.split("[", 1)[0] == stmt.name]
        return Mark("waiting", f"waiting for signal {waiting[0].signal}") if waiting else _not_run(state)
    statuses = [_status_of(s) for s in runs]
    attempts = sum(len(s.attempts) for s in runs)
    undone = [state.steps[UNDO_PREFIX + s.step] for s in runs if UNDO_PREFIX + s.step in state.steps]
    if len(runs) == 1:
        text = _one_run(runs[0], statuses[0])
    else:
        counted = ", ".join(f"{n} {status}" for status, n in Counter(statuses).items())
        text = f"{len(runs)} runs: {counted}" + (f"; {attempts} attempts" if attempts else "")
    if undone:
        text += ", undone" if all(u.status == "completed" for u in undone) else ", undoing"
    overall = next((s for s in ("running", "waiting", "failed", "caught", "cancelled") if s in statuses), "completed")
    return Mark(overall, text)


def _status_of(step: StepState) -> str:
    status = step.status
    if status in ("scheduled", "queued"):
        return "running"
    if status == "running" and step.kind == "wait":
        return "waiting"
    if status == "failed" and step.caught is not None:
        return "caught"
    if status == "failed" and (step.error or {}).get("kind") == "cancelled":
        return "cancelled"  # stopped because its branch was no longer needed (a race lost, a cancel)
    return status


def _one_run(step: StepState, status: str) -> str:
    if step.kind == "child":
        return f"{status}: {step.child_id}"
    if step.kind == "wait":
        return {"waiting": "waiting for its signal", "completed": "signal received"}.get(status, status)
    shown = {"caught": "failed, caught", "cancelled": "cancelled"}.get(status, step.status)
    count = len(step.attempts)
    return f"{shown}, {count} attempt{'s' if count != 1 else ''}"


def _sleep_mark(stmt: ir.Sleep, state: WorkflowState) -> Mark:
    timers = [t for t in state.timers.values() if t.purpose == "sleep"
              and (t.step == stmt.id or t.step.startswith(stmt.id + "["))]
    if not timers:
        return _not_run(state)
    last = timers[-1]
    if last.fired_at is not None:
        slept = format_span(last.fired_at - last.started_at)
        return Mark("completed", f"slept {slept}" + (f" ({len(timers)} times)" if len(timers) > 1 else ""))
    if state.timer_wanted(last):
        return Mark("running", f"sleeping until {to_iso(last.fire_at)[:19]}Z")
    return Mark("skipped", "not needed (its branch ended)")


def run_json(state: WorkflowState, marks: dict[int, Mark]) -> dict[str, Any]:
    """`lf graph --run ID -o json`: the workflow and one entry per marked statement, in flow order."""
    statements = []
    for stmt in ir.walk(state.flow.body):
        mark = marks.get(id(stmt))
        if mark is not None:
            statements.append({"line": getattr(stmt, "line", None), "kind": type(stmt).__name__,
                               "name": ir.shown_name(stmt),
                               "status": mark.status, "detail": mark.text})
    return {"id": state.workflow_id, "flow": state.flow.name, "status": state.status,
            "flow_hash": state.flow_hash, "statements": statements}


def cmd_graph_run(args: argparse.Namespace) -> int:
    from localflow.cli.common import console, engine_for, resolve
    from localflow.cli.output import output_of, print_json

    engine = engine_for(args)
    loaded = engine.load(resolve(engine, args.run))
    marks = run_marks(loaded.state, loaded.events)
    mark_of = lambda stmt: marks.get(id(stmt))  # noqa: E731 - the renderer's Marks callable
    if output_of(args) == "json":
        print_json(run_json(loaded.state, marks))
    elif getattr(args, "mermaid", False):
        chart = flow_mermaid(loaded.state.flow, mark_of)
        head, _, rest = chart.partition("\n")  # the workflow named in a comment under the chart's first line
        sys.stdout.write(f"{head}\n    %% workflow {loaded.state.workflow_id}: {loaded.state.status}\n{rest}")
    else:
        from rich.text import Text

        out = console()
        out.print(Text.assemble(("workflow ", "bold"), loaded.state.workflow_id, f"  {loaded.state.status}"))
        out.print(flow_tree(loaded.state.flow, mark_of))
    return 0
