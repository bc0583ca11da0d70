"""Timer marker files in var/timers/: their sorted names are the schedule (huey's idea).

A marker ``<fire_at_ms:013d>-<workflow id>-<timer n>`` mirrors a ``TimerStarted``
event; the history stays the truth, so markers can always be rebuilt from it and
a stray marker (its timer already fired) is simply removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from localflow.store.atomic import ensure_dir, remove, write_atomic
from localflow.store.paths import Paths, TimerMarker, parse_timer_marker


def write_marker(paths: Paths, marker: TimerMarker) -> Path:
    ensure_dir(paths.timers_dir, paths.var_dir)
    target = paths.timer_marker(marker)
    if not os.path.lexists(target):
        write_atomic(target, b"", paths.var_dir)
    return target


def remove_marker(paths: Paths, marker: TimerMarker) -> None:
    remove(paths.timer_marker(marker), paths.var_dir)


def list_markers(paths: Paths) -> list[TimerMarker]:
    """Every marker, earliest first (the sorted listing is the schedule)."""
    if paths.timers_dir.is_symlink() or not paths.timers_dir.is_dir():
        return []
    markers = (parse_timer_marker(name) for name in sorted(os.listdir(paths.timers_dir)))
    return [m for m in markers if m is not None]
