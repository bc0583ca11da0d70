"""The one driving loop, shared by `lf supervise` (every workflow) and `lf run` (one, with its children).

Each pass: wait for work (a forced reconcile, a hint whose history changed, a due
wake-up), reconcile it, run ``every_pass`` (the supervisor's drop folder), and the
``periodic`` job (the rescan) when its period is up. All time comes from the
engine's clock, so a virtual clock drives it as well as the real one.
"""

from __future__ import annotations

from typing import Callable, Union

from localflow.supervisor.executor import Executor

_MAX_WAIT_S = 0.5  # how often a stop request is noticed


def drive(executor: Executor, reconcile: Callable[[str], object], until: Callable[[], bool],
          every_pass: Union[Callable[[], None], None] = None,
          periodic: Union[Callable[[], None], None] = None, period_s: float = 5.0) -> None:
    """Run passes until ``until()`` is true (checked before each pass and each reconcile)."""
    clock = executor.engine.clock
    next_periodic = clock() + int(period_s * 1000)
    while not until():
        for workflow_id in sorted(executor.wait_for_work(max_wait_s=min(_MAX_WAIT_S, period_s))):
            if until():
                return
            reconcile(workflow_id)
        if every_pass is not None:
            every_pass()
        if periodic is not None and clock() >= next_periodic:
            periodic()
            next_periodic = clock() + int(period_s * 1000)
