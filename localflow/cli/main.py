"""`lf`: the command-line entry point. Parses arguments, dispatches, turns errors into one clear line.

Exit codes: one meaning each, the table ``errors.EXIT_CODE_TABLE`` (shown by `lf --help`,
and in docs/cli.md). Every subcommand has a description and examples (`lf CMD --help`).

Every command's arguments are defined here, and each names its handler as
``"module:function"`` in this package: the module is imported only when that
command runs. So building the parser imports argparse and nothing heavy, and
`lf --help` costs little more than starting Python; a command imports the
engine, rich, the DSL or the supervisor only if it uses them.
tests/unit/test_cli_imports.py holds this module to it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from localflow import __version__
from localflow.supervisor.defaults import DEFAULT_GRACE_S, DEFAULT_RESCAN_S


# argparse looks up a translation of each of its words for every parser it makes (about 100
# filesystem searches for `lf`'s 33 parsers, ~12 ms of `lf --help`); Python ships no translation
# of argparse, so every lookup gives the word back: say so once.
argparse._ = lambda text: text  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lf", description="LocalFlow: durable workflows on one machine, in a folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
    )
    parser.add_argument("--home", metavar="DIR", help=HOME_HELP)
    parser.add_argument("--version", action="version", version=f"localflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_start(sub)
    _add_read(sub)
    _add_views(sub)
    _add_supervise(sub)
    _add_control(sub)
    _add_terminate(sub)
    _add_validate(sub)
    _add_graph(sub)
    _add_replay(sub)
    _add_repair(sub)
    _add_bundle(sub)
    _add_logs(sub)
    _add_schedule(sub)
    _add_fsck(sub)
    _add_cleanup(sub)
    _add_completion(sub)
    _global_options_everywhere(parser)
    return parser


HOME_HELP = ("the folder holding flows/ and var/ (default: $LOCALFLOW_HOME, else the nearest folder holding "
             "flows/ or var/ from here up, else the current directory); accepted before or after COMMAND")


def _exit_table() -> str:
    from localflow.errors import EXIT_CODE_TABLE

    return "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODE_TABLE)


_EPILOG = f"""\
Every command has --help with examples. Ids may be shortened: a unique prefix,
the random tail (lf inspect 4467ab), or @last for the newest workflow.

exit codes:
{_exit_table()}

See docs/cli.md for every command and the -o json shapes."""


def _command(sub: argparse._SubParsersAction, name: str, text: str, examples: str, handler: str | None = None,
             description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with a one-line ``text`` (the list in `lf --help`), a ``description`` (default:
    ``text``) and ``examples`` (lines of ``lf ...  # what it does``) shown by `lf NAME --help`."""
    p = sub.add_parser(name, help=text, description=(description or text[0].upper() + text[1:] + "."),
                       epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if handler:
        p.set_defaults(handler=handler)
    return p


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--home`` after the subcommand too (``lf list --home X``): every subparser takes it, with a
    suppressed default so it never hides one given before the subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--home" in a.option_strings for a in child._actions):
                    child.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help=HOME_HELP)
                _global_options_everywhere(child)


def _add_output(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json", "jsonl", "ids", "tsv"),
                times: bool = True) -> None:
    """``-o FORMAT`` / ``--json`` / ``-q`` (cli/output.py) and ``--time-format`` (cli/times.py)."""
    from localflow.cli.output import add_output_option
    from localflow.cli.times import add_time_option

    add_output_option(parser, formats)
    if times:
        add_time_option(parser)


_ID_HELP = "a workflow id, a unique prefix of one, its random tail, or @last (the newest)"


