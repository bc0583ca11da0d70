"""What the read commands show: stable JSON shapes and the rich renderables built from them.

Functions here return data or renderables and print nothing; tests render them
into ``Console(file=io.StringIO(), width=100, color_system=None)``.

Everything that comes from a workflow (ids, names, values, messages) goes into a
renderable as ``rich.text.Text``, never as a str: rich reads a str as markup and
emoji codes, so ``[/x]`` would crash the view and ``:smile:`` turn into a picture.
Values are shown up to ``present.MAX_SHOWN_CHARS`` / ``MAX_SHOWN_LINES``, then a
line says how much more there is and where to see it (the ``--json`` views are whole).
"""

from __future__ import annotations

import shlex
from typing import Any

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from localflow import ir
from localflow.cli.times import TimePolicy
from localflow.core import events as ev
from localflow.core.state import TimerState, WorkflowState, signal_waits
from localflow.core.timefmt import format_duration, from_iso, to_iso
from localflow.listing import row_of
from localflow.present import (clip_json, clip_text, describe, divergence_text, names_text, short_json,
                               timer_purpose)

STATUS_STYLE = {"running": "cyan", "completed": "green", "failed": "red", "scheduled": "yellow",
                "nondeterministic": "bold red",
                "cancelled": "magenta", "terminated": "bold magenta"}


def _iso(ms: int | None) -> str | None:
    return None if ms is None else to_iso(ms)


# --- JSON shapes ----------------------------------------------------------------


summary = row_of  # one row of `lf list --json`


def details(state: WorkflowState) -> dict[str, Any]:
    """`lf inspect --json`."""
    steps = []
    for step in state.steps.values():
        steps.append({
            "step": step.step,
            "status": step.status,
            "result": step.result,
            "attempts": [
                {
                    "attempt": a.number,
                    "status": a.outcome or ("running" if a.started_at else "scheduled"),
                    "scheduled": _iso(a.scheduled_at),
                    "started": _iso(a.started_at),
                    "ended": _iso(a.ended_at),
                    "duration_ms": a.duration_ms,
                    "pid": a.pid,
                    "worker": getattr(a, "worker", None),
                    "error": a.error,
                    **_heartbeat_fields(a),
                }
                for a in step.attempts
            ],
            "heartbeat_details": step.heartbeat_details if step.attempts else None,
        })
    ending = state.error or {}
    return {
        **summary(state),
        "parent": state.parent,
        "children": [{"step": s.step, "workflow_id": s.child_id, "flow": s.child_flow, "status": s.status}
                     for s in state.steps.values() if s.kind == "child"],
        "waiting_for": [{"signal": w.signal, "at": w.label, "timeout_at": _iso(w.timeout_at)}
                        for w in signal_waits(state)],
        "variables": dict(state.variables),
        "signals": [{"signal": g.signal, "data": g.data, "taken_by": g.consumed_by} for g in state.signals],
        "compensated": ending.get("compensated", []),
        "flow_hash": state.flow_hash,
        "flow_file": state.flow.file,
        "input": dict(state.input),
        "result": state.result,
        "error": state.error,
        "divergence": state.divergence,
        "origin": state.origin,
        "resumes": state.resumes,
        "held": state.held,
        "ended": _iso(state.ended_at),
        "steps": steps,
        "pending_timers": [_timer(t) for t in state.pending_timers() if state.timer_wanted(t)],
        "pending_activities": [
            {"step": step, "attempt": a.number, "pid": a.pid, "scheduled": _iso(a.scheduled_at)}
            for step, a in state.pending_attempts()
        ],
    }


def _heartbeat_fields(attempt: Any) -> dict[str, Any]:
    """An attempt's heartbeat: the last recorded details and when (null: none recorded), and what it was handed."""
    last = None if attempt.heartbeat_at is None else {"at": _iso(attempt.heartbeat_at),
                                                       "details": attempt.heartbeat_details}
    return {"heartbeat": last, "handed_details": attempt.handed_details}


def _timer(timer: TimerState) -> dict[str, Any]:
    return {"timer": timer.timer, "step": timer.step, "purpose": timer.purpose,
            "duration_ms": timer.duration_ms, "fire_at": _iso(timer.fire_at)}


# --- renderables ----------------------------------------------------------------


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _see(workflow_id: str) -> str:
    return f"see `lf inspect {workflow_id} --json`"


def _with_note(shown: str, more: int, see: str, style: str = "") -> Text:
    text = Text(shown, style=style)
    if more:
        text.append(f"\n… ({more:,} more characters; {see})", style="dim")
    return text


