"""Recording heartbeats: ``ActivityHeartbeat`` at most every ``RECORD_INTERVAL_S`` per attempt.

The runner calls a ``HeartbeatRecorder`` with each heartbeat's details (as often as the
activity sends them: a hundred a second costs nothing on disk). The recorder appends
``ActivityHeartbeat`` only when the details changed since the last recorded ones, and at
most once per ``RECORD_INTERVAL_S`` seconds: the first details at once, later ones when
the interval since the previous record has passed (a timer records changed details that
no later heartbeat brings). When the attempt ends, ``finish()`` gives the last details if
they were not recorded yet, and the executor appends them with the attempt's outcome in
one transaction, so the step's next attempt is handed exactly what the attempt last
reported. Each record goes through the executor's ``_record``: appended only while the
attempt is pending.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from localflow.core import events as ev

RECORD_INTERVAL_S = 5.0
_NOTHING: Any = object()


def _canonical(details: Any) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class HeartbeatRecorder:
    """Called with each heartbeat's details; records them rate-limited (see the module)."""

    def __init__(self, record: Callable[[list], object], step: str, attempt: int,
                 interval_s: float = RECORD_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 handed: Any = None) -> None:
        self._record = record
        self.step, self.attempt = step, attempt
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()  # the fields below
        self._writing = threading.Lock()  # one record at a time, so they are appended in order
        self._latest: Any = _NOTHING
        self._latest_text = ""
        # details the attempt was handed count as recorded: reporting them again records nothing
        self._recorded_text = "" if handed is None else _canonical(handed)
        self._recorded_at = float("-inf")
        self._timer: Any = None
        self._final: Any = None  # the events finish() returned (it is over then)

    def __call__(self, details: Any) -> None:
        with self._lock:
            if self._final is not None:
                return
            text = _canonical(details)
            self._latest, self._latest_text = details, text
            if text == self._recorded_text:
                return
            wait = self._recorded_at + self.interval_s - self._clock()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._flush()

    def _event(self) -> ev.ActivityHeartbeat:
        return ev.ActivityHeartbeat(step=self.step, attempt=self.attempt, details=self._latest)

    def _unrecorded(self) -> bool:
        return self._latest is not _NOTHING and self._latest_text != self._recorded_text

    def _flush(self) -> None:
        with self._writing:
            with self._lock:
                self._timer = None
                if self._final is not None or not self._unrecorded():
                    return
                event = self._event()
                self._recorded_text, self._recorded_at = self._latest_text, self._clock()
            self._record([event])

    def finish(self) -> list:
        """The attempt ended: the last details to append with its outcome ([] if already recorded)."""
        with self._writing:
            with self._lock:
                if self._final is None:
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    self._final = [self._event()] if self._unrecorded() else []
                return self._final


def final_heartbeat(recorder: Any) -> list:
    """``finish()`` of an attempt's recorder (nothing for an attempt without one)."""
    return recorder.finish() if isinstance(recorder, HeartbeatRecorder) else []
