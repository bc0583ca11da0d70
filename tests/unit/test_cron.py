"""localflow/schedules.py: the cron parser, slot arithmetic, catch-up, the schedule store and the Scheduler."""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta, timezone

import pytest

from localflow.core.timefmt import from_iso, to_iso
from localflow.engine import Engine
from localflow.errors import UnsafePath
from localflow.schedules import (MAX_CATCH_UP, ON_TIME_MS, Schedule, ScheduleCorrupt, ScheduleError,
                                 ScheduleNotFound, Scheduler, format_slot, parse_spec, slots_to_start, store_for,
                                 validate_name)

UTC = timezone.utc


def ms(text: str) -> int:
    return from_iso(text)


def nxt(spec: str, after: str) -> str:
    return to_iso(parse_spec(spec).next_after(ms(after)))


def prev(spec: str, at: str) -> str:
    return to_iso(parse_spec(spec).at_or_before(ms(at)))


# --- parsing ------------------------------------------------------------------------------


def test_fields_lists_ranges_steps_and_names():
    spec = parse_spec("0,30 9-17/2 1,15 jan-mar,DEC mon-fri")
    assert spec.minutes == {0, 30}
    assert spec.hours == {9, 11, 13, 15, 17}
    assert spec.days == {1, 15}
    assert spec.months == {1, 2, 3, 12}
    assert spec.weekdays == {1, 2, 3, 4, 5}
    assert not spec.days_any and not spec.weekdays_any


def test_star_steps_and_a_start_with_a_step():
    assert parse_spec("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert parse_spec("5/20 * * * *").minutes == {5, 25, 45}  # 'a/n': a, a+n, ... to the end
    assert parse_spec("* */6 * * *").hours == {0, 6, 12, 18}
    assert parse_spec("* * */10 * *").days == {1, 11, 21, 31}


def test_sunday_is_0_or_7_and_names_are_case_insensitive():
    assert parse_spec("0 0 * * 7").weekdays == {0}
    assert parse_spec("0 0 * * 0,7").weekdays == {0}
    assert parse_spec("0 0 * * SUN").weekdays == {0}
    assert parse_spec("0 0 * * 5-7").weekdays == {5, 6, 0}


def test_shorthands():
    assert parse_spec("@hourly").minutes == {0} and parse_spec("@hourly").hours == set(range(24))
    daily = parse_spec("@daily")
    assert daily.minutes == {0} and daily.hours == {0}
    assert parse_spec("@midnight") == parse_spec("@midnight")
    assert parse_spec("@weekly").weekdays == {0}
    assert parse_spec("@monthly").days == {1}
    assert parse_spec("@yearly").months == {1} and parse_spec("@annually").days == {1}
    assert parse_spec("@every 10m").every_ms == 600_000
    assert parse_spec("@every 1h30m").every_ms == 5_400_000
    assert parse_spec("@every 2s").every_ms == 2_000
    assert parse_spec("@every 1d").every_ms == 86_400_000


def test_extra_whitespace_is_normalised():
    assert parse_spec("  */5   *  * * *  ").text == "*/5 * * * *"


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("* * * *", "has 4 fields"),
    ("* * * * * *", "has 6 fields"),
    ("60 * * * *", "out of range 0-59"),
    ("* 24 * * *", "out of range 0-23"),
    ("* * 0 * *", "out of range 1-31"),
    ("* * * 13 *", "out of range 1-12"),
    ("* * * * 8", "out of range 0-7"),
    ("*/0 * * * *", "above 0"),
    ("*/x * * * *", "above 0"),
    ("10-5 * * * *", "runs backwards"),
    ("1,,2 * * * *", "empty list element"),
    ("* * * foo *", "not a number or a name"),
    ("* * * * funday", "not a number or a name"),
    ("-1 * * * *", "not a number"),
    ("0 0 30 2 *", "never matches"),
    ("0 0 31 4,6,9,11 *", "never matches"),
    ("@fortnightly", "unknown shorthand"),
    ("@every", "bad interval"),
    ("@every 10", "bad interval"),
    ("@every 10x", "bad interval"),
    ("@every 0s", "at least 1s"),
])
def test_bad_expressions_say_what_is_wrong(text, says):
    with pytest.raises(ScheduleError) as info:
        parse_spec(text)
    assert says in str(info.value)
    assert info.value.exit_code == 2


