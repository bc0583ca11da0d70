"""`lf list`, `lf inspect ID`, `lf history ID`: read-only views folded from histories."""

from __future__ import annotations

import argparse

from rich.text import Text

from localflow import listing
from localflow.cli import render
from localflow.cli.common import add_json_flag, console, engine_for, print_json
from localflow.core import events as ev
from localflow.errors import LocalFlowError
from localflow.store.paths import validate_workflow_id


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list workflows, newest first")
    p.add_argument("--status", choices=["running", "completed", "failed", "cancelled"], help="only this status")
    p.add_argument("--flow", help="only workflows of this flow")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50; 0 = all)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("inspect", help="status, input, result, steps and attempts of one workflow")
    p.add_argument("id")
    add_json_flag(p)
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("history", help="every event of one workflow")
    p.add_argument("id")
    add_json_flag(p)
    p.set_defaults(handler=cmd_history)


def cmd_list(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    found, problems = listing.rows(engine)
    if args.status:
        found = [r for r in found if r["status"] == args.status]
    if args.flow:
        found = [r for r in found if r["flow"] == args.flow]
    if args.limit and args.limit > 0:
        found = found[: args.limit]
    if args.json:
        print_json(found)
    else:
        out = console()
        if found:
            out.print(render.list_table(found))
        else:
            out.print("no workflows yet: start one with `lf run FLOW` or `lf start FLOW`")
    err = console()
    err.stderr = True
    for problem in problems:
        err.print(Text.assemble(("warning:", "yellow"), " ", problem), highlight=False)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    state = engine.load(validate_workflow_id(args.id)).state
    if args.json:
        print_json(render.details(state))
    else:
        console().print(render.inspect_view(state))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    loaded = engine.load(validate_workflow_id(args.id))
    if args.json:
        print_json([ev.to_record(e) for e in loaded.events])
    else:
        console().print(render.history_table(loaded.events, loaded.state.flow))
    return 0
