"""Time for the shell: the system clock, and a virtual one that skips ahead.

The engine and the driving loop never read time themselves; they are handed a
clock (``clock()`` returns epoch milliseconds) and, for waiting, ``clock.wait``.
``VirtualClock`` makes waiting free: a wait with nothing else to do moves the
clock to the moment the waiter asked for, so a flow that sleeps a day runs in
milliseconds (``lf run --skip-time``, ``localflow.testing``), with every
timestamp still coming from the clock and recorded in the history.

The waiter (the executor) decides whether anything else can happen: it passes
``until_due`` (seconds to the next due wake-up) only when nothing is running and
nothing is waiting to be reconciled, and ``inf`` otherwise, so a running activity
is never skipped over. A virtual clock remembers its jumps; ``skipped_since(ms)``
says how much of the time since ``ms`` was skipped, which the executor records as
a ``TimeSkipped`` event before the ``TimerFired`` a jump made due. The system
clock never jumps and has no ``skipped_since``: nothing changes on real time.
"""

from __future__ import annotations

import threading
import time
from typing import Union

_GRACE_S = 0.005  # a virtual wait first lets other threads speak up for this long (real time)


class SystemClock:
    def __call__(self) -> int:
        return int(time.time() * 1000)

    def wait(self, condition: threading.Condition, seconds: float, until_due: float = float("inf")) -> None:
        """Wait on ``condition`` (held by the caller) for at most ``seconds``."""
        condition.wait(seconds)


class VirtualClock:
    """A clock that starts at ``start_ms`` and moves only when told to, or when a wait skips ahead.

    With ``real_time`` it also moves with the real (monotonic) time in between, as
    ``lf run --skip-time`` needs: activities take the time they take, only waits for
    timers are skipped. ``limit_ms`` (None: no limit) is a horizon a wait never skips
    past; ``localflow.testing`` sets it to run "until idle" without skipping.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000, real_time: bool = False) -> None:
        self.real_time = real_time
        self.limit_ms: Union[int, None] = None
        self._base_ms = start_ms  # virtual time at _base_mono, plus every jump so far
        self._base_mono = time.monotonic()
        self._jumps: list[tuple[int, int]] = []  # (from ms, to ms), in order
        self._guard = threading.Lock()

    def _now(self) -> int:  # under _guard
        if not self.real_time:
            return self._base_ms
        return self._base_ms + int((time.monotonic() - self._base_mono) * 1000)

    def __call__(self) -> int:
        with self._guard:
            return self._now()

    @property
    def now_ms(self) -> int:
        return self()

    def advance(self, ms: int) -> None:
        """Jump ``ms`` ahead (recorded as skipped time)."""
        if ms <= 0:
            return
        with self._guard:
            now = self._now()
            self._base_ms += ms
            self._jumps.append((now, now + ms))

    def catch_up(self, at_ms: int) -> None:
        """Move to ``at_ms`` if that is later, as time passing, not skipped (a history's timestamps
        may run a few ms ahead of a clock that stands still: one ms per transaction)."""
        with self._guard:
            now = self._now()
            if at_ms > now:
                self._base_ms += at_ms - now

    def skip_to(self, at_ms: int) -> int:
        """Jump ahead to ``at_ms`` if it is later than now; returns how far it jumped."""
        with self._guard:
            ms = at_ms - self._now()
        self.advance(ms)
        return max(0, ms)

    @property
    def skipped_ms(self) -> int:
        """All the time skipped so far."""
        with self._guard:
            return sum(end - start for start, end in self._jumps)

    def skipped_since(self, since_ms: int) -> int:
        """How much of the time from ``since_ms`` to now was skipped, not lived (ms)."""
        total = 0
        with self._guard:
            for start, end in reversed(self._jumps):
                if end <= since_ms:
                    break
                total += end - max(start, since_ms)
        return total

    def wait(self, condition: threading.Condition, seconds: float, until_due: float = float("inf")) -> None:
        """Wait on ``condition`` (held by the caller). With nothing due (``until_due`` inf: something
        is running, or nothing is scheduled) this is a real wait of at most ``seconds``. Otherwise,
        if nothing wakes it within a few milliseconds, skip ahead to the next due wake-up,
        ``until_due`` seconds away (the real-time cap ``seconds`` does not apply to virtual time),
        but never past ``limit_ms``."""
        if until_due == float("inf"):
            condition.wait(seconds)
            return
        if condition.wait(min(_GRACE_S, seconds) if seconds > 0 else _GRACE_S):
            return
        with self._guard:
            now = self._now()
        target = now + max(1, int(until_due * 1000 + 0.999))
        if self.limit_ms is not None:
            target = min(target, self.limit_ms)
        if target > now:
            self.skip_to(target)
        elif seconds > _GRACE_S:
            condition.wait(min(seconds, 0.05))  # at the horizon: nothing to skip to, no busy loop


system_clock = SystemClock()
