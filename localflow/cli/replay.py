"""`lf replay ID... | --all | --file BUNDLE [--flow FILE]`: would these histories decide the same today?

Each history is replayed through the pure core (every decision checked, and
nothing more decided where a transaction ended) against the definition it pinned,
or against ``--flow FILE``: the check to run before deploying an edited flow while
workflows of it are in flight. ``--file`` replays the workflows of a bundle
(``lf export``, localflow/bundle.py) without importing them: a history from another
machine as a test fixture. Nothing is written. Exit 0 if every one replays, 4 if any
would decide differently, 3 if a history (or the bundle) cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localflow import dsl
from localflow.cli.common import engine_for, print_json, resolve
from localflow.core.replay import replay
from localflow.errors import InputError, LocalFlowError, NondeterminismError


def cmd_replay(args: argparse.Namespace) -> int:
    flow, source = _flow_file(args.flow)
    if getattr(args, "file", None) is not None:
        return _report(_from_bundle(args, flow, source), flow, args.json, f"from {args.file}")
    engine = engine_for(args)
    ids = list(dict.fromkeys(resolve(engine, ref) for ref in args.ids))
    if args.all:
        ids += [i for i in engine.workflow_ids() if i not in ids]
    if not ids:
        raise InputError("name the workflows to replay, or pass --all")
    checks = (_check(engine, workflow_id, flow, source, only_flow=args.all and flow is not None)
              for workflow_id in ids)
    return _report(checks, flow, args.json)


def _from_bundle(args: argparse.Namespace, flow, source) -> list:
    """`--file BUNDLE`: every workflow of the bundle (or the IDs named), read and checked, never imported."""
    from localflow import bundle

    if args.all:
        raise InputError("--all replays the workflows of var/; with --file every workflow of the bundle is replayed")
    found = bundle.read(args.file)
    sections = {s.workflow_id: s for s in found.sections}
    unknown = [i for i in args.ids if i not in sections]
    if unknown:
        raise InputError(f"{args.file} holds no workflow {unknown[0]} (it holds {', '.join(sections)})")
    wanted = [sections[i] for i in dict.fromkeys(args.ids)] or found.sections
    return [_check_events(s.workflow_id, s.events, flow, source, only_flow=flow is not None) for s in wanted]


def _report(checks, flow, as_json: bool, where: str = "") -> int:
    results, worst = [], 0
    for result in checks:
        if result is None:
            continue
        results.append(result)
        worst = max(worst, {"ok": 0, "nondeterministic": NondeterminismError.exit_code}.get(result["result"], 3))
    if as_json:
        print_json(results)
    else:
        _print(results, flow, where)
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
    return _check_events(workflow_id, events, flow, source, only_flow)


def _check_events(workflow_id: str, events: list, flow, source, only_flow: bool) -> "dict | None":
    if only_flow and events[0].flow_name != flow.name:
        return None  # --all --flow X: only the workflows of that flow
    try:
        state = replay(events, flow=flow, source=source)
    except NondeterminismError as exc:
        return {"id": workflow_id, "result": "nondeterministic", "seq": exc.seq, "where": exc.detail,
                "explain": list(exc.explain), "message": str(exc)}
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as exc:
        # a pinned flow whose crcs are right but whose content no LocalFlow wrote (a bundle from
        # elsewhere, a hand edit): it cannot be replayed, and says why instead of a traceback
        return {"id": workflow_id, "result": "unreadable",
                "error": f"its pinned flow or events cannot be replayed ({type(exc).__name__}: {exc})"}
    return {"id": workflow_id, "result": "ok", "events": len(events), "status": state.status}


def _print(results: list, flow, where: str = "") -> None:
    against = f"against {flow.file}" if flow is not None else "against the flow each one pinned"
    against = f"{where} {against}" if where else against
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