def value_text(value: Any, see: str, indent: int | None = None) -> Text:
    """A value as JSON text, literally, cut to what a terminal can show (``see``: where the rest is)."""
    return _with_note(*clip_json(value, indent), see)


def plain_text(text: str, see: str, style: str = "") -> Text:
    """Text from a workflow (a message, a description), literally, cut like ``value_text``."""
    return _with_note(*clip_text(text), see, style)


def new_table(**options: Any) -> Table:
    """A table for people: box drawing on a terminal; plain columns (no box, no caption, no colour)
    when piped or with NO_COLOR (cli/output.py), so a line of it is a row ``awk`` can read."""
    from localflow.cli.output import plain

    if plain():
        options.pop("caption", None)
        options.pop("caption_justify", None)
        return Table(box=None, pad_edge=False, show_edge=False, **options)
    return Table(box=options.pop("box", box.SIMPLE_HEAD), **options)


_LIST_COLUMNS = ("ID", "FLOW", "STATUS", "STEP", "STARTED", "ENDED")
_DROP_ORDER = ("ENDED", "STEP", "STARTED", "FLOW")  # what goes first when the width is short; ids never shrink


def list_table(rows: list[dict[str, Any]], policy: TimePolicy, width: int = 200) -> Table:
    """`lf list`: rows as made by ``listing.row_of``. Ids are never cut: when ``width`` is short,
    whole columns go first (ENDED, then STEP, STARTED, FLOW), then the others are shortened."""
    cells = [{
        "ID": row["id"], "FLOW": row["flow"], "STATUS": row["status"],
        "STEP": ", ".join(row.get("current_steps") or ()) or "-",
        "STARTED": policy.at(_ms(row["started"])),
        "ENDED": policy.at(_ms(row.get("ended"))) if row.get("ended") else "-",
    } for row in rows]
    wanted = {c: max([len(c)] + [len(cell[c]) for cell in cells]) for c in _LIST_COLUMNS}
    columns = list(_LIST_COLUMNS)
    for column in _DROP_ORDER:
        if sum(wanted[c] + 2 for c in columns) + 2 <= width:  # padding each side of a cell, and the edges
            break
        columns.remove(column)
    table = new_table(caption=policy.zone_note(), caption_justify="right")
    for column in columns:
        fixed = column in ("ID", "STATUS")
        table.add_column(column, no_wrap=True, overflow="ellipsis",
                         min_width=wanted[column] if fixed else min(wanted[column], 6))
    for cell in cells:
        table.add_row(*(_status(cell[c]) if c == "STATUS" else Text(cell[c]) for c in columns))
    return table


def _ms(iso: str | None) -> int | None:
    return None if iso is None else from_iso(iso)


def inspect_view(state: WorkflowState, policy: TimePolicy, lf: str = "lf") -> Group:
    """`lf inspect`; ``lf`` is how the printed commands start (``lf --home DIR`` when one was given)."""
    see = _see(state.workflow_id)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    head.add_row("workflow", Text(state.workflow_id))
    head.add_row("flow", Text(f"{state.flow.name}  ({state.flow.file}, sha256 {state.flow_hash[:12]})"))
    head.add_row("status", _status(state.status))
    if state.held and not state.terminal:
        head.add_row("held", Text(f"imported: nothing of it runs here until `lf resume {state.workflow_id}`"))
    if state.origin:
        head.add_row("forked from", Text(f"{state.origin['workflow_id']} at seq {state.origin['seq']}"))
    if state.resumes:
        head.add_row("resumed", Text(f"{state.resumes} time{'s' if state.resumes != 1 else ''} after failing"))
    if state.current_steps:
        head.add_row("current step", Text(", ".join(state.current_steps)))
    for wait in signal_waits(state):
        ends = f", times out {policy.at(wait.timeout_at)}" if wait.timeout_at else ""
        head.add_row("waiting for", Text(f"signal '{wait.signal}' ({wait.label}{ends}): answer with "
                                         f"`{lf} signal {shlex.quote(state.workflow_id)} "
                                         f"{shlex.quote(wait.signal)} --data '...'`"))
    head.add_row("input", value_text(dict(state.input), see))
    if state.status == "completed":
        head.add_row("result", value_text(state.result, see))
    if state.divergence is not None:
        head.add_row("nondeterministic", plain_text(_divergence(state), see, style="red"))
    if state.error:
        head.add_row("error", plain_text(str(state.error.get("message")), see, style="red"))
    if state.parent:
        head.add_row("parent", Text(f"{state.parent.get('workflow_id')} (step {state.parent.get('step')})"))
    for child in (s for s in state.steps.values() if s.kind == "child"):
        head.add_row("child", Text(f"{child.child_id} ({child.child_flow}, step {child.step}): {child.status}"))
    if state.variables:
        head.add_row("variables", value_text(dict(state.variables), see))
    waiting = [g for g in state.signals if g.consumed_by is None]
    if waiting:
        head.add_row("buffered signals", plain_text(", ".join(g.signal for g in waiting), see))
    if state.compensating:
        head.add_row("compensating", Text(names_text(state.compensation["steps"]) or "stopping running work"))
    compensated = (state.error or {}).get("compensated")
    if compensated:
        head.add_row("compensated", Text(names_text(compensated)))
    head.add_row("started", policy.at(state.started_at))
    head.add_row("ended" if state.ended_at else "last change", policy.at(state.ended_at or state.updated_at))
    head.add_row("times", policy.zone_note())
    parts: list[Any] = [head]
    if state.steps:
        parts.append(_steps_table(state, see, policy))
    pending = [t for t in state.pending_timers() if state.timer_wanted(t)]
    if pending:
        timers = new_table(title="pending timers", title_justify="left")
        for column in ("TIMER", "FOR", "PURPOSE", "FIRES"):
            timers.add_column(column)
        for t in pending:
            timers.add_row(str(t.timer), Text(ir.statement_name(state.flow, t.step)), Text(timer_purpose(t.purpose)),
                           policy.at(t.fire_at))
        parts.append(timers)
    return Group(*parts)