def _add_start(sub: argparse._SubParsersAction) -> None:
    """`lf start`, `lf run`: cli/start.py."""
    p = _command(sub, "start", "start a workflow (a supervisor runs it) and print its id", """
lf start PurchaseFlow                           # inputs from the flow's defaults
lf start PurchaseFlow -i order_id=A-1 -i amount=12.5
lf start PurchaseFlow --input '{"order_id": "A-1"}' --id order-A-1
id=$(lf start PurchaseFlow -q)                  # just the id, for scripts""", "start:cmd_start",
                 "Create a workflow of FLOW and print its id. A running `lf supervise` runs it; without one\n"
                 "it waits (durably) until one starts. Inputs are checked against the flow's `input` lines:\n"
                 "an input whose default is a number must be given a number, and so on.")
    _add_flow_input(p)
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)
    p = _command(sub, "run", "start a workflow and run it to the end in the foreground", """
lf run PurchaseFlow                             # prints each event, then the result
lf run PurchaseFlow -i order_id=A-1 -o json     # only the final state, as JSON
lf run Reminder --skip-time                     # jump over its sleeps""", "start:cmd_run",
                 "Create a workflow of FLOW and see it through: run it here if no supervisor runs, or follow\n"
                 "the supervisor that runs it. Exit 0 if it completed, 1 if it failed, was cancelled or\n"
                 "terminated, 4 on nondeterminism.")
    _add_flow_input(p)
    _add_workers_flag(p)
    p.add_argument("--skip-time", action="store_true",
                   help="run on a virtual clock that jumps to the next timer whenever nothing else "
                        "can happen (sleeps, retry backoffs, timeouts of waits); activities still run "
                        "in real time; each jump is recorded as a TimeSkipped event; refused while a "
                        "supervisor runs")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_flow_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("flow", help="flow name: flows/<FLOW>.flow, or a path to a .flow file")
    p.add_argument("--input", metavar="JSON", help="the input as a JSON object")
    p.add_argument("-i", dest="pairs", action="append", metavar="KEY=VALUE",
                   help="one input value, typed by the input's default (a string default takes the text as "
                        "it is; otherwise JSON, or else a string); repeatable")
    p.add_argument("--id", help="workflow id (default: FLOW-<utc time>-<random>)")


_STATUSES = ["running", "completed", "failed", "cancelled", "terminated", "nondeterministic", "held"]


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", choices=_STATUSES, metavar="STATUS",
                   help=f"only these statuses; repeatable ({', '.join(_STATUSES)})")
    p.add_argument("--flow", help="only workflows of this flow")
    p.add_argument("--parent", metavar="ID", help="only the child workflows of this one")
    p.add_argument("--since", metavar="WHEN", help="only workflows started at or after WHEN: an ISO time "
                                                   "(UTC unless it has an offset) or an age like 2h, 7d")
    p.add_argument("--until", metavar="WHEN", help="only workflows started before WHEN (as --since)")


def _add_read(sub: argparse._SubParsersAction) -> None:
    """`lf list`, `lf count`, `lf inspect`, `lf history`: cli/read.py."""
    p = _command(sub, "list", "list workflows, newest first", """
lf list                                         # the newest 50, and how many there are
lf list --status failed --status cancelled --since 1d
lf list --flow PurchaseFlow --limit 0 -q        # every id of one flow
lf list --parent @last -o json""", "read:cmd_list")
    _add_filters(p)
    p.add_argument("--limit", type=_not_negative, default=50, metavar="N",
                   help="at most N rows (default 50; 0 = all)")
    p.add_argument("--offset", type=_not_negative, default=0, metavar="N", help="skip the first N rows")
    _add_output(p)

    p = _command(sub, "count", "count workflows, in all or by status or flow", """
lf count                                        # how many workflows there are
lf count --by status
lf count --by flow --status failed -o json""", "read:cmd_count")
    _add_filters(p)
    p.add_argument("--by", choices=["status", "flow"], help="one count per status or per flow")
    _add_output(p, ("text", "json", "jsonl", "tsv"), times=False)

    p = _command(sub, "inspect", "status, input, result, steps and attempts of one workflow", """
lf inspect @last
lf inspect 4467ab                               # by the random tail of its id
lf inspect PurchaseFlow-20261130-091203-4467ab --at 12 -o json""", "read:cmd_inspect")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("--at", type=int, metavar="SEQ", help="the state exactly as it was after event SEQ")
    _add_output(p)

    p = _command(sub, "history", "every event of one workflow", """
lf history @last
lf history 4467ab --upto 10
lf history 4467ab -o jsonl | grep ActivityFailed""", "read:cmd_history")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("--upto", type=int, metavar="SEQ", help="only the events up to SEQ")
    _add_output(p, ("text", "json", "jsonl", "tsv"))
    _view_parsers("add_history_follow", p)


