"""`lf signal ID NAME [--data JSON]` and `lf cancel ID`: durable requests recorded in the history.

Both append to the workflow's history under its lock, so they work whether or
not a supervisor is running; the supervisor (or `lf run`) acts on them.
"""

from __future__ import annotations

import argparse
import json
import sys

from localflow.cli.common import engine_for
from localflow.errors import InputError
from localflow.store.paths import validate_workflow_id
from localflow.supervisor.service import supervisor_running


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("signal", help="send a signal (with a JSON payload) to a workflow")
    p.add_argument("id")
    p.add_argument("name", help="the signal name a `wait signal NAME` step waits for")
    p.add_argument("--data", metavar="JSON", default="null", help="the payload, as JSON (default null)")
    p.set_defaults(handler=cmd_signal)

    p = sub.add_parser("cancel", help="cancel a workflow: stop its work, run its compensations")
    p.add_argument("id")
    p.add_argument("--reason", default="cancelled by the user", help="recorded in the history")
    p.set_defaults(handler=cmd_cancel)


def cmd_signal(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise InputError(f"--data is not valid JSON: {exc}") from None
    tx = engine.signal(validate_workflow_id(args.id), args.name, data)
    consumed = any(type(e).__name__ == "SignalConsumed" for e in tx.appended)
    print(f"signal '{args.name}' recorded for {args.id}" + (" and taken by a waiting step" if consumed else
                                                           " (buffered until a step waits for it)"))
    _note_supervisor(engine)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    tx = engine.cancel(validate_workflow_id(args.id), args.reason)
    if not tx.appended:
        print(f"{args.id}: cancellation was already requested")
    else:
        print(f"cancellation of {args.id} recorded; running work is stopped and compensations run")
    _note_supervisor(engine)
    return 0


def _note_supervisor(engine) -> None:
    if supervisor_running(engine) is None:
        sys.stderr.write("note: no supervisor is running; it takes effect when one starts (`lf supervise`)\n")
