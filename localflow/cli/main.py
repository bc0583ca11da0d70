"""`lf`: the command-line entry point. Parses arguments, dispatches, turns errors into one clear line.

Exit codes: 0 ok; 1 workflow failed or a LocalFlow error; 2 bad usage, input or
flow syntax; 3 storage or history corruption; 4 nondeterminism; 130 interrupted.

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lf", description="LocalFlow: durable workflows on one machine, in a folder."
    )
    parser.add_argument("--home", metavar="DIR",
                        help="the folder holding flows/ and var/ (default: $LOCALFLOW_HOME or the current directory)")
    parser.add_argument("--version", action="version", version=f"localflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_start(sub)
    _add_read(sub)
    _add_supervise(sub)
    _add_control(sub)
    _add_validate(sub)
    _add_graph(sub)
    _add_replay(sub)
    _add_repair(sub)
    _add_bundle(sub)
    _add_terminate(sub)
    _add_logs(sub)
    _add_schedule(sub)
    _add_fsck(sub)
    return parser


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_start(sub: argparse._SubParsersAction) -> None:
    """`lf start`, `lf run`: cli/start.py."""
    for name, handler, text in (
        ("start", "start:cmd_start", "start a workflow (a supervisor runs it) and print its id"),
        ("run", "start:cmd_run", "start a workflow and run it to the end in the foreground"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("flow", help="flow name: flows/<FLOW>.flow")
        p.add_argument("--input", metavar="JSON", help="the input as a JSON object")
        p.add_argument("-i", dest="pairs", action="append", metavar="KEY=VALUE",
                       help="one input value (JSON, or else a string); repeatable")
        p.add_argument("--id", help="workflow id (default: FLOW-<utc time>-<random>)")
        if name == "start":
            _add_json_flag(p)
        else:
            _add_workers_flag(p)
            p.add_argument("--skip-time", action="store_true",
                           help="run on a virtual clock that jumps to the next timer whenever nothing else "
                                "can happen (sleeps, retry backoffs, timeouts of waits); activities still run "
                                "in real time; each jump is recorded as a TimeSkipped event; refused while a "
                                "supervisor runs")
        p.set_defaults(handler=handler)


def _add_read(sub: argparse._SubParsersAction) -> None:
    """`lf list`, `lf inspect`, `lf history`: cli/read.py."""
    p = sub.add_parser("list", help="list workflows, newest first")
    p.add_argument("--status", choices=["running", "completed", "failed", "cancelled", "terminated", "nondeterministic",
                                            "held"],
                   help="only this status")
    p.add_argument("--flow", help="only workflows of this flow")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50; 0 = all)")
    _add_json_flag(p)
    p.set_defaults(handler="read:cmd_list")

    p = sub.add_parser("inspect", help="status, input, result, steps and attempts of one workflow")
    p.add_argument("id")
    p.add_argument("--at", type=int, metavar="SEQ", help="the state exactly as it was after event SEQ")
    _add_json_flag(p)
    p.set_defaults(handler="read:cmd_inspect")

    p = sub.add_parser("history", help="every event of one workflow")
    p.add_argument("id")
    p.add_argument("--upto", type=int, metavar="SEQ", help="only the events up to SEQ")
    _add_json_flag(p)
    p.set_defaults(handler="read:cmd_history")


def _add_supervise(sub: argparse._SubParsersAction) -> None:
    """`lf supervise`: cli/supervise.py."""
    p = sub.add_parser("supervise", help="run workflows: activities, timers, the drop folder (foreground)")
    p.add_argument("--rescan", type=float, default=DEFAULT_RESCAN_S, metavar="SECONDS",
                   help=f"full rescan period (default {DEFAULT_RESCAN_S:g}s)")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                   help="on stop or timeout, wait this long after SIGTERM before SIGKILL "
                        f"(default {DEFAULT_GRACE_S:g})")
    _add_workers_flag(p)
    p.set_defaults(handler="supervise:cmd_supervise")


def _add_control(sub: argparse._SubParsersAction) -> None:
    """`lf signal`, `lf cancel`: cli/control.py."""
    p = sub.add_parser("signal", help="send a signal (with a JSON payload) to a workflow")
    p.add_argument("id")
    p.add_argument("name", help="the signal name a `wait signal NAME` step waits for")
    p.add_argument("--data", metavar="JSON", default="null", help="the payload, as JSON (default null)")
    p.set_defaults(handler="control:cmd_signal")

    p = sub.add_parser("cancel", help="cancel a workflow: stop its work, run its compensations")
    p.add_argument("id")
    p.add_argument("--reason", default="cancelled by the user", help="recorded in the history")
    p.set_defaults(handler="control:cmd_cancel")


def _add_terminate(sub: argparse._SubParsersAction) -> None:
    """`lf terminate`: cli/control.py."""
    p = sub.add_parser("terminate", help="end a workflow now: kill its running work, no compensation, "
                                         "its running child workflows too (status terminated)")
    p.add_argument("id")
    p.add_argument("--reason", default="terminated by the user", help="recorded in the history")
    _add_json_flag(p)
    p.set_defaults(handler="control:cmd_terminate")


def _add_logs(sub: argparse._SubParsersAction) -> None:
    """`lf logs`: cli/logs.py."""
    p = sub.add_parser("logs", help="show what an activity attempt wrote on stdout and stderr")
    p.add_argument("id")
    p.add_argument("step", nargs="?", help="only this step (default: every step, in the order they ran)")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt N of STEP (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing what the running attempts write, until the workflow ends")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stdout", dest="stream", action="store_const", const="out", help="stdout only")
    which.add_argument("--stderr", dest="stream", action="store_const", const="err", help="stderr only")
    p.set_defaults(handler="logs:cmd_logs")


def _add_validate(sub: argparse._SubParsersAction) -> None:
    """`lf validate`: cli/validate.py."""
    p = sub.add_parser("validate", help="check flow files and report every problem (exit 2 if there is any)")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="flow files to check, relative to the current directory "
                        "(default: every flows/*.flow and flows/*/*.flow)")
    _add_json_flag(p)
    p.set_defaults(handler="validate:cmd_validate")


def _add_graph(sub: argparse._SubParsersAction) -> None:
    """`lf graph`: cli/graph.py."""
    p = sub.add_parser("graph", help="show a flow's statements as a tree, or as a Mermaid flowchart")
    p.add_argument("flow", metavar="FLOW", help="a flow name (flows/<FLOW>.flow) or the path to a .flow file")
    p.add_argument("--mermaid", action="store_true",
                   help="print a Mermaid 'flowchart TD' to paste into Markdown instead of the tree")
    p.set_defaults(handler="graph:cmd_graph")


def _add_replay(sub: argparse._SubParsersAction) -> None:
    """`lf replay`: cli/replay.py."""
    p = sub.add_parser("replay", help="check recorded workflows against their flow (or an edited flow file); "
                                      "exit 4 if any would decide differently")
    p.add_argument("ids", nargs="*", metavar="ID", help="workflows to check")
    p.add_argument("--all", action="store_true", help="every workflow in var/ (with --flow: every one of that flow)")
    p.add_argument("--flow", metavar="FILE",
                   help="replay against this flow file instead of the definition each workflow pinned")
    p.add_argument("--file", metavar="BUNDLE",
                   help="replay the workflows of this bundle (`lf export`; - reads stdin) without importing "
                        "them; with IDs only those, with --flow only the workflows of that flow")
    _add_json_flag(p)
    p.set_defaults(handler="replay:cmd_replay")


def _add_bundle(sub: argparse._SubParsersAction) -> None:
    """`lf export`, `lf import`: cli/bundle.py (the format: localflow/bundle.py)."""
    p = sub.add_parser("export", help="write a workflow and its child workflows as one bundle file "
                                      "(JSON Lines, history lines byte for byte)")
    p.add_argument("id", help="the workflow to export; its children (ChildStarted) come with it")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the bundle to FILE, whole or not at all (default: standard output)")
    p.set_defaults(handler="bundle:cmd_export")

    p = sub.add_parser("import", help="create the workflows of a bundle here, held: nothing of them runs "
                                      "until `lf resume ID`")
    p.add_argument("file", metavar="FILE", help="a bundle written by `lf export` (- reads standard input); "
                                                "every line is checked first, and every id must be free: "
                                                "all of it is imported or none")
    _add_json_flag(p)
    p.set_defaults(handler="bundle:cmd_import")


def _add_schedule(sub: argparse._SubParsersAction) -> None:
    """`lf schedule add|list|pause|resume|delete`: cli/schedule.py (docs/schedules.md)."""
    p = sub.add_parser("schedule", help="start a flow on a cron-like schedule (the supervisor runs the slots)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    a = actions.add_parser("add", help="add a schedule: FLOW started at every slot of --cron")
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
    _add_json_flag(a)
    a.set_defaults(handler="schedule:cmd_add")
    a = actions.add_parser("list", help="every schedule: its next slot, last run and whether it is paused")
    _add_json_flag(a)
    a.set_defaults(handler="schedule:cmd_list")
    for action, text in (("pause", "start no slot until resumed"),
                         ("resume", "start slots again (those that fell while it was paused are skipped)"),
                         ("delete", "remove a schedule (the workflows it started stay)")):
        a = actions.add_parser(action, help=text)
        a.add_argument("name")
        a.set_defaults(handler=f"schedule:cmd_{action}")


def _add_fsck(sub: argparse._SubParsersAction) -> None:
    """`lf fsck`: cli/fsck.py (the checks: localflow/fsck.py; docs/fsck.md)."""
    p = sub.add_parser(
        "fsck", help="check every history, timer marker and file under var/; --repair fixes what is provably safe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check var/: each history line by line (seq, checksum, torn tail, events that do not parse\n"
                    "or do not fold, a WorkflowStarted naming another folder), children whose parent is missing,\n"
                    "timer markers against pending timers, stray files, permissions and symlinks (never followed).\n"
                    "Each finding is printed as file[:line]: kind: message.",
        epilog="--repair fixes only: a torn tail (cut under the workflow's lock, the bytes kept in\n"
               "history.jsonl.torn-<offset>), a stray timer marker (removed), a missing marker of a pending\n"
               "timer (written). Nothing else is changed.\n\nexit codes:\n  0  clean (or everything found was repaired)\n"
               "  1  findings remain\n  3  something could not be read or repaired\n\nSee docs/fsck.md.")
    p.add_argument("ids", nargs="*", metavar="ID", help="only these workflows (their folders and timer markers); "
                                                        "default: all of var/")
    p.add_argument("--repair", action="store_true", help="fix the repairable findings and say what was done")
    _add_json_flag(p)
    p.set_defaults(handler="fsck:cmd_fsck")


def _add_repair(sub: argparse._SubParsersAction) -> None:
    """`lf resume`, `lf fork`: cli/repair.py."""
    p = sub.add_parser("resume", help="carry on a failed workflow from where it failed, with fresh attempts "
                                      "(or release an imported one)")
    p.add_argument("id")
    p.add_argument("--flow", metavar="FILE",
                   help="run on this edited flow from now on (it must replay the history up to the failure)")
    p.add_argument("--reason", default="resumed by the user", help="recorded in the history")
    _add_run_flag(p)
    _add_json_flag(p)
    p.set_defaults(handler="repair:cmd_resume")

    p = sub.add_parser("fork", help="a new workflow that copies this one's history up to a point and goes on "
                                    "from there (the original is untouched)")
    p.add_argument("id")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--at", type=int, metavar="SEQ", help="copy events 1..SEQ")
    where.add_argument("--step", metavar="NAME", help="copy everything before step NAME first ran")
    where.add_argument("--last-failure", action="store_true",
                       help="copy everything before the step that failed it first ran")
    p.add_argument("--id", dest="new_id", metavar="NEW", help="the new workflow's id (default: FLOW-<time>-<random>)")
    p.add_argument("--flow", metavar="FILE", help="run the fork on this flow (the copy must replay against it)")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied and run again; create nothing")
    _add_run_flag(p)
    _add_json_flag(p)
    p.set_defaults(handler="repair:cmd_fork")


def _add_workers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_not_negative, default=0, metavar="N",
                        help="worker processes for `call` steps (Python functions); default: the number of CPUs, "
                             "at most 4")
    parser.add_argument("--max-activities", type=_not_negative, default=0, metavar="N",
                        help="run at most N activity attempts at once (the others wait, first scheduled first, "
                             "recorded as ActivityQueued); default: no limit beyond the flows' own `concurrency`")


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


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
        super().error(shown(message))  # "unrecognized arguments: ..." repeats the command line as it was


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
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = handler_of(args.handler)
    from localflow.errors import FlowSyntaxError, LocalFlowError  # after parsing: `lf --help` never needs them

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
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine refused (full disk, permissions): a clear line, not a traceback
        from localflow.store.atomic import storage_error

        error = storage_error("complete the command at", exc.filename or "the LocalFlow home", exc)
        sys.stderr.write(f"error: {shown(str(error))}\n")
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
