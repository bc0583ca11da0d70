"""The one timer scheduler: marker files are the durable schedule, an in-memory mirror answers fast.

A pending timer that still matters has a marker ``var/timers/<fire_at_ms:013d>-<id>-<n>``
(store/timers.py); the sorted listing of that folder *is* the schedule (huey's
file storage). ``load()`` reads it (at start and on every rescan); ``set`` writes a
marker and ``clear`` removes one, both only when the mirror says it is needed, so a
reconcile costs no syscalls for timers that did not change. The watchdog handler
and the drop folder only ``poke`` it; the executor asks it what is ``due``.

``Wakeups(None)`` keeps the same schedule in memory only (the twin for tests and
for runs without a var/). Time is never read here: callers pass ``now``.
"""

from __future__ import annotations

import heapq
import threading
from typing import Union

from localflow.store import timers as timer_store
from localflow.store.paths import Paths, TimerMarker


class Wakeups:
    def __init__(self, paths: Union[Paths, None]) -> None:
        self.paths = paths
        self._guard = threading.Lock()
        self._heap: list[tuple[int, str]] = []  # (at ms, workflow id), each entry once
        self._queued: set[tuple[int, str]] = set()
        self._markers: set[TimerMarker] = set()  # markers known to exist on disk

    # --- the durable schedule -------------------------------------------------------

    def load(self) -> list[TimerMarker]:
        """Read the marker listing (the truth) into the mirror; returns the markers, earliest first."""
        markers = timer_store.list_markers(self.paths) if self.paths is not None else sorted(
            self._markers, key=lambda m: m.name)
        with self._guard:
            self._markers = set(markers)
        for marker in markers:
            self.poke(marker.workflow_id, marker.fire_at_ms)
        return markers

    def set(self, marker: TimerMarker) -> None:
        """Make sure ``marker`` is on the durable schedule (written once, then remembered)."""
        with self._guard:
            known = marker in self._markers
        if not known:
            if self.paths is not None:
                timer_store.write_marker(self.paths, marker)
            with self._guard:
                self._markers.add(marker)
        self.poke(marker.workflow_id, marker.fire_at_ms)

    def clear(self, marker: TimerMarker) -> None:
        """Take ``marker`` off the schedule if it is on it (its timer fired or no longer matters)."""
        with self._guard:
            if marker not in self._markers:
                return
            self._markers.discard(marker)
        if self.paths is not None:
            timer_store.remove_marker(self.paths, marker)

    def forget_workflow(self, workflow_id: str) -> None:
        """Remove every marker of a workflow that no longer exists."""
        with self._guard:
            stray = [m for m in self._markers if m.workflow_id == workflow_id]
        for marker in stray:
            self.clear(marker)

    def marked_workflows(self) -> set[str]:
        with self._guard:
            return {m.workflow_id for m in self._markers}

    # --- wake-ups ---------------------------------------------------------------------

    def poke(self, workflow_id: str, at_ms: int) -> bool:
        """Wake ``workflow_id`` at ``at_ms`` (not durable: for markers and re-looks); True if new."""
        entry = (at_ms, workflow_id)
        with self._guard:
            if entry in self._queued:
                return False
            self._queued.add(entry)
            heapq.heappush(self._heap, entry)
            return True

    def next_at(self) -> Union[int, None]:
        with self._guard:
            return self._heap[0][0] if self._heap else None

    def due(self, now_ms: int) -> set[str]:
        """Take every wake-up due at ``now_ms``; returns the workflow ids ("" wakes the loop only)."""
        found: set[str] = set()
        with self._guard:
            while self._heap and self._heap[0][0] <= now_ms:
                entry = heapq.heappop(self._heap)
                self._queued.discard(entry)
                found.add(entry[1])
        return found
