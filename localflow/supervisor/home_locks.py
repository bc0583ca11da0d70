"""Home-wide locks (``lock NAME global:``): who holds each, and who gets it next.

A workflow records ``LockRequested`` (scope ``home``) when it reaches such a lock, and
``LockReleased`` when its body ends; leaving the body any other way (cancelled, failed,
terminated, a race lost) ends the request too (``WorkflowState.live_locks``). The grant
itself, ``LockGranted``, is a world event: only the process holding the executor slot
(``var/supervisor.lock``) records it, so there is one grantor, and it grants from the
requests it has seen, in order of request time (then workflow id, then seq).

The table is rebuilt from the workflow states the executor carries out: ``update`` is
called with each state. No grant is made before the table is ``complete``: the first time
a home-wide request is seen, the executor reads every unfinished workflow of the home
once (``Executor._scan_home_locks``), so a restarted supervisor (or ``lf run``) never hands
out a lock that a workflow it has not read yet still holds. An executor that is no
grantor (``lf terminate``'s) never grants.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from localflow.core.state import WorkflowState


@dataclass(frozen=True)
class Request:
    workflow_id: str
    frame: str
    at: int
    lock: str
    seq: int
    requested_at: int
    granted: bool

    @property
    def order(self) -> tuple:
        return (self.requested_at, self.workflow_id, self.seq)


class HomeLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._by_workflow: dict[str, list[Request]] = {}
        self.complete = False  # every unfinished workflow's requests have been read

    def wanted(self) -> bool:
        """Whether any home-wide request is known (only then is the home read to complete the table)."""
        with self._guard:
            return bool(self._by_workflow)

    def update(self, state: WorkflowState) -> None:
        """Take in a workflow's live home-wide lock requests (none once it is ending or ended)."""
        requests = [Request(state.workflow_id, r.frame, r.at, r.lock, r.seq, r.requested_at, r.granted)
                    for r in state.live_locks() if r.scope == "home"]
        with self._guard:
            if requests:
                self._by_workflow[state.workflow_id] = requests
            else:
                self._by_workflow.pop(state.workflow_id, None)

    def grants(self) -> list[Request]:
        """The requests that may be granted now: per lock, the first in line when nobody holds it."""
        if not self.complete:
            return []
        with self._guard:
            requests = [r for listed in self._by_workflow.values() for r in listed]
        by_lock: dict[str, list[Request]] = {}
        for request in requests:
            by_lock.setdefault(request.lock, []).append(request)
        out = []
        for lock in sorted(by_lock):
            line = sorted(by_lock[lock], key=lambda r: r.order)
            if not any(r.granted for r in line):
                out.append(line[0])
        return out

    def mark_granted(self, request: Request) -> None:
        """Note a grant at once (before the workflow's state is read again): never grant twice."""
        with self._guard:
            listed = self._by_workflow.get(request.workflow_id, [])
            self._by_workflow[request.workflow_id] = [
                Request(r.workflow_id, r.frame, r.at, r.lock, r.seq, r.requested_at, True)
                if (r.frame, r.at) == (request.frame, request.at) else r for r in listed]

    def holders(self) -> dict[str, str]:
        """lock name -> the workflow holding it (for listings and tests)."""
        with self._guard:
            return {r.lock: r.workflow_id for listed in self._by_workflow.values() for r in listed if r.granted}