def _steps_table(state: WorkflowState, see: str, policy: TimePolicy) -> Table:
    table = new_table(title="steps", title_justify="left")
    for column in ("STEP", "ATTEMPT", "STATUS", "STARTED", "DURATION", "DETAIL"):
        table.add_column(column, overflow="fold", no_wrap=column in ("ATTEMPT", "STARTED", "DURATION"),
                         ratio=3 if column == "DETAIL" else None)
    for step in state.steps.values():
        if step.kind in ("wait", "child"):
            if step.outcome == "completed":
                detail = short_json(step.result, 60)
            elif step.error:
                detail = str(step.error.get("message"))
            elif step.kind == "child":
                detail = f"child workflow {step.child_id}" if step.child_id else "starting a child workflow"
            else:
                detail = "waiting for a signal"
            table.add_row(Text(step.step), "-", _status(step.status), "-", "-", plain_text(detail, see))
            continue
        for a in step.attempts:
            status = a.outcome or ("running" if a.started_at else "scheduled")
            if a.outcome == "completed":
                detail = short_json(a.result, 60)
            elif a.error:
                detail = f"{a.error.get('kind')}: {a.error.get('message')}"
            else:
                detail = f"pid {a.pid}" if a.pid else ""
            if getattr(a, "worker", None):
                detail += f"{'; ' if detail else ''}on {a.worker}"
            if a.heartbeat_at is not None:
                detail += (f"{'; ' if detail else ''}heartbeat {policy.at(a.heartbeat_at)}: "
                           f"{short_json(a.heartbeat_details, 60)}")
            table.add_row(Text(step.step), str(a.number), _status(status), policy.at(a.started_at or a.scheduled_at),
                          format_duration(a.duration_ms), plain_text(detail, see))
    return table


def history_table(events: list[ev.Event], flow: Any, policy: TimePolicy) -> Table:
    """One row per event; each description is at most ``present.MAX_SHOWN_CHARS`` long (``describe``)."""
    table = new_table(caption=policy.zone_note(), caption_justify="right")
    for column in ("SEQ", "TIME", "TYPE", "DETAIL"):
        table.add_column(column, overflow="fold", no_wrap=column in ("SEQ", "TYPE", "TIME"))
    for event in events:
        kind = type(event).__name__
        style = "bold" if event.decision else ""
        table.add_row(str(event.seq), policy.precise(event.ts), Text(kind, style=style), Text(describe(event, flow)))
    return table


def _divergence(state: WorkflowState) -> str:
    d = state.divergence
    return divergence_text(d["at"], d["expected"], d["recorded"], d["where"]) if d else ""


def result_panel(state: WorkflowState) -> Any:
    """How a run ended: a panel on a terminal; piped, a title line and the body (no box drawing)."""
    from localflow.cli.output import plain

    see = _see(state.workflow_id)
    title = Text(f"{state.workflow_id} {state.status}")
    if state.status == "completed":
        body = value_text(state.result, see, indent=2)
        style = "green"
    else:
        message = _divergence(state) or str((state.error or {}).get("message", "unknown error"))
        body = plain_text(message, see)
        compensated = (state.error or {}).get("compensated")
        if compensated:
            body.append(f"\ncompensated: {names_text(compensated)}")
        style = "red"
    if plain():
        return Group(title, body)
    return Panel(body, title=title, border_style=style, expand=False)
