"""`lf watch ID`, `lf history ID --follow`, `lf result ID [--wait]`: one workflow, live.

All three read the history incrementally and sleep until a file event (or the slow
poll) says it may have changed (localflow/follow.py); none of them writes anything, so
watching a workflow never changes how it runs.

- `lf watch` prints what `lf run` prints (cli/progress.py: one line per event, the
  `lf signal` command that answers a wait, the events of child workflows) and, when the
  workflow ends, its result panel. ``--exit-status``: exit with the workflow's outcome
  (0 completed, 1 failed/cancelled/terminated, 4 nondeterministic), as `lf run` does.
- `lf history --follow` prints the history's events as lines (seq, time, type, detail),
  those already there first, until the workflow ends; with ``-o json``/``jsonl`` one
  record per line, the shape of `lf history --json`'s elements.
- `lf result` prints the result (JSON text) or, exit 1, the error; ``--wait`` waits for
  the end (``--timeout S`` at most S seconds), through the Python API (``Client.result``).
  A workflow still running is exit 6.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Union

from localflow.cli.common import engine_for, exit_code_of, lf_command, note_supervisor, resolve
from localflow.cli.output import dumps, output_of, print_json
from localflow.cli.progress import ProgressPrinter
from localflow.core import events as ev
from localflow.core.state import WorkflowState
from localflow.core.timefmt import to_iso
from localflow.engine import Engine
from localflow.errors import WorkflowFailed
from localflow.follow import Tail, follow


def _note_idle(engine: Engine, tail: Tail) -> None:
    """Say on stderr when nothing will move the workflow (no supervisor, or imported and held)."""
    if tail.ended or tail.state is None:
        return
    if tail.state.held:
        sys.stderr.write(f"note: {tail.workflow_id} is held (imported): nothing runs until "
                         f"`lf resume {tail.workflow_id}`\n")
    else:
        note_supervisor(engine, "nothing moves it until `lf supervise` runs (or `lf resume --run`)")


# --- lf watch ----------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    fmt = output_of(args)
    printer = ProgressPrinter(workflow_id, lf_command(args)) if fmt == "text" else None
    told = []

    def on_events(tail: Tail, fresh: list[ev.Event]) -> None:
        if printer is None:
            _print_records(fresh, tail.workflow_id)
        elif tail.workflow_id == workflow_id:
            if printer.flow is None and tail.state is not None:
                printer.flow = tail.state.flow
            printer.events(fresh)
        else:
            printer.child(tail.workflow_id, fresh)
        if not told and tail.workflow_id == workflow_id:
            told.append(True)
            _note_idle(engine, tail)

    tail = follow(engine, workflow_id, on_events, children=not args.no_children)
    if printer is not None:
        from localflow.cli import render
        from localflow.cli.common import console

        console().print(render.result_panel(tail.state))
    return exit_code_of(tail.state) if args.exit_status else 0


def _print_records(events: list[ev.Event], workflow_id: str) -> None:
    for event in events:
        sys.stdout.write(dumps({"workflow_id": workflow_id, **ev.to_record(event)}) + "\n")
    sys.stdout.flush()


# --- lf history --follow ------------------------------------------------------------


def cmd_history_follow(args: argparse.Namespace, engine: Union[Engine, None] = None,
                       workflow_id: Union[str, None] = None) -> int:
    """`lf history ID --follow` (``--upto`` is refused with it); `lf history` passes the engine and id."""
    from localflow.errors import InputError

    if getattr(args, "upto", None) is not None:
        raise InputError("--upto and --follow do not go together: --upto shows a past moment")
    engine = engine or engine_for(args)
    workflow_id = workflow_id or resolve(engine, args.id)
    machine = output_of(args) != "text"
    line = None if machine else _HistoryLines(getattr(args, "time_format", None))

    def on_events(tail: Tail, fresh: list[ev.Event]) -> None:
        if machine:
            for event in fresh:
                sys.stdout.write(dumps(ev.to_record(event)) + "\n")
            sys.stdout.flush()
        elif line is not None:
            line.print(fresh, tail.state.flow if tail.state is not None else None)
        if fresh and fresh[0].seq == 1:
            _note_idle(engine, tail)

    follow(engine, workflow_id, on_events)
    return 0


class _HistoryLines:
    """The history table's columns as lines that can be printed one at a time."""

    def __init__(self, time_format: Union[str, None]) -> None:
        from localflow.cli.common import console
        from localflow.cli.output import plain

        self.out = console()
        self.plain = plain()
        from localflow.cli.times import TimePolicy

        # one policy for the whole run; "relative" would be relative to when it started: UTC instead
        self.policy = TimePolicy("local" if time_format == "local" else "utc")
        self.width = 29 if time_format == "local" else 24  # 2026-12-30 19:04:06.809+09:00 / ...06.809Z
        if not self.plain:
            from rich.text import Text

            self.out.print(Text(f"{'SEQ':>4}  {'TIME':<{self.width}} {'TYPE':<22} DETAIL", style="bold"))
        else:
            sys.stdout.write(f"{'SEQ':>4}  {'TIME':<{self.width}} {'TYPE':<22} DETAIL\n")

    def _time(self, ms: int) -> str:
        return self.policy.precise(ms)

    def print(self, events: list[ev.Event], flow: Any) -> None:
        from localflow.present import describe

        for event in events:
            kind = type(event).__name__
            text = f"{event.seq:>4}  {self._time(event.ts):<{self.width}} {kind:<22} {describe(event, flow)}"
            if self.plain:
                sys.stdout.write(text + "\n")
            else:
                from rich.text import Text

                self.out.print(Text(text, style="bold" if event.decision else ""), soft_wrap=True)
        sys.stdout.flush()


# --- lf result -----------------------------------------------------------------------


def cmd_result(args: argparse.Namespace) -> int:
    from localflow.client import Client

    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    try:  # WorkflowStillRunning (exit 6) if it runs and we may not wait, WaitTimedOut after --timeout
        Client(engine.paths.home).result(workflow_id, wait=args.wait or args.timeout is not None,
                                         timeout=args.timeout)
    except WorkflowFailed:
        pass  # said below, from the state
    state = engine.state_of(workflow_id)
    fmt = output_of(args)
    shape = result_json(state)
    if fmt == "json":
        print_json(shape)
    elif fmt == "jsonl":
        sys.stdout.write(dumps(shape) + "\n")
    elif state.status == "completed":
        print_json(state.result)
    else:
        from localflow.cli.main import shown

        message = shape["error"]["message"] if isinstance(shape["error"], dict) else shape["error"]
        sys.stderr.write(f"error: {workflow_id} {shape['status']}: {shown(str(message))}\n")
    return exit_code_of(state)


def result_json(state: WorkflowState) -> dict[str, Any]:
    """`lf result -o json`: ``{"id", "status", "result", "error", "ended"}`` (``error`` an object or null)."""
    error = state.error
    if state.divergence is not None:
        error = {"kind": "nondeterministic", "message": f"nondeterministic at seq {state.divergence['at']}"}
    return {"id": state.workflow_id, "status": state.status,
            "result": state.result if state.status == "completed" else None,
            "error": None if state.status == "completed" else error,
            "ended": None if state.ended_at is None else to_iso(state.ended_at)}
