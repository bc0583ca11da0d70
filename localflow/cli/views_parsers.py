"""The arguments of the live and picture views: `lf watch`, `lf result`, `lf top`, `lf timeline`,
`lf history --follow` and `lf graph --run` (docs/views.md).

Argparse only, as in cli/main.py: each command names its handler as ``"module:function"``
and the module is imported only when the command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse

from localflow.cli.main import whole_number  # (main imports this module only once it is loaded)
from localflow.cli.output import add_output_option
from localflow.cli.times import add_time_option

_RAW = argparse.RawDescriptionHelpFormatter


def add_view_parsers(sub: argparse._SubParsersAction) -> None:
    """`lf watch`, `lf result`, `lf top`, `lf timeline`."""
    _add_watch(sub)
    _add_result(sub)
    _add_top(sub)
    _add_timeline(sub)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text!r}")
    return value


_count = whole_number(1)


def _add_watch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch", help="follow one workflow live, as `lf run` shows it, until it ends",
        formatter_class=_RAW,
        description="Print each event of a workflow as it lands (those already recorded first), the\n"
                    "`lf signal` command that answers a wait, the events of its child workflows, and\n"
                    "its result panel when it ends. Woken by file events, it costs nothing while\n"
                    "nothing happens. Watching never changes how a workflow runs.",
        epilog="examples:\n  lf start PurchaseFlow && lf watch @last\n"
               "  lf watch PurchaseFlow-20261130-091203-1a2b3c --exit-status && echo done\n"
               "  lf watch @last -o jsonl | jq -c 'select(.type == \"ActivityFailed\")'")
    p.add_argument("id", metavar="ID", help="a workflow id, a unique prefix or random tail, or @last")
    p.add_argument("--exit-status", action="store_true",
                   help="exit with the workflow's outcome: 0 completed, 1 failed/cancelled/terminated, "
                        "4 nondeterministic (default: 0 once it has ended)")
    p.add_argument("--no-children", action="store_true", help="do not print the events of its child workflows")
    add_output_option(p, formats=("text", "jsonl"), quiet=False)
    p.set_defaults(handler="watch:cmd_watch")


def _add_result(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "result", help="print a workflow's result (or its error, exit 1); --wait for it to end",
        formatter_class=_RAW,
        description="Print the result of an ended workflow as JSON on stdout; a failed, cancelled or\n"
                    "terminated one prints its error on stderr and exits 1 (nondeterministic: 4).\n"
                    "A workflow still running exits 6, unless --wait waits for its end.",
        epilog="examples:\n  lf result @last\n  receipt=$(lf result PurchaseFlow-2026 --wait | jq -r .receipt)\n"
               "  lf result @last --wait --timeout 30 -o json")
    p.add_argument("id", metavar="ID", help="a workflow id, a unique prefix or random tail, or @last")
    p.add_argument("--wait", action="store_true", help="wait until the workflow ends (woken by file events)")
    p.add_argument("--timeout", type=_positive, metavar="SECONDS",
                   help="with --wait: give up after this long (exit 6, still running); implies --wait")
    add_output_option(p, formats=("text", "json", "jsonl"), quiet=False)
    p.set_defaults(handler="watch:cmd_result")


def _add_top(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "top", help="a live dashboard: workflows by status, running activities, next timers, failures",
        formatter_class=_RAW,
        description="A live view of the whole home: how many workflows are in each status, the activities\n"
                    "running now and for how long, the workflows waiting for a signal, the next timers,\n"
                    "and the latest failures. It re-reads only the histories that file events say\n"
                    "changed (listing summaries for the rest), so it stays cheap with 10,000 workflows.\n"
                    "Ctrl-C leaves it.",
        epilog="examples:\n  lf top\n  lf top --once\n  lf top --once -o json | jq .counts")
    p.add_argument("--once", action="store_true", help="print one frame and exit (for scripts and tests)")
    p.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="redraw at least this often, so elapsed times move (default 1)")
    p.add_argument("--limit", type=_count, default=10, metavar="N", help="rows per section (default 10)")
    p.add_argument("--flow", metavar="FLOW", help="only workflows of this flow")
    add_output_option(p, formats=("text", "json"), quiet=False)
    add_time_option(p)
    p.set_defaults(handler="top:cmd_top")


def _add_timeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "timeline", help="where a run's time went: steps, attempts, retry waits, timers, signals, children",
        formatter_class=_RAW,
        description="A Gantt-like chart of one workflow that fits the terminal: one row per attempt (its\n"
                    "retry wait drawn before it), sleep, signal wait, signal, child workflow and lock\n"
                    "wait, against time from its start. -o json gives the intervals.",
        epilog="examples:\n  lf timeline @last\n  lf timeline PurchaseFlow-2026 --width 200\n"
               "  lf timeline @last -o json | jq '.intervals[] | select(.kind == \"attempt\")'")
    p.add_argument("id", metavar="ID", help="a workflow id, a unique prefix or random tail, or @last")
    p.add_argument("--width", type=_count, metavar="COLUMNS",
                   help="draw this wide, at least 40 (default: the terminal's width)")
    add_output_option(p, formats=("text", "json", "jsonl", "tsv"), quiet=False)
    add_time_option(p)
    p.set_defaults(handler="timeline:cmd_timeline")


def add_history_follow(parser: argparse.ArgumentParser) -> None:
    """``--follow/-f`` on `lf history`: its handler is ``watch:cmd_history_follow`` when set."""
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep printing events as they land until the workflow ends (woken by file "
                             "events; -o jsonl prints one event per line; times are UTC, or local with "
                             "--time-format local)")


def add_graph_run(parser: argparse.ArgumentParser) -> None:
    """``--run ID`` on `lf graph`: the graph of a workflow's pinned flow with each statement's status
    (handler ``graph_run:cmd_graph_run`` when set). FLOW becomes optional: one of the two is given."""
    for action in parser._actions:
        if action.dest == "flow" and not action.option_strings:
            action.nargs, action.default = "?", None
    parser.add_argument("--run", metavar="ID",
                        help="draw the flow a workflow runs, each step with its status and attempts "
                             "(an id, prefix, random tail or @last; instead of FLOW)")
