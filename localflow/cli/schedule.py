"""`lf schedule add|list|pause|resume|delete`: schedules in var/schedules/ (localflow/schedules.py).

These commands only edit schedule files (atomically, under var/schedules/.lock);
the supervisor notices the change (a file event, or its periodic rescan) and starts
the slots. See docs/schedules.md.
"""

from __future__ import annotations

import argparse
import sys

from localflow.cli.common import console, engine_for, holder_json, note_supervisor, parse_input, print_json
from localflow.core.inputs import resolve_input
from localflow.core.jsonvalue import check_value
from localflow.core.timefmt import from_iso, to_iso
from localflow.engine import Engine
from localflow.errors import LocalFlowError
from localflow.schedules import (CATCH_UP, Schedule, ScheduleCorrupt, ScheduleError, ScheduleExists,
                                 ScheduleNotFound, parse_spec, slots_to_start, store_for, validate_name)
from localflow.store.paths import validate_workflow_id


def cmd_add(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    name = validate_name(args.name)
    spec = parse_spec(args.cron)
    if args.catch_up not in CATCH_UP:
        raise ScheduleError(f"--catch-up must be one of {', '.join(CATCH_UP)}")
    flow, _ = engine.load_flow(args.flow, allow_path=False)  # it must exist and parse now
    given = parse_input(args.input, args.pairs, flow)
    check_value(resolve_input(flow, check_value(given, "the input")), "the input")  # and its input resolve
    now = engine.clock()
    start_at = now if args.start_at is None else _moment(args.start_at)
    validate_workflow_id(spec.slot_id(name, start_at))  # every run id will be valid: same shape each slot
    schedule = Schedule(name=name, flow=flow.name, spec=spec.text, input=given, catch_up=args.catch_up,
                        start_at=start_at, created_at=now)
    store = store_for(engine.paths)
    with store.locked():
        try:
            store.read(name)
        except ScheduleNotFound:
            pass
        except ScheduleCorrupt:
            raise ScheduleExists(name) from None
        else:
            raise ScheduleExists(name)
        store.write(schedule)
    next_slot = schedule.next_slot(now)
    due = slots_to_start(spec, schedule.catch_up, None, start_at, now)
    if args.json:
        print_json({**_row(schedule, engine, now), "supervisor": holder_json(note_supervisor(engine, _IDLE))})
        return 0
    print(f"schedule {name}: {flow.name} at '{spec.text}' (UTC), catch-up {schedule.catch_up}")
    if due.run:
        more = f" (the newest {len(due.run)}: catch-up starts at most that many)" if due.more_skipped else ""
        print(f"  due now: {len(due.run)} slot(s) since {to_iso(start_at)}{more}; the supervisor starts them")
    print(f"  next slot {to_iso(next_slot) if next_slot else '-'}: workflow "
          f"{spec.slot_id(name, next_slot) if next_slot else '-'}")
    note_supervisor(engine, _IDLE)
    return 0


_IDLE = "no slot starts until one runs: `lf supervise`"


def _moment(text: str) -> int:
    try:
        return from_iso(text)
    except ValueError:
        raise ScheduleError(f"--start-at {text!r} is not an ISO time; write e.g. 2026-12-01T00:00Z") from None


def cmd_list(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    store = store_for(engine.paths)
    now = engine.clock()
    rows, problems = [], []
    for name in store.names():
        try:
            rows.append(_row(store.read(name), engine, now))
        except (ScheduleCorrupt, ScheduleNotFound, LocalFlowError) as exc:
            problems.append(str(exc))
    if args.json:
        print_json(rows)
    else:
        _print_table(rows)
    for problem in problems:
        sys.stderr.write(f"warning: {problem}\n")
    return 0


def _row(schedule: Schedule, engine: Engine, now: int) -> dict:
    data = schedule.to_json()
    data.pop("localflow_schedule")
    next_slot = None if schedule.paused else schedule.next_slot(now)
    data["next_slot"] = None if next_slot is None else to_iso(next_slot)
    data["next_run"] = None if next_slot is None else schedule.parsed.slot_id(schedule.name, next_slot)
    data["file"] = engine.display(store_for(engine.paths).path(schedule.name))
    return data


def _print_table(rows: list[dict]) -> None:
    if not rows:
        print("no schedules: add one with `lf schedule add NAME FLOW --cron '*/5 * * * *'`")
        return
    from rich.text import Text

    from localflow.cli.render import new_table

    table = new_table(caption="times in UTC", caption_justify="right")
    for column in ("NAME", "FLOW", "SCHEDULE", "CATCH-UP", "STATE", "NEXT SLOT", "LAST RUN"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for row in rows:
        state = "paused" if row["paused"] else "active"
        if row["last_error"]:
            state += " (error: see --json)"
        table.add_row(Text(row["name"]), Text(row["flow"]), Text(row["cron"]), row["catch_up"], state,
                      _short(row["next_slot"]), Text(row["last_run"] or "-"))
    console().print(table)


def _short(iso: "str | None") -> str:
    return "-" if iso is None else iso[:19] + "Z"  # UTC, named: piped tables have no caption


def cmd_pause(args: argparse.Namespace) -> int:
    return _update(args, paused=True)


def cmd_resume(args: argparse.Namespace) -> int:
    return _update(args, paused=False)


def _update(args: argparse.Namespace, paused: bool) -> int:
    engine = engine_for(args)
    store = store_for(engine.paths)
    name = validate_name(args.name)
    with store.locked():
        schedule = store.read(name)
        was = schedule.paused
        schedule.paused = paused
        if was and not paused:  # slots that fell while it was paused are skipped, not caught up
            now = engine.clock()
            schedule.done_through = max(schedule.done_through or now, now)
        if was != paused:
            store.write(schedule)
    word = "paused" if paused else "resumed"
    print(f"schedule {name} {word}" if was != paused else f"schedule {name} was already {word}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    store = store_for(engine.paths)
    name = validate_name(args.name)
    with store.locked():
        if not store.delete(name):
            raise ScheduleNotFound(name)
    print(f"schedule {name} deleted (the workflows it started stay)")
    return 0