def _view_parsers(name: str, *args) -> None:
    """The live views' arguments (cli/views_parsers.py), when that module is there."""
    try:
        views = importlib.import_module("localflow.cli.views_parsers")
    except ImportError:
        return
    getattr(views, name)(*args)


def _add_views(sub: argparse._SubParsersAction) -> None:
    """`lf watch`, `lf result`, `lf top`, `lf timeline`: cli/views_parsers.py."""
    _view_parsers("add_view_parsers", sub)


def _add_supervise(sub: argparse._SubParsersAction) -> None:
    """`lf supervise`: cli/supervise.py."""
    p = _command(sub, "supervise", "run workflows: activities, timers, the drop folder (foreground)", """
lf supervise                                    # until Ctrl-C
lf supervise --max-activities 8 --workers 2
lf supervise --executor dask --scheduler tcp://10.0.0.5:8786   # call steps on a Dask cluster""", description=(
        "Run every workflow of this home in the foreground: activities, timers, signals, the drop\n"
        "folder var/requests/ and schedules, until Ctrl-C or SIGTERM. One supervisor per home."))
    p.add_argument("--rescan", type=float, default=DEFAULT_RESCAN_S, metavar="SECONDS",
                   help=f"full rescan period (default {DEFAULT_RESCAN_S:g}s)")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                   help="on stop or timeout, wait this long after SIGTERM before SIGKILL "
                        f"(default {DEFAULT_GRACE_S:g})")
    _add_workers_flag(p)
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="where activities run: this machine (default), or a Dask cluster (the dask extra: "
                        "pip install 'localflow[dask]'; docs/cluster.md)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--cluster-steps", choices=["call", "all"], default="call",
                   help="with --executor dask: which steps go to the cluster: call steps (default), or "
                        "run steps too (their commands and files must exist on every worker)")
    p.set_defaults(handler="supervise:cmd_supervise")


def _add_control(sub: argparse._SubParsersAction) -> None:
    """`lf signal`, `lf cancel`: cli/control.py."""
    p = _command(sub, "signal", "send a signal (with a JSON payload) to a workflow", """
lf signal @last approve --data '{"by": "ana"}'
lf signal 4467ab cancel_order""", "control:cmd_signal")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("name", help="the signal name a `wait signal NAME` step waits for")
    p.add_argument("--data", metavar="JSON", default="null", help="the payload, as JSON (default null)")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)

    p = _command(sub, "cancel", "cancel a workflow: stop its work, run its compensations", """
lf cancel 4467ab
lf cancel @last --reason "customer asked" -o json""", "control:cmd_cancel")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("--reason", default="cancelled by the user", help="recorded in the history")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_terminate(sub: argparse._SubParsersAction) -> None:
    """`lf terminate`: cli/control.py."""
    p = _command(sub, "terminate", "end a workflow now: kill its running work, no compensation, "
                                   "its running child workflows too (status terminated)", """
lf terminate 4467ab --reason "stuck on a dead host"
""", "control:cmd_terminate")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("--reason", default="terminated by the user", help="recorded in the history")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_logs(sub: argparse._SubParsersAction) -> None:
    """`lf logs`: cli/logs.py."""
    p = _command(sub, "logs", "show what an activity attempt wrote on stdout and stderr", """
lf logs @last                                   # every step's latest attempt
lf logs 4467ab charge --attempt 2 --stderr
lf logs 4467ab -f                               # follow until the workflow ends""", "logs:cmd_logs")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("step", nargs="?", help="only this step (default: every step, in the order they ran)")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt N of STEP (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing what the running attempts write, until the workflow ends")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stdout", dest="stream", action="store_const", const="out", help="stdout only")
    which.add_argument("--stderr", dest="stream", action="store_const", const="err", help="stderr only")