# --- next slot, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize("spec, after, expected", [
    ("*/5 * * * *", "2026-03-01T12:03:10Z", "2026-03-01T12:05:00.000Z"),
    ("*/5 * * * *", "2026-03-01T12:05:00Z", "2026-03-01T12:10:00.000Z"),  # strictly after
    ("*/5 * * * *", "2026-03-01T12:04:59.999Z", "2026-03-01T12:05:00.000Z"),
    ("*/5 * * * *", "2026-03-01T23:58:00Z", "2026-03-02T00:00:00.000Z"),
    ("0 0 1 1 *", "2025-12-31T23:59:30Z", "2026-01-01T00:00:00.000Z"),  # year end
    ("30 2 * * *", "2026-06-30T02:30:00Z", "2026-07-01T02:30:00.000Z"),  # month end
    ("0 0 31 * *", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00.000Z"),  # no Feb 31st
    ("0 0 31 * *", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00.000Z"),  # no Apr 31st
    ("0 0 30 * *", "2026-01-30T00:00:00Z", "2026-03-30T00:00:00.000Z"),  # nor Feb 30th
    ("0 0 L * *".replace("L", "28-31"), "2026-02-27T00:00:00Z", "2026-02-28T00:00:00.000Z"),
    ("0 0 29 2 *", "2025-03-01T00:00:00Z", "2028-02-29T00:00:00.000Z"),  # leap day
    ("0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00.000Z"),
    ("0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00.000Z"),  # 2100 is no leap year
    ("0 9 * * mon", "2026-11-30T09:00:00Z", "2026-12-07T09:00:00.000Z"),  # 2026-11-30 is a Monday
    ("0 9 * * 1-5", "2026-12-04T10:00:00Z", "2026-12-07T09:00:00.000Z"),  # Friday after 9 -> Monday
    ("15 14 1 * *", "2026-12-01T14:16:00Z", "2027-01-01T14:15:00.000Z"),
    ("0 22 * * 1-5", "2026-12-31T23:00:00Z", "2027-01-01T22:00:00.000Z"),  # New Year's Day 2027: a Friday
    ("23 0-20/2 * * *", "2026-05-05T20:23:00Z", "2026-05-06T00:23:00.000Z"),
    ("5 4 * * sun", "2026-11-25T00:00:00Z", "2026-11-29T04:05:00.000Z"),
    ("0 0 * jun *", "2026-07-01T00:00:00Z", "2027-06-01T00:00:00.000Z"),
    ("@hourly", "2026-11-25T20:55:52Z", "2026-11-25T21:00:00.000Z"),
    ("@daily", "2026-11-25T20:55:52Z", "2026-11-26T00:00:00.000Z"),
    ("@weekly", "2026-11-25T20:55:52Z", "2026-11-29T00:00:00.000Z"),
    ("@monthly", "2026-12-25T00:00:00Z", "2027-01-01T00:00:00.000Z"),
    ("@every 10m", "2026-11-25T20:55:52Z", "2026-11-25T21:00:00.000Z"),  # multiples since the epoch
    ("@every 10m", "2026-11-25T21:00:00Z", "2026-11-25T21:10:00.000Z"),
    ("@every 2s", "2026-11-25T21:00:00.500Z", "2026-11-25T21:00:02.000Z"),
    ("@every 7s", "1970-01-01T00:00:13Z", "1970-01-01T00:00:14.000Z"),
])
def test_next_slot_by_hand(spec, after, expected):
    assert nxt(spec, after) == expected


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    # cron's rule: both restricted -> either matches. 2026-03-13 is a Friday; March 2026 Fridays: 6, 13, 20, 27.
    spec = "0 12 13 * fri"
    slots, t = [], "2026-03-01T00:00:00Z"
    for _ in range(6):
        t = nxt(spec, t)
        slots.append(t[:10])
    assert slots == ["2026-03-06", "2026-03-13", "2026-03-20", "2026-03-27", "2026-04-03", "2026-04-10"]
    # 2026-04-13 is a Monday: it matches by the day of month
    assert nxt(spec, "2026-04-10T12:00:00Z")[:10] == "2026-04-13"


