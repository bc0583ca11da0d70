"""Schedules: a flow started on a cron-like schedule (docs/schedules.md).

Two halves:

- **Pure time arithmetic** (no clock, no disk): ``parse_spec`` reads a 5-field cron
  expression (``*``, lists, ranges, steps, month and weekday names) or a shorthand
  (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``, ``@every 10m``);
  ``Spec.next_after(ms)`` / ``Spec.at_or_before(ms)`` find slots, in UTC, as epoch ms.
  ``slots_to_start`` applies a catch-up policy to the slots due at a time.
- **The store**: ``var/schedules/<name>.json``, one file per schedule holding its
  definition and its state. Every write is atomic (store/atomic.py), nothing below
  var/ is followed if it is a symlink (store/safe.py), and every read-modify-write
  (the CLI's add/pause/resume/delete, the supervisor recording a started slot)
  holds ``var/schedules/.lock``, so a pause is never lost to a concurrent update.

A slot's run is a normal workflow whose id is ``<name>-<slot>`` (``nightly-20261125T0300Z``;
``@every`` schedules with seconds: ``tick-20261125T030002Z``): starting it again after a
crash finds the workflow already there (WorkflowExists), so a slot never runs twice.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Union

from localflow.errors import (NotFoundError, FlowNotFound, FlowSyntaxError, InputError, InvalidValue, InvalidWorkflowId,
                              LocalFlowError, PayloadTooLarge, UnsafePath, WorkflowExists)
from localflow.core.jsonvalue import parse_json
from localflow.core.timefmt import from_iso, to_iso
from localflow.store import safe
from localflow.store.atomic import ensure_dir, remove, write_atomic

SCHEDULE_FORMAT = 1
CATCH_UP = ("none", "last", "all")
DEFAULT_CATCH_UP = "last"
MAX_CATCH_UP = 100  # `all` starts at most this many missed slots, the most recent ones
ON_TIME_MS = 60_000  # `none`: a slot first seen at most this late still runs (it was not missed)
_HORIZON_YEARS = 30  # a cron expression that matches nothing within this is refused
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)


class ScheduleError(LocalFlowError):
    """A schedule expression, name or option that cannot be used (bad usage: exit 2)."""

    exit_code = 2


class ScheduleNotFound(NotFoundError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule '{name}' (see `lf schedule list`)")


class ScheduleExists(LocalFlowError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a schedule named '{name}' already exists; delete it first or choose another name")


class ScheduleCorrupt(LocalFlowError):
    exit_code = 3

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: schedule file is unreadable: {reason}; fix it or delete it "
                         "(`lf schedule delete NAME`)")


# --- cron expressions -------------------------------------------------------------

_MONTHS = {name: n for n, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS = (  # name, low, high, names
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 7 is Sunday too
)
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_EVERY_RE = re.compile(r"^@every\s+((?:[0-9]{1,9}[smhd])+)$")
_LAST_SLOT_MS = 253_402_300_740_000  # 9999-12-31T23:59Z: no slot after it (a record cannot hold one)


@dataclass(frozen=True)
class Spec:
    """A parsed schedule: cron fields (sets of allowed values) or a fixed interval."""

    text: str
    minutes: frozenset = frozenset()
    hours: frozenset = frozenset()
    days: frozenset = frozenset()  # of the month
    months: frozenset = frozenset()
    weekdays: frozenset = frozenset()  # 0 = Sunday
    days_any: bool = True  # the day-of-month field starts with '*'
    weekdays_any: bool = True
    every_ms: int = 0  # @every: slots at the multiples of this since the epoch (UTC)

    @property
    def seconds(self) -> bool:
        """Whether slots can fall within a minute (then run ids carry seconds)."""
        return bool(self.every_ms) and self.every_ms % 60_000 != 0

    # -- matching -----------------------------------------------------------------

    def _day_matches(self, day: datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:  # cron's rule: both must match ('*' matches anything)
            return in_month and in_week
        return in_month or in_week  # both restricted: either one will do

    def next_after(self, ms: int) -> Union[int, None]:
        """The first slot strictly after ``ms`` (epoch ms), or None if there is none within 30 years
        (or before the end of year 9999)."""
        if ms >= _LAST_SLOT_MS:
            return None
        if self.every_ms:
            slot = (ms // self.every_ms + 1) * self.every_ms
            return slot if slot <= _LAST_SLOT_MS else None
        try:
            return self._next_cron_slot(ms)
        except (OverflowError, ValueError):  # past year 9999
            return None

    def _next_cron_slot(self, ms: int) -> Union[int, None]:
        start = _to_dt(ms).replace(second=0, microsecond=0) + _MINUTE
        t, limit = start, start.year + _HORIZON_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += _MINUTE
            else:
                return _to_ms(t)
        return None

    def at_or_before(self, ms: int) -> Union[int, None]:
        """The last slot at or before ``ms``, or None if there is none within 30 years before it."""
        if self.every_ms:
            return ms // self.every_ms * self.every_ms
        t = _to_dt(ms).replace(second=0, microsecond=0)
        limit = t.year - _HORIZON_YEARS
        while t.year >= limit:
            if t.month not in self.months:
                t = t.replace(day=1, hour=0, minute=0) - _MINUTE
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) - _MINUTE
            elif t.hour not in self.hours:
                t = t.replace(minute=0) - _MINUTE
            elif t.minute not in self.minutes:
                t -= _MINUTE
            else:
                return _to_ms(t)
        return None

    def slot_id(self, name: str, slot_ms: int) -> str:
        """The workflow id of a slot's run: ``<name>-YYYYMMDDTHHMMZ`` (``...HHMMSSZ`` for sub-minute slots)."""
        return f"{name}-{format_slot(slot_ms, self.seconds)}"


