"""`lf`: the command-line entry point. Parses arguments, dispatches, turns errors into one clear line.

Exit codes: 0 ok; 1 workflow failed or a LocalFlow error; 2 bad usage, input or
flow syntax; 3 storage or history corruption; 4 nondeterminism; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from localflow import __version__
from localflow.cli import control, graph, read, start, supervise, validate
from localflow.errors import FlowSyntaxError, LocalFlowError
from localflow.store.atomic import storage_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lf", description="LocalFlow: durable workflows on one machine, in a folder."
    )
    parser.add_argument("--home", metavar="DIR",
                        help="the folder holding flows/ and var/ (default: $LOCALFLOW_HOME or the current directory)")
    parser.add_argument("--version", action="version", version=f"localflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    start.add_parsers(sub)
    read.add_parsers(sub)
    supervise.add_parsers(sub)
    control.add_parsers(sub)
    validate.add_parsers(sub)
    graph.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except FlowSyntaxError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_code
    except LocalFlowError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine refused (full disk, permissions): a clear line, not a traceback
        error = storage_error("complete the command at", exc.filename or "the LocalFlow home", exc)
        sys.stderr.write(f"error: {error}\n")
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
