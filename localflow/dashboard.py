"""What `lf top` shows, kept up to date cheaply: one model of the whole home, refreshed by hints.

The cost of a refresh is what changed, never the size of var/:

- Every workflow has a listing row (listing.py), loaded once at start from the derived
  summaries (a history is folded only where its summary is stale). A row is read again
  only when a file event (or the periodic rescan) says its history changed: the
  history's (inode, size, mtime) is kept beside the row, so a rescan is one ``stat``
  per workflow and re-reads nothing that did not change.
- Workflows that have not ended are *live*: each has a ``Tail`` (follow.py) that folds
  only the lines appended since it last looked. Their states give the running
  activities, the signal waits and the next timers. A workflow that ends stops being
  live and keeps only its row.
- A frame (``frame(now)``) is computed from memory alone: counts by status, the rows
  of the sections, sorted. It reads no file.

It writes nothing but what listing.row writes (a stale summary, rebuilt).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

from localflow import ir, listing
from localflow.core.timefmt import to_iso
from localflow.engine import Engine
from localflow.errors import LocalFlowError, WorkflowNotFound
from localflow.follow import Tail
from localflow.present import timer_purpose
from localflow.store import summaries
from localflow.timeline import signal_waits

FAILED = ("failed", "cancelled", "terminated", "nondeterministic")
ORDER = ("running", "held", "completed", "failed", "cancelled", "terminated", "nondeterministic")
Stamp = tuple[int, int, int]


@dataclass
class Frame:
    """One picture of the home (``to_json`` is `lf top --once -o json`)."""

    at: int
    total: int
    counts: dict[str, int]
    activities: list[dict[str, Any]] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def iso(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
            return [{k: (to_iso(v) if k in keys and isinstance(v, int) else v) for k, v in r.items()} for r in rows]

        return {"at": to_iso(self.at), "total": self.total, "counts": self.counts,
                "running_activities": iso(self.activities, "started", "scheduled"),
                "signal_waits": iso(self.waits, "timeout_at"),
                "next_timers": iso(self.timers, "fire_at"),
                "recent_failures": self.failures, "problems": self.problems}


class Dashboard:
    def __init__(self, engine: Engine, flow: Union[str, None] = None, limit: int = 10) -> None:
        self.engine = engine
        self.flow = flow
        self.limit = limit
        self.rows: dict[str, dict[str, Any]] = {}
        self.stamps: dict[str, Union[Stamp, None]] = {}
        self.live: dict[str, Tail] = {}
        self.problems: dict[str, str] = {}
        self.reads = 0  # histories (or summaries) read since the start: what a refresh cost

    # --- loading and refreshing ---------------------------------------------------

    def load(self) -> None:
        """Every workflow's row (from the summaries), and a tail for each that has not ended."""
        ids = self.engine.workflow_ids()
        stamps = {i: self._stamp(i) for i in ids}  # before reading: a later append shows as a change
        found, problems = listing.rows(self.engine)
        self.reads += len(ids)
        for row in found:
            self._keep(row["id"], row, stamps.get(row["id"]))
        for problem in problems:
            workflow_id = problem.split(":", 1)[0]
            self.problems[workflow_id] = problem
            self.stamps[workflow_id] = stamps.get(workflow_id)

    def refresh(self, workflow_ids: Iterable[str]) -> set[str]:
        """Re-read the workflows among ``workflow_ids`` whose history changed; returns those."""
        changed = set()
        for workflow_id in workflow_ids:
            if workflow_id in self.live:
                if self._poll(workflow_id):
                    changed.add(workflow_id)
                continue
            stamp = self._stamp(workflow_id)
            if stamp is not None and stamp == self.stamps.get(workflow_id, ()):
                continue
            if stamp is None:  # gone (deleted, pruned) or never a workflow
                self._forget(workflow_id)
                continue
            changed.add(workflow_id)
            self._read_row(workflow_id, stamp)
        return changed

    def poll_live(self) -> set[str]:
        """A ``stat`` of each live history (the events can be dropped; this cannot)."""
        return self.refresh(list(self.live))

    def rescan(self) -> set[str]:
        """Every workflow: new ones, gone ones, changed ones (a stat each for those that did not change)."""
        ids = set(self.engine.workflow_ids())
        for gone in set(self.rows) - ids:
            self._forget(gone)
        return self.refresh(sorted(ids))

    def _poll(self, workflow_id: str) -> bool:
        tail = self.live[workflow_id]
        try:
            fresh = tail.poll()
        except WorkflowNotFound:
            self._forget(workflow_id)
            return True
        except LocalFlowError as exc:
            self.problems[workflow_id] = f"{workflow_id}: {exc}"
            self.live.pop(workflow_id, None)
            return True
        if not fresh:
            return False
        self.reads += 1
        self._keep(workflow_id, listing.row_of(tail.state), tail.cursor and (tail.cursor.inode, tail.cursor.size,
                                                                              tail.cursor.mtime_ns), tail)
        return True

    def _read_row(self, workflow_id: str, stamp: Stamp) -> None:
        self.reads += 1
        try:
            cached = summaries.read(self.engine.paths.var_dir, self.engine.paths.history(workflow_id))
            self._keep(workflow_id, listing.row(self.engine, workflow_id, cached), stamp)
            self.problems.pop(workflow_id, None)
        except WorkflowNotFound:
            self._forget(workflow_id)
        except LocalFlowError as exc:
            self.problems[workflow_id] = f"{workflow_id}: {exc}"
            self.stamps[workflow_id] = stamp

    def _keep(self, workflow_id: str, row: dict[str, Any], stamp: Union[Stamp, None],
              tail: Union[Tail, None] = None) -> None:
        self.rows[workflow_id] = row
        self.stamps[workflow_id] = stamp
        if row["status"] != "running":  # ended, held (imported) or nondeterministic: nothing of it moves
            self.live.pop(workflow_id, None)
        elif workflow_id not in self.live:
            tail = tail or Tail(self.engine, workflow_id)
            self.live[workflow_id] = tail
            if tail.cursor is None:
                self._poll(workflow_id)

    def _forget(self, workflow_id: str) -> None:
        for table in (self.rows, self.stamps, self.live, self.problems):
            table.pop(workflow_id, None)

    def _stamp(self, workflow_id: str) -> Union[Stamp, None]:
        try:
            info = os.stat(self.engine.paths.history(workflow_id), follow_symlinks=False)
        except (OSError, ValueError):
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    # --- the picture -----------------------------------------------------------------

    def frame(self, now: int) -> Frame:
        """What the dashboard shows at ``now`` (epoch ms), from memory only."""
        rows = [r for r in self.rows.values() if self.flow is None or r["flow"] == self.flow]
        counted = Counter(r["status"] for r in rows)
        counts = {s: counted.get(s, 0) for s in ORDER} | {s: n for s, n in counted.items() if s not in ORDER}
        frame = Frame(now, len(rows), counts, problems=sorted(self.problems.values())[: self.limit])
        for workflow_id, tail in self.live.items():
            state = tail.state
            if state is None or (self.flow is not None and state.flow.name != self.flow):
                continue
            for step, attempt in state.pending_attempts():
                begun = attempt.started_at if attempt.started_at is not None else attempt.scheduled_at
                frame.activities.append({
                    "id": workflow_id, "step": step, "attempt": attempt.number,
                    "status": "running" if attempt.started_at is not None else (
                        "queued" if attempt.queued_at is not None else "scheduled"),
                    "started": begun, "elapsed_ms": max(now - begun, 0), "pid": attempt.pid})
            for wait in signal_waits(state):
                frame.waits.append({"id": workflow_id, "step": wait.step, "label": wait.label or wait.step,
                                    "signal": wait.signal,
                                    "kind": wait.kind, "timeout_at": wait.timeout_at})
            for timer in state.pending_timers():
                if state.timer_wanted(timer):
                    frame.timers.append({"id": workflow_id, "step": timer.step,
                                         "label": ir.statement_name(state.flow, timer.step),
                                         "purpose": timer.purpose, "purpose_text": timer_purpose(timer.purpose),
                                         "fire_at": timer.fire_at, "in_ms": timer.fire_at - now})
        frame.activities.sort(key=lambda a: -a["elapsed_ms"])
        frame.timers.sort(key=lambda t: t["fire_at"])
        frame.waits.sort(key=lambda w: (w["id"], w["step"]))
        failed = [r for r in rows if r["status"] in FAILED]
        failed.sort(key=lambda r: (r.get("ended") or r["updated"], r["id"]), reverse=True)
        frame.failures = [{"id": r["id"], "flow": r["flow"], "status": r["status"],
                           "ended": r.get("ended") or r["updated"], "error": r.get("error")}
                          for r in failed[: self.limit]]
        return frame
