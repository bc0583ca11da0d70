"""`lf start FLOW` (create a workflow) and `lf run FLOW` (create it and see it through).

`lf run` drives the workflow itself when no supervisor is running (it takes the
executor slot for the time it runs), or follows the supervisor's progress when
one is. Either way it prints each event as it happens, then the result, and
exits 0 if the workflow completed, 1 if it failed.

`lf run --skip-time` drives it on a virtual clock that starts at the real time and
moves with it while anything runs, but jumps to the next timer whenever nothing
else can happen (activities are real processes and take the time they take). Each
jump that makes a workflow's timer due is recorded in that history as a
``TimeSkipped`` event just before its ``TimerFired``. It needs the executor slot:
with a supervisor running (which would run the workflow on real time) it refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from localflow.cli import render
from localflow.cli.common import (console, engine_for, exit_code_of, holder_json, lf_command, note_supervisor,
                                  parse_input, print_json)
from localflow.cli.progress import ProgressPrinter as _ProgressPrinter
from localflow.clock import VirtualClock
from localflow.core.state import WorkflowState
from localflow.core.timefmt import format_span
from localflow.engine import Engine
from localflow.errors import LocalFlowError, SupervisorRunning
from localflow.supervisor.executor import Executor
from localflow.supervisor.loop import drive
from localflow.supervisor.service import ExecutorSlot, supervisor_running

_POLL_S = 0.2
_FOLLOW_S = 1.0


def _start(engine: Engine, args: argparse.Namespace) -> str:
    """Create the workflow: the flow found and parsed once, ``-i`` typed by its inputs' defaults."""
    flow, source = engine.load_flow(args.flow)
    return engine.start_flow(flow, source, parse_input(args.input, args.pairs, flow), args.id)


def cmd_start(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = _start(engine, args)
    if not args.json:
        print(workflow_id, flush=True)
    holder = note_supervisor(engine, "nothing runs it yet: start one with `lf supervise` "
                                     "(or use `lf run` next time)")
    if args.json:
        print_json({"id": workflow_id, "flow": engine.state_of(workflow_id).flow.name,
                    "supervisor": holder_json(holder)})
    return 0


class _Silent:
    """A progress printer that prints nothing (`lf run -o json` prints only the end)."""

    seen = 0
    flow = None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class SkipTimeRefused(LocalFlowError):
    """`lf run --skip-time` while a supervisor holds the executor slot: it would run on real time."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(f"--skip-time cannot be used while a supervisor runs workflows in this home ({holder}): "
                         "it would run the workflow on real time; stop it first, or run without --skip-time")


def cmd_run(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    skip_time = getattr(args, "skip_time", False)
    if skip_time:
        holder = supervisor_running(engine)
        if holder is not None and holder.startswith("supervisor"):
            raise SkipTimeRefused(holder)  # before anything is created: the supervisor would take it up
        engine.clock = VirtualClock(start_ms=engine.clock(), real_time=True)
    workflow_id = _start(engine, args)
    if args.json:  # -o json: no progress, only the final state (as `lf inspect -o json`)
        printer = _Silent()
        state = _drive_or_follow(engine, workflow_id, printer, skip_time, getattr(args, "workers", 0),
                                 max(getattr(args, "max_activities", 0), 0))
        print_json(render.details(state))
        return exit_code_of(state)
    printer = _ProgressPrinter(workflow_id, lf_command(args))
    printer.flow = engine.load(workflow_id).state.flow
    if skip_time:
        printer.note("skipping time: a virtual clock jumps to the next timer whenever nothing else can happen")
    started = time.monotonic()
    state = _drive_or_follow(engine, workflow_id, printer, skip_time, getattr(args, "workers", 0),
                             max(getattr(args, "max_activities", 0), 0))
    if skip_time:
        skipped = engine.clock.skipped_ms
        printer.note(f"virtual time skipped: {format_span(skipped)} ({skipped} ms) "
                     f"in {time.monotonic() - started:.2f}s of real time")
    console().print(render.result_panel(state))
    return exit_code_of(state)


def _drive_or_follow(engine: Engine, workflow_id: str, printer: "_ProgressPrinter",
                     skip_time: bool = False, workers: int = 0, max_activities: int = 0) -> WorkflowState:
    """Drive the workflow if the executor slot is free; follow a supervisor that runs it; and if
    the slot is held by another `lf run` (which drives only its own workflow), wait for it.
    With ``skip_time`` a supervisor is never followed (it runs on real time): that is an error."""
    from localflow.follow import Tail, Wakeup

    told = None
    tail = Tail(engine, workflow_id)  # read incrementally: a stat when nothing changed
    with contextlib.ExitStack() as stack:
        wake = None
        while True:
            holder = supervisor_running(engine)
            if holder is None:
                try:
                    return _drive(engine, workflow_id, printer, workers, max_activities)
                except SupervisorRunning as exc:
                    holder = exc.holder
            if skip_time and holder.startswith("supervisor"):
                raise SkipTimeRefused(holder)
            if holder != told:
                printer.note(f"following: {holder} runs it" if holder.startswith("supervisor") else
                             f"waiting: {holder} holds the executor slot; this workflow runs when it is done")
                told = holder
            printer.events(tail.poll())
            if tail.ended:
                return tail.state
            if wake is None:  # woken by the history's file events; each second the slot is looked at again
                wake = stack.enter_context(Wakeup([(engine.paths.workflow_dir(workflow_id), False)]))
            wake.wait(_FOLLOW_S)


def _drive(engine: Engine, workflow_id: str, printer: _ProgressPrinter, workers: int = 0,
           max_activities: int = 0) -> WorkflowState:
    """Run the workflow (and the child flows it starts) with the supervisor's own loop."""
    slot = ExecutorSlot(engine, f"lf run {workflow_id}")
    slot.acquire()
    printer.events(engine.load(workflow_id).events)
    seen = {workflow_id}

    def on_events(wid: str, events: list) -> None:
        seen.add(wid)
        printer.events(events) if wid == workflow_id else printer.child(wid, events)

    # (call steps' workers start on first use)
    executor = Executor(engine, on_events=on_events, workers=workers, max_activities=max_activities)

    def poll() -> None:  # no file watcher here: signals or cancels from other processes, a stat each
        for wid in sorted(seen):
            executor.hint(wid)

    def finished() -> bool:
        state = engine.state_of(workflow_id)
        return (state.terminal or state.divergence is not None) and not executor.busy

    try:
        executor.mark_dirty(workflow_id)
        drive(executor, executor.reconcile, until=finished, periodic=poll, period_s=_POLL_S)
        return engine.state_of(workflow_id)
    except KeyboardInterrupt:
        printer.note("interrupted: stopping the running activity; `lf supervise` will carry the workflow on")
        raise
    finally:
        executor.stop()
        slot.release()


def follow(engine: Engine, workflow_id: str, since: int = 0, lf: str = "lf") -> int:
    """Run (or follow) an existing workflow to its end in the foreground (`lf resume --run`,
    `lf fork --run`), printing its events after seq ``since``; the exit code of `lf run`."""
    printer = _ProgressPrinter(workflow_id, lf)
    printer.seen = since
    printer.flow = engine.load(workflow_id).state.flow
    state = _drive_or_follow(engine, workflow_id, printer)
    console().print(render.result_panel(state))
    return exit_code_of(state)
