"""`lf signal ID NAME [--data JSON]`, `lf cancel ID`, `lf terminate ID`: durable requests recorded in the history.

Both append to the workflow's history under its lock, so they work whether or
not a supervisor is running; the supervisor (or `lf run`) acts on them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields, is_dataclass

from localflow import ir
from localflow.cli.common import engine_for, holder_json, note_supervisor, parse_data, print_json, resolve
from localflow.core import events as ev
from localflow.engine import Engine



def cmd_signal(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    data = parse_data(args.data)
    tx = engine.signal(workflow_id, args.name, data)
    consumed = any(isinstance(e, (ev.SignalConsumed, ev.SignalTaken)) or (isinstance(e, ev.LoopClosed) and e.signal_seq)
                   for e in tx.appended)
    received = next((e for e in tx.appended if isinstance(e, ev.SignalReceived)), None)
    if args.json:
        print_json({"id": workflow_id, "signal": args.name, "seq": received.seq if received else None,
                    "taken": consumed})
    else:
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
    """Every signal name a ``wait signal`` step, a signal loop or an ``on signal`` handler of ``flow`` waits for."""
    names: set[str] = set()
    stack: list[object] = [flow]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.WaitSignal):
            names.add(node.signal)
        elif isinstance(node, (ir.SignalLoop, ir.Handler)):
            names.update(n for n in (node.signal, getattr(node, "close_signal", None)) if n)
        if is_dataclass(node):
            stack.extend(getattr(node, f.name) for f in fields(node))
        elif isinstance(node, (tuple, list)):
            stack.extend(node)
    return names


def cmd_cancel(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    tx = engine.cancel(workflow_id, args.reason)
    if args.json:
        print_json({"id": workflow_id, "cancel_requested": True, "already_requested": not tx.appended,
                    "status": tx.state.status})
    elif not tx.appended:
        print(f"{workflow_id}: cancellation was already requested")
    else:
        print(f"cancellation of {workflow_id} recorded; running work is stopped and compensations run")
    _note_supervisor(engine)
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    """Record WorkflowTerminated; if no supervisor or `lf run` holds the executor slot, kill the attempts'
    processes here and terminate the running children (``Client.terminate``)."""
    from localflow.cli.common import client_for
    from localflow.supervisor.service import supervisor_running

    client = client_for(args)
    workflow_id = client.resolve(args.id)
    terminated = client.terminate(workflow_id, args.reason)
    holder = supervisor_running(client.engine)
    if args.json:
        print_json({"id": workflow_id, "status": "terminated", "terminated": terminated,
                    "executor": holder_json(holder) or {"role": "lf terminate", "pid": os.getpid()}})
        return 0
    children = [w for w in terminated if w != workflow_id]
    print(f"{workflow_id} terminated" + (f", with its child workflows {', '.join(children)}" if children else "")
          + ("; its running attempts were killed" if holder is None else
             f"; {holder} kills its running attempts"))
    return 0


def _note_supervisor(engine: Engine) -> None:
    note_supervisor(engine, "it takes effect when one starts (`lf supervise`)")
