"""`lf signal ID NAME [--data JSON]` and `lf cancel ID`: durable requests recorded in the history.

Both append to the workflow's history under its lock, so they work whether or
not a supervisor is running; the supervisor (or `lf run`) acts on them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, is_dataclass

from localflow import ir
from localflow.cli.common import engine_for, note_supervisor, parse_data
from localflow.core import events as ev
from localflow.engine import Engine
from localflow.store.paths import validate_workflow_id


def cmd_signal(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = validate_workflow_id(args.id)
    data = parse_data(args.data)
    tx = engine.signal(workflow_id, args.name, data)
    consumed = any(isinstance(e, ev.SignalConsumed) for e in tx.appended)
    print(f"signal '{args.name}' recorded for {workflow_id}" + (" and taken by a waiting step" if consumed else
                                                              " (buffered until a step waits for it)"))
    awaited = waited_signals(tx.state.flow)
    if args.name not in awaited:
        known = ", ".join(sorted(awaited)) or "none"
        sys.stderr.write(f"warning: flow {tx.state.flow.name} never waits for signal '{args.name}' "
                         f"(it waits for: {known}); it stays buffered and unused\n")
    _note_supervisor(engine)
    return 0


def waited_signals(flow: ir.Flow) -> set[str]:
    """Every signal name a ``wait signal`` step of ``flow`` waits for."""
    names: set[str] = set()
    stack: list[object] = [flow]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.WaitSignal):
            names.add(node.signal)
        elif is_dataclass(node):
            stack.extend(getattr(node, f.name) for f in fields(node))
        elif isinstance(node, (tuple, list)):
            stack.extend(node)
    return names


def cmd_cancel(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    tx = engine.cancel(validate_workflow_id(args.id), args.reason)
    if not tx.appended:
        print(f"{args.id}: cancellation was already requested")
    else:
        print(f"cancellation of {args.id} recorded; running work is stopped and compensations run")
    _note_supervisor(engine)
    return 0


def _note_supervisor(engine: Engine) -> None:
    note_supervisor(engine, "it takes effect when one starts (`lf supervise`)")
