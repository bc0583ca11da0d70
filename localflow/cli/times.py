"""How `lf` shows a moment: one time policy for every view.

- ``relative`` (the default on a terminal): "3m ago", "in 4m52s"; tables say so.
- ``utc`` (the default when piped, and always in JSON): ISO 8601 UTC with ``Z``,
  ``2026-11-30T09:12:03Z`` (JSON keeps the milliseconds: ``to_iso``).
- ``local``: the machine's zone, ``09:12:03+01:00`` when the moment is today, else with its
  date; each time carries its offset, so a line never mixes zones unnamed.

One policy per command run, so every time in a line is in the same zone. The
policy reads the clock once (``now_ms``) and the zone from the machine; nothing
here is used by the deterministic core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

MODES = ("relative", "local", "utc")


def add_time_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-format", choices=MODES, default=argparse.SUPPRESS,
                        help="how times are shown: relative (default on a terminal), local, or utc "
                             "(ISO 8601 with Z; default when piped)")


def _default_mode() -> str:
    return "relative" if sys.stdout.isatty() else "utc"


@dataclass(frozen=True)
class TimePolicy:
    mode: str = "utc"
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    zone: timezone | None = None  # ``local`` only: None is the machine's zone

    def at(self, ms: int | None) -> str:
        """A moment, in this policy (``-`` for none)."""
        if ms is None:
            return "-"
        if self.mode == "relative":
            return relative(ms, self.now_ms)
        if self.mode == "local":
            moment = self._local(ms)
            today = self._local(self.now_ms).date()
            return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M:%S") + _offset(moment)
        return utc(ms)

    def precise(self, ms: int | None) -> str:
        """A moment in an event list: relative views show the clock time too (events are close together)."""
        if ms is None:
            return "-"
        if self.mode == "relative":
            return f"{self._clock_utc(ms)} ({relative(ms, self.now_ms)})"
        if self.mode == "local":
            moment = self._local(ms)
            today = self._local(self.now_ms).date()
            shown = moment.strftime("%H:%M:%S.") + f"{ms % 1000:03d}" + _offset(moment)
            return shown if moment.date() == today else moment.strftime("%Y-%m-%d ") + shown
        return utc(ms, millis=True)

    def _clock_utc(self, ms: int) -> str:
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        today = datetime.fromtimestamp(self.now_ms / 1000, tz=timezone.utc).date()
        return moment.strftime("%H:%M:%SZ" if moment.date() == today else "%Y-%m-%dT%H:%M:%SZ")

    def _local(self, ms: int) -> datetime:
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        return moment.astimezone(self.zone) if self.zone else moment.astimezone()

    def zone_note(self) -> str:
        """What a view's caption says about its times."""
        if self.mode == "relative":
            return "times relative to now"
        if self.mode == "local":
            offset = self._local(self.now_ms).strftime("%z")
            name = self._local(self.now_ms).tzname() or ""
            return f"times in local time ({name} UTC{offset[:3]}:{offset[3:]})".replace("( UTC", "(UTC")
        return "times in UTC"


def policy_for(args: argparse.Namespace, machine: bool = False) -> TimePolicy:
    """The policy of this command run: ``--time-format``, else relative on a terminal and UTC when
    piped; ``machine`` (JSON, TSV) is always UTC."""
    if machine:
        return TimePolicy("utc")
    mode = getattr(args, "time_format", None) or os.environ.get("LF_TIME_FORMAT") or _default_mode()
    return TimePolicy(mode if mode in MODES else "utc")


def _offset(moment: datetime) -> str:
    """``+01:00``: a local time names its zone itself, so it is never read as UTC (piped, no caption)."""
    text = moment.strftime("%z")
    return f"{text[:3]}:{text[3:]}" if text else ""


def utc(ms: int, millis: bool = False) -> str:
    """``2026-11-30T09:12:03Z`` (with ``millis``: ``...03.123Z``)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if millis else f"{text}Z"


def relative(ms: int, now_ms: int) -> str:
    """``3m ago``, ``in 4m52s``, ``just now``; days past two days (``3d04h ago``)."""
    delta = now_ms - ms
    if abs(delta) < 1000:
        return "just now"
    text = span(abs(delta))
    return f"{text} ago" if delta > 0 else f"in {text}"


def span(ms: int) -> str:
    """A length of time for people: 850ms, 12s, 4m52s, 2h05m, 3d04h."""
    ms = int(ms)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
