"""Time for the shell: the system clock, and a virtual one that skips ahead.

The engine and the driving loop never read time themselves; they are handed a
clock (``clock()`` returns epoch milliseconds) and, for waiting, ``clock.wait``.
``VirtualClock`` makes waiting free: a wait with nothing else to do moves the
clock to the moment the waiter asked for, so a flow that sleeps a day runs in
milliseconds (time-skipping tests, and replay's time travel later), with every
timestamp still coming from the clock and recorded in the history.
"""

from __future__ import annotations

import threading
import time


class SystemClock:
    def __call__(self) -> int:
        return int(time.time() * 1000)

    def wait(self, condition: threading.Condition, seconds: float, until_due: float = float("inf")) -> None:
        """Wait on ``condition`` (held by the caller) for at most ``seconds``."""
        condition.wait(seconds)


class VirtualClock:
    """A clock that starts at ``start_ms`` and moves only when told to, or when a wait skips ahead."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms
        self._guard = threading.Lock()

    def __call__(self) -> int:
        with self._guard:
            return self.now_ms

    def advance(self, ms: int) -> None:
        with self._guard:
            self.now_ms += ms

    def wait(self, condition: threading.Condition, seconds: float, until_due: float = float("inf")) -> None:
        """Let other threads run briefly; if nothing woke us, skip ahead to the next due wake-up
        (``until_due`` seconds away; the real-time cap ``seconds`` does not apply to virtual time)."""
        woken = condition.wait(0.005)
        if not woken and until_due != float("inf"):
            self.advance(max(1, int(until_due * 1000 + 0.999)))


system_clock = SystemClock()
