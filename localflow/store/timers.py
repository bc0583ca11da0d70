"""Timer marker files in var/timers/: their sorted names are the schedule (huey's idea).

A marker ``<fire_at_ms:013d>-<workflow id>-<timer n>`` mirrors a ``TimerStarted``
event; the history stays the truth, so markers can always be rebuilt from it and
a stray marker (its timer already fired) is simply removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from localflow.store.atomic import ensure_dir, fsync_dir, write_atomic
from localflow.store.paths import Paths, TimerMarker, parse_timer_marker


def write_marker(paths: Paths, marker: TimerMarker) -> Path:
    ensure_dir(paths.timers_dir)
    target = paths.timer_marker(marker)
    if not target.exists():
        write_atomic(target, b"")
    return target


def remove_marker(paths: Paths, marker: TimerMarker) -> None:
    try:
        os.unlink(paths.timer_marker(marker))
        fsync_dir(paths.timers_dir)
    except FileNotFoundError:
        pass


def list_markers(paths: Paths) -> list[TimerMarker]:
    """Every marker, earliest first (the sorted listing is the schedule)."""
    if not paths.timers_dir.is_dir():
        return []
    markers = (parse_timer_marker(name) for name in sorted(os.listdir(paths.timers_dir)))
    return [m for m in markers if m is not None]