def _add_validate(sub: argparse._SubParsersAction) -> None:
    """`lf validate`: cli/validate.py."""
    p = _command(sub, "validate", "check flow files and report every problem (exit 2 if there is any)", """
lf validate                                     # every flow in flows/
lf validate flows/PurchaseFlow.flow -o json""", "validate:cmd_validate")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="flow files to check, relative to the current directory "
                        "(default: every flows/*.flow and flows/*/*.flow)")
    _add_output(p, ("text", "json", "jsonl", "tsv"), times=False)


def _add_graph(sub: argparse._SubParsersAction) -> None:
    """`lf graph`: cli/graph.py."""
    p = _command(sub, "graph", "show a flow's statements as a tree, or as a Mermaid flowchart", """
lf graph PurchaseFlow
lf graph flows/PurchaseFlow.flow --mermaid > purchase.mmd
lf graph PurchaseFlow -o json                   # the flow's statements as JSON""", "graph:cmd_graph")
    p.add_argument("flow", metavar="FLOW", nargs="?",
                   help="a flow name (flows/<FLOW>.flow) or the path to a .flow file")
    p.add_argument("--mermaid", action="store_true",
                   help="print a Mermaid 'flowchart TD' to paste into Markdown instead of the tree")
    _add_output(p, ("text", "json"), times=False)
    _view_parsers("add_graph_run", p)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    """`lf replay`: cli/replay.py."""
    p = _command(sub, "replay", "check recorded workflows against their flow (or an edited flow file); "
                                "exit 4 if any would decide differently", """
lf replay --all                                 # every workflow against the flow it pinned
lf replay --all --flow flows/PurchaseFlow.flow  # would this edit break running workflows?
lf replay --file order-7.bundle.jsonl""", "replay:cmd_replay")
    p.add_argument("ids", nargs="*", metavar="ID", help="workflows to check")
    p.add_argument("--all", action="store_true", help="every workflow in var/ (with --flow: every one of that flow)")
    p.add_argument("--flow", metavar="FILE",
                   help="replay against this flow file instead of the definition each workflow pinned")
    p.add_argument("--file", metavar="BUNDLE",
                   help="replay the workflows of this bundle (`lf export`; - reads stdin) without importing "
                        "them; with IDs only those, with --flow only the workflows of that flow")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_bundle(sub: argparse._SubParsersAction) -> None:
    """`lf export`, `lf import`: cli/bundle.py (the format: localflow/bundle.py)."""
    p = _command(sub, "export", "write a workflow and its child workflows as one bundle file "
                                "(JSON Lines, history lines byte for byte)", """
lf export 4467ab --to order-7.bundle.jsonl
lf export @last > last.bundle.jsonl""", "bundle:cmd_export")
    p.add_argument("id", help=_ID_HELP + "; its children (ChildStarted) come with it")
    p.add_argument("--to", dest="to_file", metavar="FILE",
                   help="write the bundle to FILE, whole or not at all (default: standard output)")

    p = _command(sub, "import", "create the workflows of a bundle here, held: nothing of them runs "
                                "until `lf resume ID`", """
lf import order-7.bundle.jsonl
lf resume order-7                               # then let it run here""", "bundle:cmd_import")
    p.add_argument("file", metavar="FILE", help="a bundle written by `lf export` (- reads standard input); "
                                                "every line is checked first, and every id must be free: "
                                                "all of it is imported or none")
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_schedule(sub: argparse._SubParsersAction) -> None:
    """`lf schedule add|list|pause|resume|delete`: cli/schedule.py (docs/schedules.md)."""
    p = _command(sub, "schedule", "start a flow on a cron-like schedule (the supervisor runs the slots)", """
lf schedule add nightly PurchaseFlow --cron '0 2 * * *'
lf schedule list
lf schedule pause nightly""")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    a = _command(actions, "add", "add a schedule: FLOW started at every slot of --cron", """
lf schedule add nightly PurchaseFlow --cron '0 2 * * *' -i order_id=batch
lf schedule add poll PurchaseFlow --cron '@every 10m' --catch-up none""", "schedule:cmd_add")
    a.add_argument("name", help="the schedule's name; each run's workflow id is NAME-<slot, UTC>")
    a.add_argument("flow", help="flow name: flows/<FLOW>.flow (checked now: it must parse, its inputs resolve)")
    a.add_argument("--cron", required=True, metavar="EXPR",
                   help="5 cron fields in UTC, like '*/5 * * * *' (names of months and days allowed), "
                        "or @hourly, @daily, @weekly, @monthly, @yearly, '@every 10m'")
    a.add_argument("--input", metavar="JSON", help="the input of every run, as a JSON object")
    a.add_argument("-i", dest="pairs", action="append", metavar="KEY=VALUE",
                   help="one input value (JSON, or else a string); repeatable")
    a.add_argument("--catch-up", choices=["none", "last", "all"], default="last",
                   help="slots missed while no supervisor ran: none (skip them), last (run the most recent "
                        "one; the default), all (run each, at most the last 100)")
    a.add_argument("--start-at", metavar="ISO", help="no slot before this time (default: now); e.g. "
                                                     "2026-12-01T00:00Z (UTC unless an offset is given)")
    _add_output(a, ("text", "json", "jsonl", "ids", "tsv"), times=False)
    a = _command(actions, "list", "every schedule: its next slot, last run and whether it is paused", """
lf schedule list
lf schedule list -o json""", "schedule:cmd_list")
    _add_output(a, ("text", "json", "jsonl", "ids", "tsv"), times=False)
    for action, text in (("pause", "start no slot until resumed"),
                         ("resume", "start slots again (those that fell while it was paused are skipped)"),
                         ("delete", "remove a schedule (the workflows it started stay)")):
        a = _command(actions, action, text, f"lf schedule {action} nightly", f"schedule:cmd_{action}")
        a.add_argument("name")


