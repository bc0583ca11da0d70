"""`lf signal ID NAME [--data JSON]`, `lf cancel ID`, `lf terminate ID`: durable requests recorded in the history.

Both append to the workflow's history under its lock, so they work whether or
not a supervisor is running; the supervisor (or `lf run`) acts on them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, is_dataclass

from localflow import ir
from localflow.cli.common import engine_for, note_supervisor, parse_data, print_json
from localflow.core import events as ev
from localflow.engine import Engine
from localflow.errors import LocalFlowError, SupervisorRunning
from localflow.store.paths import validate_workflow_id


def cmd_signal(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = validate_workflow_id(args.id)
    data = parse_data(args.data)
    tx = engine.signal(workflow_id, args.name, data)
    consumed = any(isinstance(e, (ev.SignalConsumed, ev.SignalTaken)) or (isinstance(e, ev.LoopClosed) and e.signal_seq)
                   for e in tx.appended)
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
    tx = engine.cancel(validate_workflow_id(args.id), args.reason)
    if not tx.appended:
        print(f"{args.id}: cancellation was already requested")
    else:
        print(f"cancellation of {args.id} recorded; running work is stopped and compensations run")
    _note_supervisor(engine)
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    """Record WorkflowTerminated; then, if no supervisor or `lf run` holds the executor slot, do here
    what one would: kill the attempts' processes, record them, terminate the running children."""
    from localflow.supervisor.executor import Executor
    from localflow.supervisor.service import ExecutorSlot

    engine = engine_for(args)
    workflow_id = validate_workflow_id(args.id)
    engine.state_of(workflow_id)  # an unknown id: "no workflow" (exit 1), before any lock is taken
    engine.terminate(workflow_id, args.reason)
    slot = ExecutorSlot(engine, f"lf terminate {workflow_id}")
    holder, done = None, [workflow_id]
    try:
        slot.acquire()
    except SupervisorRunning as exc:
        holder = exc.holder  # it acts on the event (a file event, or its next poll)
    else:
        executor = Executor(engine, lock_grantor=False)  # it only ends workflows: it grants no home-wide lock
        try:
            order, todo = [], [workflow_id]
            while todo:  # the workflow, then (terminated by the executor) each running child, depth first
                wid = todo.pop()
                order.append(wid)
                state = executor.reconcile(wid)
                todo.extend(s.child_id for s in state.steps.values()
                            if s.kind == "child" and not s.detached and s.child_id and s.child_id not in order
                            and _exists(engine, s.child_id))
            for wid in reversed(order[1:]):
                executor.reconcile(wid)  # record each child's end in its parent
            executor.reconcile(workflow_id)
            done = order
        finally:
            executor.stop()
            slot.release()
    terminated = [w for w in done if engine.state_of(w).status == "terminated"]
    if args.json:
        print_json({"id": workflow_id, "status": "terminated", "terminated": terminated,
                    "executor": holder or "lf terminate"})
        return 0
    children = [w for w in terminated if w != workflow_id]
    print(f"{workflow_id} terminated" + (f", with its child workflows {', '.join(children)}" if children else "")
          + ("; its running attempts were killed" if holder is None else
             f"; {holder} kills its running attempts"))
    return 0


def _exists(engine: Engine, workflow_id: str) -> bool:
    try:
        engine.state_of(workflow_id)
    except LocalFlowError:
        return False
    return True


def _note_supervisor(engine: Engine) -> None:
    note_supervisor(engine, "it takes effect when one starts (`lf supervise`)")
