"""`lf top`: a live dashboard of a home (rich Live), or one frame (``--once``, ``-o json``).

The model is localflow/dashboard.py; this module draws its frames (``top_view``: a
renderable, prints nothing) and drives it:

- file events (follow.Wakeup) on var/workflows/ itself (a new workflow's folder) and on
  the folder of each live workflow (its history); each event names a workflow, and only
  that one is looked at again;
- every pass, a ``stat`` of each live history (events are hints; this catches a dropped
  one), and every ``RESCAN_S`` a stat of every history (a workflow that changed without
  being live: `lf resume` of a failed one, a workflow deleted);
- the frame is redrawn at least every ``--interval`` seconds, so elapsed times move, at
  most every ``MIN_FRAME_S`` however many events come.

Piped (no terminal), it prints one frame, as ``--once`` does.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Group
from rich.text import Text

from localflow.cli.times import TimePolicy, span, utc
from localflow.dashboard import ORDER, Dashboard, Frame

RESCAN_S = 15.0
MIN_FRAME_S = 0.25
_STYLE = {"running": "cyan", "held": "yellow", "completed": "green", "failed": "red", "cancelled": "magenta",
          "terminated": "bold magenta", "nondeterministic": "bold red", "queued": "yellow", "scheduled": "yellow"}


def top_view(frame: Frame, policy: TimePolicy, limit: int, home: str = "", supervisor: str = "",
             live: bool = False) -> Group:
    """The dashboard: a header, counts by status, then each section (at most ``limit`` rows)."""
    head = Text.assemble(("lf top", "bold"), f"  {home}  " if home else "  ",
                         (supervisor or "no supervisor running", "dim" if supervisor else "yellow"),
                         f"  {policy.at(frame.at) if policy.mode != 'relative' else utc(frame.at)}")
    counts = Text(f"{frame.total:,} workflow{'' if frame.total == 1 else 's'}: ")
    shown = [(s, n) for s, n in frame.counts.items() if n or s in ORDER[:4]]
    for index, (status, count) in enumerate(shown):
        counts.append(f"{count:,} {status}", style=_STYLE.get(status, "") if count else "dim")
        counts.append(", " if index < len(shown) - 1 else "")
    parts: list[Any] = [head, counts]
    parts.append(_section("running activities", frame.activities, limit,
                          ("WORKFLOW", "STEP", "ATTEMPT", "STATUS", "ELAPSED", "PID"),
                          lambda a: (Text(a["id"]), Text(a["step"]), str(a["attempt"]),
                                     _status(a["status"]),
                                     span(a["elapsed_ms"]), str(a["pid"] or "-"))))
    parts.append(_section("waiting for a signal", frame.waits, limit, ("WORKFLOW", "SIGNAL", "STEP", "TIMES OUT"),
                          lambda w: (Text(w["id"]), Text(w["signal"]), Text(w["label"]), policy.at(w["timeout_at"]))))
    parts.append(_section("next timers", frame.timers, limit, ("WORKFLOW", "STEP", "PURPOSE", "FIRES"),
                          lambda t: (Text(t["id"]), Text(t["label"]), Text(t["purpose_text"]),
                                     policy.at(t["fire_at"]))))
    parts.append(_section("recent failures", frame.failures, limit, ("WORKFLOW", "FLOW", "STATUS", "ENDED", "ERROR"),
                          lambda f: (Text(f["id"]), Text(f["flow"]), _status(f["status"]),
                                     policy.at(_ms(f["ended"])), Text(_one_line(f["error"])))))
    for problem in frame.problems:
        parts.append(Text(f"warning: {problem}", style="yellow"))
    parts.append(Text(policy.zone_note() + ("; Ctrl-C to leave" if live else ""), style="dim"))
    return Group(*parts)


def _status(status: str) -> Text:
    return Text(status, style=_STYLE.get(status, ""))


def _section(title: str, rows: list[dict[str, Any]], limit: int, columns: tuple, cells: Any) -> Any:
    from localflow.cli.render import new_table

    if not rows:
        return Text(f"{title}: none", style="dim")
    more = len(rows) - limit
    table = new_table(title=f"{title} ({len(rows):,})", title_justify="left",
                      caption=f"… and {more:,} more" if more > 0 else None, caption_justify="left")
    from localflow.cli.output import plain

    ids = max(len(str(row.get("id", ""))) for row in rows[:limit])
    for column in columns:  # ids are never cut; piped, one line a row (the error is cut instead)
        error = column == "ERROR"
        table.add_column(column, no_wrap=not error or plain(), overflow="ellipsis",
                         min_width=ids if column == "WORKFLOW" else None, ratio=1 if error and not plain() else None)
    for row in rows[:limit]:
        table.add_row(*cells(row))
    return table


def _ms(iso: Any) -> Any:
    from localflow.core.timefmt import from_iso

    return from_iso(iso) if isinstance(iso, str) else None


def _one_line(text: Any) -> str:
    """An error on one line; piped (a row stays one line), cut at 50 characters first, so the other
    columns keep their room (`lf inspect ID` has it whole)."""
    from localflow.cli.output import plain

    line = " ".join(str(text).split()) if text else "-"
    return line if len(line) <= 50 or not plain() else line[:47] + "..."


def _now() -> int:
    return int(time.time() * 1000)


def _has_flow(engine: Any, flow: str) -> bool:
    """Does any workflow run ``flow`` (whose file may be gone)?"""
    from localflow import listing

    return any(row["flow"] == flow for row in listing.rows(engine)[0])


def cmd_top(args: argparse.Namespace) -> int:
    from localflow.cli.common import console, engine_for
    from localflow.cli.output import output_of, print_json
    from localflow.cli.times import policy_for

    engine = engine_for(args)
    if args.flow and args.flow not in engine.flow_names() and not _has_flow(engine, args.flow):
        from localflow.errors import FlowNotFound  # a typo would show an empty board

        raise FlowNotFound(args.flow, engine.display(engine.paths.flows_dir), engine.flow_names())
    board = Dashboard(engine, args.flow, args.limit)
    board.load()
    fmt = output_of(args)
    if fmt == "json":
        print_json(board.frame(_now()).to_json())
        return 0
    out = console()
    home = str(engine.paths.home)
    if args.once or not sys.stdout.isatty():
        policy = policy_for(args)
        out.print(top_view(board.frame(policy.now_ms), policy, args.limit, home, _supervisor(engine)))
        return 0
    _live(board, args, out, home)
    return 0


def _supervisor(engine: Any) -> str:
    from localflow.supervisor.service import supervisor_running

    try:
        return supervisor_running(engine) or ""
    except Exception:  # noqa: BLE001 - the dashboard shows what it can
        return ""


def _live(board: Dashboard, args: argparse.Namespace, out: Any, home: str) -> None:
    from rich.live import Live

    from localflow.cli.times import policy_for
    from localflow.follow import Wakeup

    mode = policy_for(args).mode
    paths = board.engine.paths
    watched: dict[str, Any] = {}

    def draw() -> Group:
        policy = TimePolicy(mode, now_ms=_now())
        return top_view(board.frame(policy.now_ms), policy, args.limit, home, supervisor, live=True)

    supervisor, checked = _supervisor(board.engine), time.monotonic()
    next_rescan = time.monotonic() + RESCAN_S
    with Wakeup([(paths.workflows_dir, False)], workflows_dir=paths.workflows_dir) as wake, \
            Live(draw(), console=out, auto_refresh=False, screen=False, transient=False) as live:
        while True:
            _watch_live(board, wake, watched)
            drawn = time.monotonic()
            wake.wait(args.interval)
            changed, everything = wake.drain()
            if everything or time.monotonic() >= next_rescan:
                board.rescan()
                next_rescan = time.monotonic() + RESCAN_S
            else:
                board.refresh(changed)
                board.poll_live()
            if time.monotonic() - checked > 5:
                supervisor, checked = _supervisor(board.engine), time.monotonic()
            time.sleep(max(0.0, MIN_FRAME_S - (time.monotonic() - drawn)))  # many events: one frame
            live.update(draw(), refresh=True)


def _watch_live(board: Dashboard, wake: Any, watched: dict[str, Any]) -> None:
    """Watch the folder of each live workflow (its history's events name it), and no others."""
    for workflow_id in set(watched) - set(board.live):
        wake.remove(watched.pop(workflow_id))
    for workflow_id in set(board.live) - set(watched):
        watched[workflow_id] = wake.add(board.engine.paths.workflow_dir(workflow_id))