def _add_fsck(sub: argparse._SubParsersAction) -> None:
    """`lf fsck`: cli/fsck.py (the checks: localflow/fsck.py; docs/fsck.md)."""
    p = _command(
        sub, "fsck", "check every history, timer marker and file under var/; --repair fixes what is provably safe",
        """
lf fsck                                         # read-only
lf fsck --repair
lf fsck 4467ab -o json""", "fsck:cmd_fsck",
        description="Check var/: each history line by line (seq, checksum, torn tail, events that do not parse\n"
                    "or do not fold, a WorkflowStarted naming another folder), children whose parent is missing,\n"
                    "timer markers against pending timers, stray files, permissions and symlinks (never followed).\n"
                    "Each finding is printed as file[:line]: kind: message.\n\n"
                    "--repair fixes only: a torn tail (cut under the workflow's lock, the bytes kept in\n"
                    "history.jsonl.torn-<offset>), a stray timer marker (removed), a missing marker of a pending\n"
                    "timer (written). Nothing else is changed.\n\nexit codes: 0 clean (or everything found was "
                    "repaired), 1 findings remain,\n3 something could not be read or repaired. See docs/fsck.md.")
    p.add_argument("ids", nargs="*", metavar="ID", help="only these workflows (their folders and timer markers); "
                                                        "default: all of var/")
    p.add_argument("--repair", action="store_true", help="fix the repairable findings and say what was done")
    _add_output(p, ("text", "json", "jsonl", "tsv"), times=False)