def test_day_fields_starting_with_a_star_are_anded():
    # `*/2` in day-of-month starts with '*': the days must be odd AND Fridays (Vixie cron's rule)
    spec = "0 0 */2 * fri"
    found, t = [], "2026-03-01T00:00:00Z"
    for _ in range(4):
        t = nxt(spec, t)
        found.append(t[:10])
    assert found == ["2026-03-13", "2026-03-27", "2026-04-03", "2026-04-17"]
    assert nxt("0 0 * * fri", "2026-03-01T00:00:00Z")[:10] == "2026-03-06"
    assert nxt("0 0 13 * *", "2026-03-01T00:00:00Z")[:10] == "2026-03-13"


# --- previous slot, and against a brute-force reference ----------------------------------------


@pytest.mark.parametrize("spec, at, expected", [
    ("*/5 * * * *", "2026-03-01T12:05:00Z", "2026-03-01T12:05:00.000Z"),  # at or before
    ("*/5 * * * *", "2026-03-01T12:04:59Z", "2026-03-01T12:00:00.000Z"),
    ("0 0 1 * *", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00.000Z"),
    ("0 0 31 * *", "2026-03-30T00:00:00Z", "2026-01-31T00:00:00.000Z"),
    ("0 0 29 2 *", "2028-02-28T23:59:00Z", "2024-02-29T00:00:00.000Z"),
    ("0 3 * * *", "2026-01-01T02:00:00Z", "2025-12-31T03:00:00.000Z"),
    ("@every 2s", "2026-11-25T21:00:03.999Z", "2026-11-25T21:00:02.000Z"),
])
def test_previous_slot_by_hand(spec, at, expected):
    assert prev(spec, at) == expected


def _reference_matches(fields: list[set], day_any: bool, week_any: bool, t: datetime) -> bool:
    minutes, hours, days, months, weekdays = fields
    in_month, in_week = t.day in days, (t.isoweekday() % 7) in weekdays
    day_ok = (in_month and in_week) if (day_any or week_any) else (in_month or in_week)
    return t.minute in minutes and t.hour in hours and t.month in months and day_ok


RANDOM_SPECS = ["*/7 */5 * * *", "0 0 1,15 * mon", "30 23 28-31 * *", "0 12 * feb-apr 0,6", "*/20 1 */3 * *",
                "0 0 29 * fri", "15 6 * * 1-5", "45 */4 1-7 * sun", "0 0 * * *", "59 23 31 1,7,12 *"]


@pytest.mark.parametrize("text", RANDOM_SPECS)
def test_next_and_previous_agree_with_a_minute_by_minute_search(text):
    spec = parse_spec(text)
    fields = [spec.minutes, spec.hours, spec.days, spec.months, spec.weekdays]
    rng = random.Random(text)
    for _ in range(3):
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(3 * 365 * 1440))
        t, window = start, []
        while len(window) < 3 and t < start + timedelta(days=800):  # hours of brute force at most
            t += timedelta(minutes=1)
            if _reference_matches(fields, spec.days_any, spec.weekdays_any, t):
                window.append(t)
        start_ms = int(start.timestamp() * 1000) + rng.randrange(60_000)
        got = []
        at = start_ms
        for _ in window:
            at = spec.next_after(at)
            got.append(at)
        assert got == [int(w.timestamp() * 1000) for w in window], text
        for slot in got:
            assert spec.at_or_before(slot) == slot
            assert spec.at_or_before(slot + 59_999) == slot
            assert spec.next_after(spec.at_or_before(slot - 1)) == slot


# --- ids ------------------------------------------------------------------------------------