def _to_dt(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(milliseconds=ms)


def _to_ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=_UTC)) // timedelta(milliseconds=1)


def _first_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0)


def format_slot(slot_ms: int, seconds: bool = False) -> str:
    return _to_dt(slot_ms).strftime("%Y%m%dT%H%M%SZ" if seconds else "%Y%m%dT%H%MZ")


@lru_cache(maxsize=256)
def parse_spec(text: str) -> Spec:
    """Parse a cron expression or shorthand; raises ScheduleError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("empty schedule expression: give 5 cron fields, like '*/5 * * * *', or '@every 10m'")
    clean = " ".join(text.split())
    lowered = clean.lower()
    if lowered.startswith("@every"):
        match = _EVERY_RE.fullmatch(lowered)
        if match is None:
            raise ScheduleError(f"bad interval in {text!r}: write '@every 10m' (units s, m, h, d; e.g. 1h30m)")
        every = sum(int(n) * _UNITS_MS[u] for n, u in re.findall(r"(\d+)([smhd])", match.group(1)))
        if every < 1000:
            raise ScheduleError(f"{text!r}: the interval must be at least 1s")
        if every > 366 * 86_400_000:
            raise ScheduleError(f"{text!r}: the interval must be at most 366d (use a cron expression beyond)")
        return Spec(text=clean, every_ms=every)
    if lowered.startswith("@"):
        if lowered not in _SHORTHANDS:
            known = ", ".join(sorted(_SHORTHANDS)) + ", @every DURATION"
            raise ScheduleError(f"unknown shorthand {text!r}; known: {known}")
        fields = _SHORTHANDS[lowered].split()
    else:
        fields = clean.split(" ")
    if len(fields) != 5:
        raise ScheduleError(f"{text!r} has {len(fields)} fields; a cron expression has 5: "
                            "minute hour day-of-month month day-of-week (e.g. '*/5 * * * *')")
    sets = [_parse_field(field, *spec) for field, spec in zip(fields, _FIELDS)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    spec = Spec(text=clean, minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3], weekdays=weekdays,
                days_any=fields[2].startswith("*"), weekdays_any=fields[4].startswith("*"))
    if spec.next_after(_to_ms(datetime(2000, 1, 1, tzinfo=_UTC))) is None:
        raise ScheduleError(f"{text!r} never matches a date (e.g. the 30th of February)")
    return spec


def _parse_field(field: str, name: str, low: int, high: int, names: dict) -> frozenset:
    values: set[int] = set()
    for part in field.split(","):
        values |= _parse_part(part, field, name, low, high, names)
    return frozenset(values)


def _parse_part(part: str, field: str, name: str, low: int, high: int, names: dict) -> set[int]:
    where = f"{name} field {field!r}"
    if not part:
        raise ScheduleError(f"{where}: empty list element")
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(f"{where}: the step after '/' must be a whole number above 0, not {step_text!r}")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    else:
        first_text, dash, last_text = base.partition("-")
        first = _value(first_text, where, low, high, names)
        if dash:
            last = _value(last_text, where, low, high, names)
            if last < first:
                raise ScheduleError(f"{where}: range {base!r} runs backwards")
        else:
            last = high if slash else first  # 'a/n' means a, a+n, ... up to the field's end
    return set(range(first, last + 1, step))


def _value(text: str, where: str, low: int, high: int, names: dict) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in names:
        value = names[text.lower()]
    else:
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise ScheduleError(f"{where}: {text!r} is not a number{hint}")
    if not low <= value <= high:
        raise ScheduleError(f"{where}: {value} is out of range {low}-{high}")
    return value


# --- catch-up -----------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """What to do about the slots due at a moment: start ``run`` (oldest first); ``skipped`` were
    missed and are not started (``more_skipped``: and older ones, beyond the last 100, too)."""

    run: tuple[int, ...]
    skipped: int
    more_skipped: bool
    latest: Union[int, None]  # the newest due slot: everything up to it is dealt with


def slots_to_start(spec: Spec, catch_up: str, after: Union[int, None], start_at: int, now: int) -> Due:
    """Which of the slots due at ``now`` to start: those in ``[start_at, now]`` after ``after``
    (the newest slot already dealt with), newest ``MAX_CATCH_UP`` at most.

    A slot at most ``ON_TIME_MS`` old is *on time* and always starts, whatever the policy
    (a busy or briefly restarted supervisor skips nothing). Older slots were *missed*:

    - ``none``: none of them;
    - ``last``: the most recent one, if no slot is on time (so one run either way);
    - ``all``: every one of them.
    """
    floor = start_at - 1 if after is None else max(after, start_at - 1)
    latest = spec.at_or_before(now)
    if latest is None or latest <= floor:
        return Due((), 0, False, None)
    found = [latest]
    while len(found) <= MAX_CATCH_UP:  # one more than the cap tells whether older ones were missed too
        earlier = spec.at_or_before(found[-1] - 1)
        if earlier is None or earlier <= floor:
            break
        found.append(earlier)
    more = len(found) > MAX_CATCH_UP
    found = found[:MAX_CATCH_UP]
    found.reverse()  # oldest first
    on_time = [slot for slot in found if now - slot <= ON_TIME_MS]
    if catch_up == "all":
        run = found
    elif catch_up == "last" and not on_time:
        run = found[-1:]
    else:
        run = on_time
    return Due(tuple(run), len(found) - len(run), more, latest)


# --- the store ----------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise ScheduleError(f"invalid schedule name {name!r}: use 1-100 characters from A-Z a-z 0-9 _ . -, "
                            "starting with a letter or digit")
    return name


@dataclass
class Schedule:
    """One schedule file: the definition (name .. created_at) and its state (paused .. last_error)."""

    name: str
    flow: str
    spec: str
    input: dict
    catch_up: str
    start_at: int  # ms; no slot before this runs
    created_at: int
    paused: bool = False
    done_through: Union[int, None] = None  # every slot at or before this was started or skipped
    last_slot: Union[int, None] = None  # the newest slot started
    last_run: Union[str, None] = None  # its workflow id
    last_error: Union[str, None] = None

    @property
    def parsed(self) -> Spec:
        return parse_spec(self.spec)

    def next_slot(self, now: int) -> Union[int, None]:
        """The next slot that has not been dealt with and is not due yet (for display and wake-ups)."""
        floor = max(now, self.start_at - 1, self.done_through if self.done_through is not None else now)
        return self.parsed.next_after(floor)

    def to_json(self) -> dict:
        def iso(ms: Union[int, None]) -> Union[str, None]:
            return None if ms is None else to_iso(ms)

        return {"localflow_schedule": SCHEDULE_FORMAT, "name": self.name, "flow": self.flow, "cron": self.spec,
                "input": self.input, "catch_up": self.catch_up, "start_at": iso(self.start_at),
                "created_at": iso(self.created_at), "paused": self.paused,
                "done_through": iso(self.done_through), "last_slot": iso(self.last_slot),
                "last_run": self.last_run, "last_error": self.last_error}

    @classmethod
    def from_json(cls, data: Any, name: str) -> "Schedule":
        """Check and read a schedule file's JSON; raises ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("localflow_schedule") != SCHEDULE_FORMAT:
            raise ValueError(f"'localflow_schedule' must be {SCHEDULE_FORMAT}")
        if data.get("name") != name:
            raise ValueError(f"'name' is {data.get('name')!r}, but the file is named {name}.json")

        def text(key: str, optional: bool = False) -> Any:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key!r} must be a non-empty string")
            return value

        def moment(key: str, optional: bool = False) -> Union[int, None]:
            value = text(key, optional)
            if value is None:
                return None
            try:
                return from_iso(value)
            except ValueError:
                raise ValueError(f"{key!r} is not an ISO time: {value!r}") from None

        try:
            parse_spec(text("cron"))
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        if data.get("catch_up") not in CATCH_UP:
            raise ValueError(f"'catch_up' must be one of {', '.join(CATCH_UP)}")
        if not isinstance(data.get("input", {}), dict):
            raise ValueError("'input' must be a JSON object")
        if not isinstance(data.get("paused", False), bool):
            raise ValueError("'paused' must be true or false")
        return cls(name=name, flow=text("flow"), spec=text("cron"), input=data.get("input", {}),
                   catch_up=data["catch_up"], start_at=moment("start_at"), created_at=moment("created_at"),
                   paused=data.get("paused", False), done_through=moment("done_through", True),
                   last_slot=moment("last_slot", True), last_run=text("last_run", True),
                   last_error=data.get("last_error") if isinstance(data.get("last_error"), str) else None)