def _add_repair(sub: argparse._SubParsersAction) -> None:
    """`lf resume`, `lf fork`: cli/repair.py."""
    p = _command(sub, "resume", "carry on a failed workflow from where it failed, with fresh attempts "
                                "(or release an imported one)", """
lf resume 4467ab
lf resume 4467ab --flow flows/PurchaseFlow.flow --run   # on the fixed flow, in the foreground""",
                 "repair:cmd_resume")
    p.add_argument("id", help=_ID_HELP)
    p.add_argument("--flow", metavar="FILE",
                   help="run on this edited flow from now on (it must replay the history up to the failure)")
    p.add_argument("--reason", default="resumed by the user", help="recorded in the history")
    _add_run_flag(p)
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)

    p = _command(sub, "fork", "a new workflow that copies this one's history up to a point and goes on "
                              "from there (the original is untouched)", """
lf fork 4467ab --last-failure --dry-run
lf fork 4467ab --step charge --id retry-charge --run""", "repair:cmd_fork")
    p.add_argument("id", help=_ID_HELP)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--at", type=int, metavar="SEQ", help="copy events 1..SEQ")
    where.add_argument("--step", metavar="NAME", help="copy everything before step NAME first ran")
    where.add_argument("--last-failure", action="store_true",
                       help="copy everything before the step that failed it first ran")
    p.add_argument("--id", dest="new_id", metavar="NEW", help="the new workflow's id (default: FLOW-<time>-<random>)")
    p.add_argument("--flow", metavar="FILE", help="run the fork on this flow (the copy must replay against it)")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied and run again; create nothing")
    _add_run_flag(p)
    _add_output(p, ("text", "json", "jsonl", "ids", "tsv"), times=False)


def _add_cleanup(sub: argparse._SubParsersAction) -> None:
    """`lf delete`, `lf prune`: cli/cleanup.py."""
    p = _command(sub, "delete", "delete a workflow that has ended: its folder, timer markers and child workflows", """
lf delete 4467ab
lf delete @last --force                         # terminate it first if it still runs""", "cleanup:cmd_delete")
    p.add_argument("ids", nargs="+", metavar="ID", help=_ID_HELP)
    p.add_argument("--force", action="store_true", help="delete a workflow that has not ended too (it is "
                                                         "terminated first: its running work is killed)")
    _add_output(p, ("text", "json", "jsonl", "ids"), times=False)

    p = _command(sub, "prune", "delete the workflows that ended long enough ago", """
lf prune --older 7d --dry-run                   # what would go
lf prune --status completed --status cancelled --older 30d""", "cleanup:cmd_prune",
                 "Delete every workflow of the given statuses (default: completed) that ended more than\n"
                 "--older ago, with its child workflows. A workflow that has not ended is never pruned.")
    p.add_argument("--status", action="append", choices=["completed", "failed", "cancelled", "terminated"],
                   metavar="STATUS", help="only these statuses; repeatable (default: completed)")
    p.add_argument("--older", required=True, metavar="AGE", help="ended more than AGE ago: 45s, 30m, 12h, 7d, 2w")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    _add_output(p, ("text", "json", "jsonl", "ids"), times=False)


def _add_completion(sub: argparse._SubParsersAction) -> None:
    """`lf completion SHELL`: cli/completion.py."""
    p = _command(sub, "completion", "print a shell completion script (bash, zsh or fish)", """
source <(lf completion bash)                    # in ~/.bashrc
lf completion zsh > "${fpath[1]}/_lf"
lf completion fish > ~/.config/fish/completions/lf.fish""", "completion:cmd_completion",
                 "Print a script that completes lf's commands, options, flow names, workflow ids and\n"
                 "signal names in your shell. Load it as the examples show.")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])