def test_slot_ids_name_the_schedule_and_the_slot():
    assert parse_spec("0 3 * * *").slot_id("nightly", ms("2026-11-25T03:00:00Z")) == "nightly-20261125T0300Z"
    assert parse_spec("@every 2s").slot_id("tick", ms("2026-11-25T03:00:02Z")) == "tick-20261125T030002Z"
    assert parse_spec("@every 5m").slot_id("t", ms("2026-11-25T03:05:00Z")) == "t-20261125T0305Z"
    assert format_slot(0) == "19700101T0000Z"


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a..b", "x" * 101, "sp ace", "-x"])
def test_bad_schedule_names(name):
    with pytest.raises(ScheduleError):
        validate_name(name)


def test_good_schedule_names():
    assert validate_name("nightly.report_1-a") == "nightly.report_1-a"
    assert validate_name("x" * 100)


# --- catch-up -------------------------------------------------------------------------------

HOURLY = parse_spec("@hourly")
NOW = ms("2026-11-25T12:00:30Z")  # 30 s after a slot: it is on time


def test_nothing_due_before_the_first_slot_or_the_start():
    due = slots_to_start(HOURLY, "all", None, NOW, NOW)
    assert due.run == () and due.latest is None
    assert slots_to_start(HOURLY, "all", ms("2026-11-25T12:00:00Z"), 0, NOW).run == ()


def test_an_on_time_slot_runs_whatever_the_policy():
    for policy in ("none", "last", "all"):
        due = slots_to_start(HOURLY, policy, ms("2026-11-25T11:00:00Z"), 0, NOW)
        assert due.run == (ms("2026-11-25T12:00:00Z"),) and due.skipped == 0, policy


def test_catch_up_none_skips_missed_slots():
    later = ms("2026-11-25T12:01:01Z")  # 61 s late: missed
    due = slots_to_start(HOURLY, "none", ms("2026-11-25T08:00:00Z"), 0, later)
    assert due.run == () and due.skipped == 4 and due.latest == ms("2026-11-25T12:00:00Z")
    # slots within a minute run even after a gap: a brief restart skips nothing
    due = slots_to_start(HOURLY, "none", ms("2026-11-25T08:00:00Z"), 0, NOW)
    assert due.run == (ms("2026-11-25T12:00:00Z"),) and due.skipped == 3


def test_catch_up_last_runs_the_most_recent_missed_slot():
    later = ms("2026-11-25T12:30:00Z")
    due = slots_to_start(HOURLY, "last", ms("2026-11-25T08:00:00Z"), 0, later)
    assert due.run == (ms("2026-11-25T12:00:00Z"),) and due.skipped == 3


def test_catch_up_all_runs_every_missed_slot_oldest_first():
    later = ms("2026-11-25T12:30:00Z")
    due = slots_to_start(HOURLY, "all", ms("2026-11-25T08:00:00Z"), 0, later)
    assert [to_iso(s)[11:16] for s in due.run] == ["09:00", "10:00", "11:00", "12:00"]
    assert due.skipped == 0 and not due.more_skipped


def test_catch_up_all_is_capped_at_the_newest_100():
    later = ms("2026-11-25T12:30:00Z")
    due = slots_to_start(HOURLY, "all", None, ms("2026-01-01T00:00:00Z"), later)
    assert len(due.run) == MAX_CATCH_UP and due.more_skipped
    assert due.run[-1] == ms("2026-11-25T12:00:00Z")
    assert due.run[0] == ms("2026-11-25T12:00:00Z") - (MAX_CATCH_UP - 1) * 3_600_000
    exactly = slots_to_start(HOURLY, "all", ms("2026-11-25T12:00:00Z") - MAX_CATCH_UP * 3_600_000, 0, later)
    assert len(exactly.run) == MAX_CATCH_UP and not exactly.more_skipped


def test_start_at_counts_its_own_instant_and_nothing_before():
    start = ms("2026-11-25T10:00:00Z")
    due = slots_to_start(HOURLY, "all", None, start, ms("2026-11-25T12:30:00Z"))
    assert [to_iso(s)[11:16] for s in due.run] == ["10:00", "11:00", "12:00"]


