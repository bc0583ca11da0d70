"""`lf list`, `lf count`, `lf inspect ID`, `lf history ID`: read-only views folded from histories.

Read-only commands are the ones scripts call in loops, so they import what they
print with: the tables (render.py, rich) only when they print a table. Listing and
counting go through the Python API (localflow/client.py), as a script would.
"""

from __future__ import annotations

import argparse
import sys

from localflow.cli.common import client_for, console, engine_for, lf_command, print_json, resolve
from localflow.cli.output import emit_list, output_of, plain
from localflow.cli.times import policy_for
from localflow.core import events as ev
from localflow.core.state import NONDETERMINISTIC, fold
from localflow.errors import InputError, NondeterminismError

LIST_COLUMNS = ("id", "flow", "status", "current_steps", "started", "updated", "ended", "error", "parent")


def _filters(args: argparse.Namespace, client) -> dict:
    from localflow.client import parse_when

    return {
        "status": args.status or None,
        "flow": args.flow,
        "parent": client.resolve(args.parent) if args.parent else None,
        "since": parse_when(args.since) if args.since else None,
        "until": parse_when(args.until) if args.until else None,
    }


def cmd_list(args: argparse.Namespace) -> int:
    client = client_for(args)
    filters = _filters(args, client)
    page = client.list(**filters, limit=args.limit or None, offset=args.offset)
    fmt = output_of(args)

    def text() -> None:
        out = console()
        if page.rows:
            from localflow.cli import render

            out.print(render.list_table(page.rows, policy_for(args), out.width))
        elif page.total or args.offset:
            out.print(f"no rows past --offset {args.offset} ({page.total} match)")
        elif any(filters.values()):
            out.print("no workflow matches")
        else:
            out.print("no workflows yet: start one with `lf run FLOW` or `lf start FLOW`")

    emit_list(fmt, page.rows, text, LIST_COLUMNS)
    shown = len(page.rows)
    if fmt == "text" and shown and shown < page.total:
        more = f"showing {args.offset + 1}-{args.offset + shown} of {page.total}" if args.offset else \
            f"showing {shown} of {page.total}"
        hint = f"{more} (--limit 0 for all, --offset {args.offset + shown} for the next)"
        (sys.stderr if plain() else sys.stdout).write(hint + "\n")
    _warn(page.problems)
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    client = client_for(args)
    counted = client.count(by=args.by, **_filters(args, client))
    fmt = output_of(args)
    if args.by is None:
        if fmt == "text":
            print(counted)
        else:
            print_json({"count": counted})
        return 0
    rows = [{args.by: key, "count": n} for key, n in counted.items()]

    def text() -> None:
        width = max([len(args.by)] + [len(str(r[args.by])) for r in rows])
        print(f"{args.by.upper():<{width}}  COUNT")
        for row in rows:
            print(f"{row[args.by]:<{width}}  {row['count']}")

    emit_list(fmt, rows, text, (args.by, "count"), id_key=args.by)
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
    loaded = engine.load(resolve(engine, args.id))
    state = loaded.state if args.at is None else fold(_upto(loaded.events, args.at, "--at"))
    if args.json:
        print_json(render.details(state))
    else:
        console().print(render.inspect_view(state, policy_for(args), lf_command(args)))
    return NondeterminismError.exit_code if state.status == NONDETERMINISTIC else 0


def cmd_history(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    if getattr(args, "follow", False):
        from localflow.cli.watch import cmd_history_follow

        if output_of(args) in ("json", "tsv"):
            raise InputError("--follow prints events as they land: as text, or -o jsonl (one JSON object a line)")
        return cmd_history_follow(args, engine, workflow_id)
    loaded = engine.load(workflow_id)
    events = loaded.events if args.upto is None else _upto(loaded.events, args.upto, "--upto")
    if args.json:
        print_json([ev.to_record(e) for e in events])
    else:
        from localflow.cli import render

        console().print(render.history_table(events, loaded.state.flow, policy_for(args)))
    return 0


def _upto(events: list, seq: int, option: str) -> list:
    """The events up to and including ``seq`` (time travel: the state is folded from them alone)."""
    if not 1 <= seq <= len(events):
        raise InputError(f"{option} {seq}: this history has events 1 to {len(events)}")
    return events[:seq]