def _add_workers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_not_negative, default=0, metavar="N",
                        help="worker processes for `call` steps (Python functions); default: the number of CPUs, "
                             "at most 4")
    parser.add_argument("--max-activities", type=_not_negative, default=0, metavar="N",
                        help="run at most N activity attempts at once (the others wait, first scheduled first, "
                             "recorded as ActivityQueued); default: no limit beyond the flows' own `concurrency`")


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, or a usage error saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {value}")
        return value

    return parse


_not_negative = whole_number(0)


def _add_run_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", action="store_true",
                        help="then run it to the end in the foreground, as `lf run` does (exit code as `lf run`)")


class _Parser(argparse.ArgumentParser):
    """argparse before Python 3.13 strips the ``--`` of ``--reason=--`` (or ``-i--``) and stores ``[]``,
    a list where every command expects text (tracebacks, or a list recorded as a reason): here an
    option given ``--`` gets the text ``--``, as under 3.13. Subparsers are made of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)
        self.register("action", "append", _Append)

    def error(self, message: str):
        super().error(shown(message + _hint(message)))  # "unrecognized arguments: ..." repeats the command line


def _hint(message: str) -> str:
    """What argparse's message leaves out: "did you mean" for a mistyped command or choice, and
    ``-i`` for an input given as a bare ``key=value``."""
    import difflib
    import re

    bad = re.search(r"invalid choice: '([^']*)'", message)
    choices = re.search(r"\(choose from (.*)\)", message)
    if bad and choices:
        known = [c.strip().strip("'") for c in choices.group(1).split(",")]
        lowered = {c.lower(): c for c in known}
        close = ([lowered[bad.group(1).lower()]] if bad.group(1).lower() in lowered else
                 difflib.get_close_matches(bad.group(1), known, n=3, cutoff=0.6))
        if close:
            return "\ndid you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    if message.startswith("unrecognized arguments:"):
        pairs = [word for word in message.split(":", 1)[1].split() if "=" in word and not word.startswith("-")]
        if pairs:
            return "\nto give an input, use -i: " + " ".join(f"-i {word}" for word in pairs)
    return ""


def _dashes(parser: argparse.ArgumentParser, action: argparse.Action, values):
    if values != [] or not action.option_strings or action.nargs is not None:
        return values
    option = "/".join(action.option_strings)
    try:
        value = action.type("--") if callable(action.type) else "--"
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        parser.error(f"argument {option}: invalid value: '--'")
    if action.choices is not None and value not in action.choices:
        parser.error(f"argument {option}: invalid choice: '--'")
    return value


class _Store(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, _dashes(parser, self, values))


class _Append(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), _dashes(parser, self, values)])


def shown(message: str) -> str:
    """A message as it may reach a terminal: what is not printable (control characters, escape
    sequences, bidi overrides, lone surrogates) written as its escape, so text that came from the
    command line or a file never drives the terminal. Newlines and tabs stay."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in message)


def handler_of(spec: str) -> Callable[[argparse.Namespace], int]:
    """``"read:cmd_list"`` -> ``localflow.cli.read.cmd_list``, importing that module now."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(f"localflow.cli.{module}"), name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"]:  # the completion scripts' helper: candidates, one per line
        from localflow.cli.completion import complete

        return complete(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = handler_of(args.handler)
    from localflow.cli import output  # after parsing: `lf --help` never needs more
    from localflow.errors import ExitCode, FlowSyntaxError, LocalFlowError

    output.CHOSEN = output.output_of(args)
    args.json = output.machine(args)  # the handlers' "print for programs" (output.emit prints the format)
    try:
        return handler(args)
    except FlowSyntaxError as exc:
        sys.stderr.write(f"{shown(str(exc))}\n")
        return exc.exit_code
    except LocalFlowError as exc:
        sys.stderr.write(f"error: {shown(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine refused (full disk, permissions): a clear line, not a traceback
        from localflow.store.atomic import storage_error

        error = storage_error("complete the command at", exc.filename or "the LocalFlow home", exc)
        sys.stderr.write(f"error: {shown(str(error))}\n")
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