def test_on_time_window_is_a_minute():
    assert ON_TIME_MS == 60_000
    slot = ms("2026-11-25T12:00:00Z")
    assert slots_to_start(HOURLY, "none", slot - 1, 0, slot + ON_TIME_MS).run == (slot,)
    assert slots_to_start(HOURLY, "none", slot - 1, 0, slot + ON_TIME_MS + 1).run == ()


# --- the store ------------------------------------------------------------------------------


def _schedule(name="nightly", **changes) -> Schedule:
    base = dict(name=name, flow="Hello", spec="0 3 * * *", input={"who": "x"}, catch_up="last",
                start_at=ms("2026-11-01T00:00:00Z"), created_at=ms("2026-11-01T00:00:00Z"))
    base.update(changes)
    return Schedule(**base)


def test_store_round_trip(tmp_path):
    store = store_for(Engine(tmp_path).paths)
    schedule = _schedule(done_through=ms("2026-11-24T03:00:00Z"), last_slot=ms("2026-11-24T03:00:00Z"),
                         last_run="nightly-20261124T0300Z")
    store.write(schedule)
    assert store.read("nightly") == schedule
    assert store.names() == ["nightly"]
    assert oct(os.stat(store.path("nightly")).st_mode & 0o777) == "0o600"
    data = json.loads(store.path("nightly").read_text())
    assert data["cron"] == "0 3 * * *" and data["done_through"] == "2026-11-24T03:00:00.000Z"
    assert store.delete("nightly") and store.names() == []
    with pytest.raises(ScheduleNotFound):
        store.read("nightly")


def test_names_skip_hidden_tmp_and_other_files(tmp_path):
    store = store_for(Engine(tmp_path).paths)
    store.write(_schedule())
    for stray in (".lock", "nightly.json.123.tmp", "notes.txt", ".x.json"):
        (store.dir / stray).write_text("")
    assert store.names() == ["nightly"]


@pytest.mark.parametrize("content, says", [
    ("{not json", ""),
    ("[]", "not a JSON object"),
    ('{"localflow_schedule": 2}', "'localflow_schedule' must be 1"),
    ('{"localflow_schedule": 1, "name": "other"}', "but the file is named"),
])
def test_a_corrupt_file_names_its_path(tmp_path, content, says):
    store = store_for(Engine(tmp_path).paths)
    store.ensure()
    store.path("nightly").write_text(content)
    with pytest.raises(ScheduleCorrupt) as info:
        store.read("nightly")
    assert str(store.path("nightly")) in str(info.value) and says in str(info.value)
    assert info.value.exit_code == 3


def test_a_file_with_bad_fields_is_corrupt(tmp_path):
    store = store_for(Engine(tmp_path).paths)
    good = _schedule().to_json()
    for key, value in (("cron", "* * *"), ("catch_up", "some"), ("input", []), ("paused", "yes"),
                       ("start_at", "yesterday"), ("flow", "")):
        store.ensure()
        store.path("nightly").write_text(json.dumps({**good, key: value}))
        with pytest.raises(ScheduleCorrupt, match=key if key != "cron" else "3 fields"):
            store.read("nightly")


def test_symlinks_below_var_are_never_followed(tmp_path):
    engine = Engine(tmp_path / "home")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    engine.paths.var_dir.mkdir(parents=True)
    engine.paths.schedules_dir.symlink_to(elsewhere)
    store = store_for(engine.paths)
    with pytest.raises(UnsafePath):
        store.write(_schedule())
    with pytest.raises(UnsafePath):
        store.names()
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_schedule_file_is_not_read(tmp_path):
    store = store_for(Engine(tmp_path).paths)
    store.ensure()
    target = tmp_path / "target.json"
    target.write_text(json.dumps(_schedule().to_json()))
    store.path("nightly").symlink_to(target)
    with pytest.raises((UnsafePath, ScheduleCorrupt)):
        store.read("nightly")


# --- the Scheduler, in process, on a clock we move ------------------------------------------------

