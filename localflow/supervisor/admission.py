"""Concurrency bounds: which attempts may start now, and which wait, first come first served.

Three kinds of bound, each a key and a limit:

- ``lf supervise --max-activities N`` (and ``lf run --max-activities N``): every attempt;
- a flow's ``concurrency N`` (at the top of the flow): the attempts of all workflows of
  that flow name;
- a step's ``concurrency N``: the attempts of that step (every loop instance of it) in
  all workflows of that flow.

An attempt starts only when every bound it falls under has room and no attempt that
was scheduled earlier is waiting on one of the same bounds (so a stream of new work
never starves the old). The state of the bounds is the set of attempts the executor
runs: only the process holding the executor slot (``var/supervisor.lock``, held by
``lf supervise`` or by ``lf run`` while it drives) starts attempts, so it is the only
grantor, and after a restart the state is rebuilt from the histories (the attempts
still pending). A bound is read from each workflow's pinned flow: workflows started
from an older version of the flow keep the limit they were started with.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Union

from localflow import ir
from localflow.core.state import UNDO_PREFIX, WorkflowState

Key = tuple  # (workflow id, step, attempt)
Bound = tuple[str, int]  # (what it counts, its limit)


@dataclass
class _Waiting:
    key: Key
    since: int  # when the attempt was scheduled (ms): the queue's order
    bounds: tuple[Bound, ...]


class Admission:
    def __init__(self, max_activities: int = 0) -> None:
        self.max_activities = max_activities
        self._guard = threading.Lock()
        self._held: dict[Key, tuple[Bound, ...]] = {}  # admitted and not yet released
        self._counts: dict[str, int] = {}
        self._waiting: list[_Waiting] = []
        self._step_limits: dict[int, dict[str, int]] = {}  # id(flow) -> step name -> limit

    def bounds_for(self, state: WorkflowState, step: str) -> tuple[Bound, ...]:
        """The bounds an attempt of ``step`` in this workflow falls under."""
        bounds: list[Bound] = []
        if self.max_activities > 0:
            bounds.append(("all activities", self.max_activities))
        flow = state.flow
        if flow.concurrency:
            bounds.append((f"flow {flow.name}", flow.concurrency))
        if not step.startswith(UNDO_PREFIX):
            name = step.split("[", 1)[0]
            limit = self._limits_of(flow).get(name)
            if limit:
                bounds.append((f"step {name} of flow {flow.name}", limit))
        return tuple(bounds)

    def _limits_of(self, flow: ir.Flow) -> dict[str, int]:
        limits = self._step_limits.get(id(flow))
        if limits is None:
            limits = {s.name: s.concurrency for s in ir.walk(flow.body)
                      if isinstance(s, ir.Activity) and s.concurrency}
            if len(self._step_limits) > 1024:
                self._step_limits.clear()
            self._step_limits[id(flow)] = limits
        return limits

    def admit(self, key: Key, since: int, bounds: tuple[Bound, ...]) -> Union[bool, str]:
        """True if the attempt may start now (its room is taken); else what it waits for (it is queued)."""
        with self._guard:
            if key in self._held:
                return True
            if self._fits(key, since, bounds):
                self._take(key, bounds)
                self._waiting = [w for w in self._waiting if w.key != key]
                return True
            if all(w.key != key for w in self._waiting):
                self._waiting.append(_Waiting(key, since, bounds))
                self._waiting.sort(key=lambda w: (w.since, w.key))
            return self._blocking(bounds)

    def release(self, key: Key) -> None:
        """The attempt ended (or never started): its room is free."""
        with self._guard:
            bounds = self._held.pop(key, None)
            for name, _ in bounds or ():
                self._counts[name] -= 1
            self._waiting = [w for w in self._waiting if w.key != key]

    def granted(self) -> list[Key]:
        """Waiting attempts that now fit, in order, their room taken (the caller starts or releases them)."""
        with self._guard:
            out, blocked = [], set()
            for waiting in list(self._waiting):
                names = {name for name, _ in waiting.bounds}
                if names & blocked or not self._has_room(waiting.bounds):
                    blocked |= names
                    continue
                self._take(waiting.key, waiting.bounds)
                self._waiting.remove(waiting)
                out.append(waiting.key)
            return out

    def is_waiting(self, key: Key) -> bool:
        with self._guard:
            return any(w.key == key for w in self._waiting)

    # --- under the guard ----------------------------------------------------------

    def _fits(self, key: Key, since: int, bounds: tuple[Bound, ...]) -> bool:
        if not self._has_room(bounds):
            return False
        names = {name for name, _ in bounds}
        return not any((w.since, w.key) < (since, key) and names & {n for n, _ in w.bounds} for w in self._waiting)

    def _has_room(self, bounds: tuple[Bound, ...]) -> bool:
        return all(self._counts.get(name, 0) < limit for name, limit in bounds)

    def _take(self, key: Key, bounds: tuple[Bound, ...]) -> None:
        self._held[key] = bounds
        for name, _ in bounds:
            self._counts[name] = self._counts.get(name, 0) + 1

    def _blocking(self, bounds: tuple[Bound, ...]) -> str:
        full = [f"{name} (at most {limit})" for name, limit in bounds if self._counts.get(name, 0) >= limit]
        return ", ".join(full) or ", ".join(f"{name} (at most {limit}, earlier attempts first)"
                                            for name, limit in bounds)
