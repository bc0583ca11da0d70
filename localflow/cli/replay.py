"""`lf replay ID... | --all [--flow FILE]`: would these histories decide the same today?

Each history is replayed through the pure core (every decision checked, and
nothing more decided where a transaction ended) against the definition it pinned,
or against ``--flow FILE``: the check to run before deploying an edited flow while
workflows of it are in flight. Nothing is written. Exit 0 if every one replays,
4 if any would decide differently, 3 if a history cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localflow import dsl
from localflow.cli.common import engine_for, print_json
from localflow.core.replay import replay
from localflow.errors import InputError, LocalFlowError, NondeterminismError


def cmd_replay(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    flow, source = _flow_file(args.flow)
    ids = list(args.ids)
    if args.all:
        ids += [i for i in engine.workflow_ids() if i not in ids]
    if not ids:
        raise InputError("name the workflows to replay, or pass --all")
    results, worst = [], 0
    for workflow_id in ids:
        result = _check(engine, workflow_id, flow, source, only_flow=args.all and flow is not None)
        if result is None:
            continue
        results.append(result)
        worst = max(worst, {"ok": 0, "nondeterministic": NondeterminismError.exit_code}.get(result["result"], 3))
    if args.json:
        print_json(results)
    else:
        _print(results, flow)
    return worst


def _flow_file(path: "str | None") -> tuple:
    if path is None:
        return None, None
    flow, source = dsl.read_flow_file(Path(path), path)
    return flow, source


def _check(engine, workflow_id: str, flow, source, only_flow: bool) -> "dict | None":
    try:
        events = engine.load(workflow_id).events
    except LocalFlowError as exc:
        return {"id": workflow_id, "result": "unreadable", "error": str(exc)}
    if only_flow and events[0].flow_name != flow.name:
        return None  # --all --flow X: only the workflows of that flow
    try:
        state = replay(events, flow=flow, source=source)
    except NondeterminismError as exc:
        return {"id": workflow_id, "result": "nondeterministic", "seq": exc.seq, "where": exc.detail,
                "explain": list(exc.explain), "message": str(exc)}
    return {"id": workflow_id, "result": "ok", "events": len(events), "status": state.status}


def _print(results: list, flow) -> None:
    against = f"against {flow.file}" if flow is not None else "against the flow each one pinned"
    bad = [r for r in results if r["result"] != "ok"]
    for result in results:
        if result["result"] == "ok":
            print(f"ok    {result['id']}  ({result['events']} events, {result['status']})")
        elif result["result"] == "nondeterministic":
            print(f"FAIL  {result['id']}  {result['message']}")
        else:
            print(f"ERROR {result['id']}  {result['error']}")
    print(f"{len(results) - len(bad)} of {len(results)} replayed {against}"
          + (f"; {len(bad)} would not" if bad else ""), file=sys.stderr)