HELLO = 'flow Hello\n  input who = "x"\n  return who\n'


class _Clock:
    def __init__(self, at: str) -> None:
        self.now = ms(at)

    def __call__(self) -> int:
        return self.now


def _scheduler(home, clock, log):
    engine = Engine(home, clock=clock)
    engine.ensure_layout()
    started: list[str] = []
    return Scheduler(engine, log.append, on_started=started.append), started


def test_scheduler_starts_each_slot_once_even_if_its_state_was_lost(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "Hello.flow").write_text(HELLO)
    clock, log = _Clock("2026-11-25T02:59:00Z"), []
    scheduler, started = _scheduler(tmp_path, clock, log)
    store = scheduler.store
    store.write(_schedule(start_at=clock.now, created_at=clock.now))
    scheduler.rescan()
    scheduler.process()
    assert started == [] and scheduler.next_at() == ms("2026-11-25T03:00:00Z")
    saved = store.path("nightly").read_bytes()

    clock.now = ms("2026-11-25T03:00:00.005Z")
    scheduler.process()  # due: no hint needed
    assert started == ["nightly-20261125T0300Z"]
    after = store.read("nightly")
    assert after.last_run == "nightly-20261125T0300Z" and after.done_through == ms("2026-11-25T03:00:00Z")
    assert scheduler.next_at() == ms("2026-11-26T03:00:00Z")

    # a crash between the start and the state write: the state is as before; a new scheduler
    store.path("nightly").write_bytes(saved)
    again, started_again = _scheduler(tmp_path, clock, log)
    again.rescan()
    again.process()
    assert started_again == []  # the workflow already exists: not doubled
    assert any("already has its workflow nightly-20261125T0300Z" in line for line in log)
    assert store.read("nightly").done_through == ms("2026-11-25T03:00:00Z")


def test_scheduler_skips_paused_reports_corrupt_once_and_forgets_deleted(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "Hello.flow").write_text(HELLO)
    clock, log = _Clock("2026-11-25T03:00:10Z"), []
    scheduler, started = _scheduler(tmp_path, clock, log)
    store = scheduler.store
    store.write(_schedule(paused=True))
    store.ensure()
    store.path("broken").write_text("{")
    for _ in range(3):
        scheduler.rescan()
        scheduler.process()
    assert started == []
    assert len([line for line in log if "broken.json" in line]) == 1
    assert scheduler.next_at() is None

    schedule = store.read("nightly")
    schedule.paused = False
    store.write(schedule)
    scheduler.hint("nightly")
    scheduler.process()
    assert started == ["nightly-20261125T0300Z"]  # catch-up last: the most recent slot

    store.delete("nightly")
    scheduler.rescan()
    scheduler.process()
    assert scheduler.next_at() is None


def test_a_slot_whose_flow_is_gone_is_reported_and_passed(tmp_path):
    clock, log = _Clock("2026-11-25T03:00:10Z"), []
    scheduler, started = _scheduler(tmp_path, clock, log)
    scheduler.store.write(_schedule(flow="Gone"))
    scheduler.rescan()
    scheduler.process()
    assert started == []
    schedule = scheduler.store.read("nightly")
    assert "unknown flow 'Gone'" in schedule.last_error and schedule.done_through == ms("2026-11-25T03:00:00Z")
    assert any("not started: unknown flow 'Gone'" in line for line in log)


def test_schedule_help_imports_nothing_heavy():
    from test_cli_imports import HELP_OF_EACH, heavy_in, modules_after

    from localflow.cli.main import build_parser, handler_of

    code = HELP_OF_EACH.format(commands=[["schedule"], ["schedule", "add"], ["schedule", "list"]])
    assert heavy_in(modules_after(code)) == []
    for argv in (["schedule", "add", "n", "F", "--cron", "@daily"], ["schedule", "list"], ["schedule", "pause", "n"],
                 ["schedule", "resume", "n"], ["schedule", "delete", "n"]):
        assert callable(handler_of(build_parser().parse_args(argv).handler))