_SUFFIX = ".json"
LOCK_NAME = ".lock"


class ScheduleStore:
    """``var/schedules/<name>.json``, read and written below var/ without following a symlink."""

    def __init__(self, var_dir: Path, directory: Path) -> None:
        self.var_dir = var_dir
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / f"{validate_name(name)}{_SUFFIX}"

    def ensure(self) -> None:
        ensure_dir(self.var_dir)
        ensure_dir(self.dir, self.var_dir)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``var/schedules/.lock`` (every read-modify-write of a schedule file does)."""
        from filelock import FileLock  # here: building the CLI parser never imports it

        self.ensure()
        lock_path = self.dir / LOCK_NAME
        safe.check(self.var_dir, lock_path)
        lock = FileLock(str(lock_path), mode=0o600)
        try:
            lock.acquire(timeout=60)
        except OSError as exc:
            raise UnsafePath(str(lock_path), f"it cannot be locked ({exc.strerror or exc})") from None
        try:
            yield
        finally:
            lock.release()

    def names(self) -> list[str]:
        """Every schedule file's name (sorted); an unsafe directory raises UnsafePath."""
        if not os.path.lexists(self.dir):
            return []
        with safe.directory(self.var_dir, self.dir) as fd:
            entries = os.listdir(fd)
        return sorted(e[:-len(_SUFFIX)] for e in entries
                      if e.endswith(_SUFFIX) and not e.startswith(".") and _NAME_RE.fullmatch(e[:-len(_SUFFIX)]))

    def signature(self, name: str) -> Union[tuple, None]:
        """(inode, size, mtime) of a schedule file, None if absent: has it changed since?"""
        try:
            st = os.lstat(self.path(name))
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode))

    def read(self, name: str) -> Schedule:
        """Raises ScheduleNotFound, ScheduleCorrupt (naming the path) or UnsafePath."""
        path = self.path(name)
        try:
            raw = safe.read_bytes(self.var_dir, path)
        except FileNotFoundError:
            raise ScheduleNotFound(name) from None
        except OSError as exc:
            raise ScheduleCorrupt(str(path), exc.strerror or str(exc)) from None
        try:
            return Schedule.from_json(parse_json(raw, str(path)), name)
        except (ValueError, InvalidValue, LocalFlowError) as exc:
            raise ScheduleCorrupt(str(path), str(exc)) from None

    def write(self, schedule: Schedule) -> None:
        self.ensure()
        data = json.dumps(schedule.to_json(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(self.path(schedule.name), data.encode("utf-8"), self.var_dir)

    def delete(self, name: str) -> bool:
        return remove(self.path(name), self.var_dir)


def store_for(paths: Any) -> ScheduleStore:
    return ScheduleStore(paths.var_dir, paths.schedules_dir)


class Scheduler:
    """The supervisor's half: start each schedule's due slots, and know when the next one is due.

    ``process`` runs on every pass of the supervisor's loop and costs nothing unless a
    schedule was hinted (a file event, a rescan that found a changed file) or its next
    slot is due; the supervisor then sets a wake-up (no marker: the schedule file is the
    durable record) for ``next_at``, so it sleeps until the next slot. A schedule is
    read, its due slots started and its state written under ``var/schedules/.lock``.
    One bad schedule file is logged once (per content) and skipped.
    """

    def __init__(self, engine: Any, log: Any, on_started: Any) -> None:
        self.engine = engine
        self.store = store_for(engine.paths)
        self.log = log
        self.on_started = on_started
        self._guard = threading.Lock()
        self._hinted: set[str] = set()
        self._next: dict[str, int] = {}  # name -> when (clock ms) to look at it again
        self._seen: dict[str, Union[tuple, None]] = {}  # name -> file signature when last read
        self._reported: dict[str, str] = {}

    def prepare(self) -> None:
        """Make var/schedules/ (so it can be watched from the start); a refusal is logged, not raised."""
        try:
            self.store.ensure()
        except LocalFlowError as exc:
            self._report("", f"schedules: {exc}")

    def hint(self, name: str) -> None:
        """A schedule file was written (watcher thread): looked at on the next pass if it changed."""
        with self._guard:
            self._hinted.add(name)

    def rescan(self) -> None:
        """Hint every schedule file (at start, and periodically: what file events missed)."""
        try:
            names = self.store.names()
        except (LocalFlowError, OSError) as exc:
            self._report("", f"schedules: {exc}")
            return
        self._reported.pop("", None)
        gone = set(self._seen) - set(names)
        for name in gone:
            self._forget(name)
        with self._guard:
            self._hinted |= set(names)

    def next_at(self) -> Union[int, None]:
        return min(self._next.values(), default=None)

    def process(self) -> None:
        now = self.engine.clock()
        with self._guard:
            hinted, self._hinted = self._hinted, set()
        look = {n for n in hinted if n not in self._seen or self.store.signature(n) != self._seen[n]}
        look |= {n for n, at in self._next.items() if at <= now}
        for name in sorted(look):
            self._look(name)

    def _forget(self, name: str) -> None:
        self._next.pop(name, None)
        self._seen.pop(name, None)
        self._reported.pop(name, None)

    def _report(self, name: str, text: str) -> None:
        if self._reported.get(name) != text:
            self._reported[name] = text
            self.log(text)

    def _look(self, name: str) -> None:
        try:
            with self.store.locked():
                signature = self.store.signature(name)
                try:
                    schedule = self.store.read(name)
                except ScheduleNotFound:
                    self._forget(name)
                    return
                except (ScheduleCorrupt, LocalFlowError) as exc:
                    self._seen[name] = signature  # said once per content; looked at again when it changes
                    self._next.pop(name, None)
                    self._report(name, f"schedule {name}: skipped: {exc}")
                    return
                self._reported.pop(name, None)
                now = self.engine.clock()
                if not schedule.paused and self._start_due(schedule, now):
                    self.store.write(schedule)
                    signature = self.store.signature(name)
                self._seen[name] = signature
                at = None if schedule.paused else schedule.next_slot(now)
                if at is None:
                    self._next.pop(name, None)
                else:
                    self._next[name] = at
        except Exception as exc:  # the disk, a lock: never stops the supervisor; the next rescan retries
            self._seen.pop(name, None)
            self._next.pop(name, None)
            text = str(exc) if isinstance(exc, LocalFlowError) else f"internal error: {exc!r} (please report it)"
            self._report(name, f"schedule {name}: cannot start its slots now: {text}; retrying at the next rescan")

    def _start_due(self, schedule: Schedule, now: int) -> bool:
        """Start what the catch-up policy says of the due slots; True if the state changed."""
        spec = schedule.parsed
        due = slots_to_start(spec, schedule.catch_up, schedule.done_through, schedule.start_at, now)
        if due.latest is None:
            return False
        if due.skipped or due.more_skipped:
            count = f"at least {due.skipped + 1}" if due.more_skipped else str(due.skipped)
            self.log(f"schedule {schedule.name}: {count} missed slot(s) not started (catch-up {schedule.catch_up})")
        for slot in due.run:
            workflow_id = spec.slot_id(schedule.name, slot)
            try:
                self.engine.start(schedule.flow, schedule.input, workflow_id, allow_path=False)
            except WorkflowExists:
                self.log(f"schedule {schedule.name}: slot {to_iso(slot)} already has its workflow {workflow_id}; "
                         "not started again")
            except _PERMANENT as exc:  # the flow is gone or broken: this slot cannot run; say so, go on
                schedule.last_error = f"slot {to_iso(slot)}: {exc}"
                self.log(f"schedule {schedule.name}: slot {to_iso(slot)} not started: {exc}")
                schedule.done_through = slot
                continue
            except Exception:
                self.store.write(schedule)  # the slots started so far are recorded; this one is retried
                raise
            else:
                self.log(f"schedule {schedule.name}: started {workflow_id} (slot {to_iso(slot)})")
                self.on_started(workflow_id)
                schedule.last_error = None
            schedule.done_through = slot
            schedule.last_slot = slot
            schedule.last_run = workflow_id
        schedule.done_through = due.latest
        return True



# A slot whose run cannot be created whatever we do (the flow is gone or broken, the input no longer fits):
# it is reported and counted as dealt with. Anything else (the disk, a lock) is retried.
_PERMANENT = (FlowNotFound, FlowSyntaxError, InputError, InvalidValue, InvalidWorkflowId, PayloadTooLarge)
