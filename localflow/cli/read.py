"""`lf list`, `lf inspect ID`, `lf history ID`: read-only views folded from histories.

Read-only commands are the ones scripts call in loops, so they import what they
print with: the tables (render.py, rich) only when they print a table.
"""

from __future__ import annotations

import argparse

from localflow import listing
from localflow.cli.common import console, engine_for, print_json
from localflow.core import events as ev
from localflow.core.state import NONDETERMINISTIC, fold
from localflow.errors import InputError, NondeterminismError
from localflow.store.paths import validate_workflow_id


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
        from localflow.cli import render

        out = console()
        if found:
            out.print(render.list_table(found))
        else:
            out.print("no workflows yet: start one with `lf run FLOW` or `lf start FLOW`")
    _warn(problems)
    return 0


def _warn(problems: list[str]) -> None:
    """One yellow ``warning:`` line on stderr per workflow that could not be read."""
    if not problems:
        return
    from rich.text import Text

    err = console()
    err.stderr = True
    for problem in problems:
        err.print(Text.assemble(("warning:", "yellow"), " ", problem), highlight=False)


def cmd_inspect(args: argparse.Namespace) -> int:
    from localflow.cli import render  # its JSON shape (render.details) lives there too

    engine = engine_for(args)
    loaded = engine.load(validate_workflow_id(args.id))
    state = loaded.state if args.at is None else fold(_upto(loaded.events, args.at, "--at"))
    if args.json:
        print_json(render.details(state))
    else:
        console().print(render.inspect_view(state))
    return NondeterminismError.exit_code if state.status == NONDETERMINISTIC else 0


def cmd_history(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    loaded = engine.load(validate_workflow_id(args.id))
    events = loaded.events if args.upto is None else _upto(loaded.events, args.upto, "--upto")
    if args.json:
        print_json([ev.to_record(e) for e in events])
    else:
        from localflow.cli import render

        console().print(render.history_table(events, loaded.state.flow))
    return 0


def _upto(events: list, seq: int, option: str) -> list:
    """The events up to and including ``seq`` (time travel: the state is folded from them alone)."""
    if not 1 <= seq <= len(events):
        raise InputError(f"{option} {seq}: this history has events 1 to {len(events)}")
    return events[:seq]
