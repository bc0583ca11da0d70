"""The documented Python API of LocalFlow (docs/api.md): what `lf` itself calls.

``Client(home)`` owns the user-facing verbs on workflows: start, resolve a short id,
get, list and count (from the listing's cached summaries, never folding every
history), wait for a result, signal, cancel, terminate, read the history, delete
and prune. It also owns the small parsers the CLI shares: ``find_home``,
``parse_age`` and ``parse_when``.

It never decides anything about a workflow (the engine does) and keeps no state of
its own: every answer is read from var/. It must stay cheap to import (the CLI
imports it at start-up): no rich, no watchdog, no supervisor at module level.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Union

from localflow import listing
from localflow.core import events as ev
from localflow.core.state import NONDETERMINISTIC, TERMINAL, WorkflowState
from localflow.core.timefmt import to_iso
from localflow.engine import Engine
from localflow.errors import (AmbiguousWorkflowId, InputError, InvalidWorkflowId, LocalFlowError, SupervisorRunning,
                              UnsafePath, WaitTimedOut, WorkflowFailed, WorkflowFinished, WorkflowNotFound,
                              WorkflowStillRunning)
from localflow.store import locks, safe, summaries
from localflow.store.atomic import storage_error
from localflow.store.creation import STAGING_PREFIX
from localflow.store.paths import validate_workflow_id
from localflow.store import timers as timer_store

__all__ = ["Client", "Page", "WorkflowInfo", "find_home", "parse_age", "parse_when", "STATUSES", "ENDED"]

STATUSES = ("running", "held", "completed", "failed", "cancelled", "terminated", "nondeterministic")
ENDED = TERMINAL  # completed, failed, cancelled, terminated
LAST = "@last"
MIN_TAIL = 4  # a random tail matches from this many characters on
POLL_S = 1.0  # result(wait=True): the slow poll behind the file events
SETTLE_S = 30.0  # delete: how long the supervisor may take to stop a terminated workflow's work
_TAIL_RE = re.compile(r"-\d{8}-\d{6}-([0-9a-f]{6})$")  # FLOW-20261129-214603-4467ab (Engine.new_id)


# --- the home, ages and times --------------------------------------------------------


def find_home(start: Union[str, os.PathLike]) -> Path:
    """The nearest folder at or above ``start`` holding ``flows/`` or LocalFlow's ``var/`` (as git
    finds ``.git``); ``start`` itself if none does.

    A ``var/`` counts only with ``var/workflows/`` in it: every Unix system has a ``/var``, and
    many projects a ``var/`` of their own, which are no LocalFlow homes.
    """
    start = Path(start).absolute()
    for folder in (start, *start.parents):
        if (folder / "flows").is_dir() or (folder / "var" / "workflows").is_dir():
            return folder
    return start


_AGE_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_AGE_RE = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_age(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` (or a sum such as ``"1d12h"``) as a timedelta."""
    cleaned = str(text).strip().lower()
    parts = _AGE_RE.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise InputError(f"invalid age {text!r}: write a number and a unit, w d h m or s (7d, 12h, 30m, 1d12h)")
    try:
        return timedelta(seconds=sum(float(n) * _AGE_UNITS[u] for n, u in parts))
    except (OverflowError, ValueError):
        raise InputError(f"age {text!r} is too long: at most {timedelta.max.days} days") from None


def parse_when(text: str, now: Union[int, None] = None) -> int:
    """A moment as epoch ms: an ISO date or date-time (UTC unless it gives an offset), ``now``, or
    an age such as ``"2h"`` meaning that long before ``now`` (epoch ms; default: the clock)."""
    now = int(time.time() * 1000) if now is None else now
    cleaned = str(text).strip()
    if cleaned.lower() == "now":
        return now
    if cleaned and cleaned[0].isdigit() and _AGE_RE.match(cleaned.lower()) and not re.match(r"\d{4}-", cleaned):
        return max(0, now - int(parse_age(cleaned).total_seconds() * 1000))  # longer ago than 1970: 1970
    try:
        moment = datetime.fromisoformat(cleaned[:-1] + "+00:00" if cleaned.endswith(("Z", "z")) else cleaned)
    except ValueError:
        raise InputError(f"invalid time {text!r}: write an ISO date or time (2026-11-29, 2026-11-29T21:46:03Z, "
                         "2026-11-29T22:46+01:00; UTC unless an offset is given) or an age (2h: two hours ago)"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return _clamped(int(round(moment.timestamp() * 1000)))


_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last moment an ISO time can name


def _clamped(ms: int) -> int:
    """A moment within what histories can hold (1970 to 9999): a filter past either end selects the same."""
    return min(max(ms, 0), _LAST_MS)


def _ms(value: Union[datetime, int, None], what: str) -> Union[int, None]:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        return int(round((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000))
    raise InputError(f"{what}: expected a datetime or epoch milliseconds, got {value!r}")


def _when(ms: Union[int, None]) -> Union[datetime, None]:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# --- what the API returns --------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowInfo:
    """One workflow as it is now (``Client.get``)."""

    id: str
    flow: str
    status: str  # running | held | completed | failed | cancelled | terminated | nondeterministic
    step: Union[str, None]  # what it is doing now, in one line (None once it ended)
    started: datetime
    updated: datetime
    ended: Union[datetime, None]
    error: Union[str, None]
    parent: Union[str, None]
    input: dict
    result: Any
    waiting_for: list  # signal names it waits for now
    steps: list = field(default_factory=list)  # what it is doing now, one entry per statement at work
    _row: dict = field(repr=False, compare=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The `lf list --json` row, plus parent, input, result and waiting_for."""
        return {**self._row, "parent": self.parent, "input": self.input, "result": self.result,
                "waiting_for": list(self.waiting_for)}


@dataclass(frozen=True)
class Page:
    """A page of listing rows (newest first), how many matched in all, and the workflows that
    could not be read (one line each)."""

    rows: list
    total: int
    problems: list


def waiting_for(state: WorkflowState) -> list[str]:
    """The signal names ``state`` waits for now: `wait signal` steps, signal loops still open,
    `on signal` handlers of blocks still running (``core.state.signal_waits``)."""
    from localflow.core.state import signal_waits

    return list(dict.fromkeys(wait.signal for wait in signal_waits(state)))


def _failure(state: WorkflowState) -> dict[str, Any]:
    if state.status == NONDETERMINISTIC:
        return {"kind": "nondeterminism", "message": f"nondeterministic at seq {(state.divergence or {}).get('at')}"}
    error = dict(state.error or {}) if isinstance(state.error, dict) else {"message": str(state.error or "")}
    error.setdefault("message", state.status)
    return error


def _ended(state: WorkflowState) -> bool:
    return state.terminal or state.status == NONDETERMINISTIC


def _settled(state: WorkflowState) -> bool:
    """Ended, and nothing of it still needs doing (an attempt to stop, a child's end to record)."""
    return state.terminal and not state.pending_attempts() and not state.pending_children()


# --- the client ----------------------------------------------------------------------


class Client:
    """The verbs of `lf` on the workflows of one LocalFlow home (docs/api.md)."""

    def __init__(self, home: Union[str, os.PathLike, None] = None) -> None:
        if home is None:
            home = find_home(Path(os.getcwd()))
        elif not Path(home).is_dir():
            raise InputError(f"no LocalFlow home at {home}: no such folder")
        self.engine = Engine(home)
        self.home: Path = self.engine.paths.home

    # --- ids ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The full id ``ref`` stands for: the exact id; ``@last`` (the newest started workflow that
        is not a child); a unique id prefix; a unique random tail (4+ characters)."""
        if ref == LAST:
            rows = listing.rows(self.engine)[0]
            known = {r["id"] for r in rows}
            rows = [r for r in rows if not (r["parent"] if "parent" in r else self._is_child_id(r["id"], known))]
            if not rows:
                raise WorkflowNotFound(LAST)
            return rows[0]["id"]
        if not isinstance(ref, str) or not ref or not ref.isprintable() or "/" in ref:
            raise InvalidWorkflowId(str(ref))
        validate_workflow_id(ref)
        if self._exists(ref):
            return ref
        ids = self.engine.workflow_ids()
        matches = [i for i in ids if i.startswith(ref)]
        root = min(matches, key=len) if matches else None
        if root is not None and all(m == root or m.startswith(root + ".") for m in matches):
            return root  # one workflow, or one and its children: the parent
        if not matches and len(ref) >= MIN_TAIL:
            matches = [i for i in ids if (m := _TAIL_RE.search(i)) and m.group(1).startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        if not matches:
            raise WorkflowNotFound(ref)
        raise AmbiguousWorkflowId(ref, self._newest_first(matches))

    def _exists(self, workflow_id: str) -> bool:
        """Does var/workflows/ hold that workflow: a history.jsonl entry in its folder, whatever it is (a
        damaged or planted one is still that workflow, for the command to report as it finds it)?"""
        try:
            os.lstat(self.engine.paths.history(workflow_id))
            return True
        except (OSError, ValueError):
            return False

    def _is_child_id(self, workflow_id: str, known: Union[set, None] = None) -> bool:
        """Does ``workflow_id`` look like ``<an existing workflow>.<step>``? (ids alone, no read)"""
        parts = workflow_id.split(".")
        return any((f in known) if known is not None else self._exists(f)
                   for f in (".".join(parts[:n]) for n in range(1, len(parts))))

    def _newest_first(self, ids: list[str]) -> list[str]:
        cached = summaries.read_many(self.engine.paths.var_dir, self.engine.paths.workflows_dir, ids)
        started = {}
        for workflow_id in ids:
            try:
                started[workflow_id] = listing.row(self.engine, workflow_id, cached[workflow_id])["started"]
            except LocalFlowError:
                started[workflow_id] = ""
        return sorted(ids, key=lambda i: (started[i], i), reverse=True)

    # --- start and read --------------------------------------------------------------

    def start(self, flow: str, input: Union[dict, None] = None, *, id: Union[str, None] = None) -> str:  # noqa: A002
        """Start a workflow of ``flow`` (a name in flows/, or a path to a .flow file); returns its id.
        A supervisor (`lf supervise`) runs it."""
        return self.engine.start(flow, dict(input or {}), id)

    def get(self, ref: str) -> WorkflowInfo:
        state = self.engine.load(self.resolve(ref)).state
        row = listing.row_of(state)
        parent = state.parent.get("workflow_id") if isinstance(state.parent, dict) else None
        steps = list(row.get("current_steps") or ())
        return WorkflowInfo(
            id=state.workflow_id, flow=state.flow.name, status=row["status"], step=", ".join(steps) or None,
            started=_when(state.started_at), updated=_when(state.updated_at), ended=_when(state.ended_at),
            error=row["error"], parent=parent, input=dict(state.input), result=state.result,
            waiting_for=waiting_for(state), steps=steps, _row=row)

    def history(self, ref: str) -> list[dict]:
        """The history's event records, oldest first (as `lf history --json` prints them)."""
        return [ev.to_record(e) for e in self.engine.load(self.resolve(ref)).events]

    def list(self, *, status: Union[str, Iterable[str], None] = None, flow: Union[str, None] = None,
             parent: Union[str, None] = None, since: Union[datetime, int, None] = None,
             until: Union[datetime, int, None] = None, limit: Union[int, None] = 50, offset: int = 0) -> Page:
        """Listing rows newest first, filtered (``since <= started < until``), then cut to
        ``offset``/``limit`` (``limit`` None or 0: all); ``total`` counts the matches before the cut."""
        if limit is not None and limit < 0 or offset < 0:
            raise InputError("limit and offset must not be negative")
        found, problems = self._rows(status, flow, parent, since, until)
        end = None if not limit else offset + limit
        return Page(found[offset:end], len(found), problems)

    def count(self, *, by: Union[str, None] = None, status: Union[str, Iterable[str], None] = None,
              flow: Union[str, None] = None, parent: Union[str, None] = None,
              since: Union[datetime, int, None] = None, until: Union[datetime, int, None] = None
              ) -> Union[int, dict]:
        """How many workflows match (the filters of ``list``); with ``by`` ("status" or "flow"),
        a count per value, largest first."""
        if by not in (None, "status", "flow"):
            raise InputError(f"count by {by!r}: count by status or by flow")
        found, _ = self._rows(status, flow, parent, since, until)
        if by is None:
            return len(found)
        counts: dict[str, int] = {}
        for row in found:
            counts[row[by]] = counts.get(row[by], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def _rows(self, status, flow, parent, since, until) -> tuple[list[dict], list[str]]:
        statuses = {status} if isinstance(status, str) else set(status or ())
        unknown = statuses - set(STATUSES)
        if unknown:
            raise InputError(f"unknown status {', '.join(sorted(unknown))}: use {', '.join(STATUSES)}")
        low, high = (None if m is None else _clamped(m) for m in (_ms(since, "since"), _ms(until, "until")))
        low_iso = to_iso(low) if low is not None else None
        high_iso = to_iso(high) if high is not None else None
        found, problems = listing.rows(self.engine)
        # rows' ISO times share one fixed format, so they compare as text (no parsing of 3,000 rows)
        found = [r for r in found if (not statuses or r["status"] in statuses)
                 and (flow is None or r["flow"] == flow)
                 and (low_iso is None or r["started"] >= low_iso) and (high_iso is None or r["started"] < high_iso)]
        if parent is not None:
            parent_id = self.resolve(parent)
            found = [r for r in found if self._row_parent(r) == parent_id]
        return found, problems

    def _row_parent(self, row: dict) -> Union[str, None]:
        """A row's parent id (rows carry it; one of an older shape is read, if its id could be a child's)."""
        if "parent" in row:
            return row["parent"]
        return self._parent_of(row["id"]) if "." in row["id"] else None

    def _parent_of(self, workflow_id: str) -> Union[str, None]:
        try:
            state = self.engine.state_of(workflow_id)
        except LocalFlowError:
            return None
        return state.parent.get("workflow_id") if isinstance(state.parent, dict) else None

    # --- results -------------------------------------------------------------------------

    def result(self, ref: str, *, wait: bool = False, timeout: Union[float, None] = None) -> Any:
        """A completed workflow's result. WorkflowFailed if it ended otherwise; if it runs,
        WorkflowStillRunning, or with ``wait`` block until it ends (WaitTimedOut after ``timeout`` s)."""
        workflow_id = self.resolve(ref)
        state = self.engine.state_of(workflow_id)
        if not _ended(state):
            if not wait:
                raise WorkflowStillRunning(workflow_id, "held" if state.held else state.status)
            state = self._wait_end(workflow_id, timeout)
        if state.status == "completed":
            return state.result
        raise WorkflowFailed(workflow_id, state.status, _failure(state))

    def _wait_end(self, workflow_id: str, timeout: Union[float, None]) -> WorkflowState:
        """Block until the workflow ends: woken by file events on its folder, polled every POLL_S."""
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = threading.Event()
        observer = _watch(self.engine.paths.workflow_dir(workflow_id), changed.set)
        try:
            while True:
                state = self.engine.state_of(workflow_id)
                if _ended(state):
                    return state
                left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
                if left <= 0:
                    raise WaitTimedOut(workflow_id, timeout, "held" if state.held else state.status)
                changed.wait(left)
                changed.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=1)

    # --- requests --------------------------------------------------------------------------

    def signal(self, ref: str, name: str, data: Any = None) -> bool:
        """Record signal ``name`` (with ``data``); True if a waiting step took it at once, False if it
        is buffered until one waits for it."""
        tx = self.engine.signal(self.resolve(ref), name, data)
        return any(isinstance(e, (ev.SignalConsumed, ev.SignalTaken)) or (isinstance(e, ev.LoopClosed) and e.signal_seq)
                   for e in tx.appended)

    def cancel(self, ref: str, reason: str = "cancelled by the user") -> bool:
        """Ask the workflow to stop (compensations run, it ends cancelled); False if already asked."""
        return bool(self.engine.cancel(self.resolve(ref), reason).appended)

    def terminate(self, ref: str, reason: str = "terminated by the user") -> list[str]:
        """End the workflow now, terminated, with its running attached children; returns the ids
        terminated. Without a supervisor this process kills the running attempts itself."""
        workflow_id = self.resolve(ref)
        self.engine.terminate(workflow_id, reason)
        done = self._with_executor(lambda executor: self._reconcile_tree(executor, workflow_id)) or [workflow_id]
        return [w for w in done if self._status(w) == "terminated"]

    def _with_executor(self, work: Callable[[Any], list]) -> Union[list, None]:
        """Run ``work(executor)`` holding the executor slot, if no supervisor holds it (then None:
        the supervisor does the work, woken by the history's change)."""
        from localflow.supervisor.executor import Executor
        from localflow.supervisor.service import ExecutorSlot

        slot = ExecutorSlot(self.engine, "lf (localflow.client)")
        try:
            slot.acquire()
        except SupervisorRunning:
            return None
        executor = Executor(self.engine, lock_grantor=False)  # it only ends workflows: grants no home-wide lock
        try:
            return work(executor)
        finally:
            executor.stop()
            slot.release()

    def _reconcile_tree(self, executor: Any, workflow_id: str) -> list[str]:
        """Reconcile a workflow, then each running attached child depth first, then record each child's
        end in its parent (what `lf terminate` does when no supervisor runs)."""
        order, todo = [], [workflow_id]
        while todo:
            wid = todo.pop()
            order.append(wid)
            state = executor.reconcile(wid)
            todo.extend(s.child_id for s in state.steps.values()
                        if s.kind == "child" and not s.detached and s.child_id and s.child_id not in order
                        and self._exists(s.child_id))
        for wid in reversed(order):
            executor.reconcile(wid)
        return order

    def _status(self, workflow_id: str) -> Union[str, None]:
        try:
            return self.engine.state_of(workflow_id).status
        except LocalFlowError:
            return None

    # --- delete and prune -------------------------------------------------------------------

    def delete(self, ref: str, *, force: bool = False) -> list[str]:
        """Delete an ended workflow and its attached children (detached children stay); returns the ids
        deleted, children first. A workflow still running is refused unless ``force``, which terminates
        it first. An attached child whose parent still runs is refused: its parent would miss it."""
        workflow_id = self.resolve(ref)
        tree = self._tree(workflow_id)
        self._refuse_running_parent(workflow_id)
        running = [w for w, s in tree if s is not None and not s.terminal]
        if running and not force:
            raise WorkflowStillRunning(running[0], self._status(running[0]) or "running",
                                       "use --force to terminate it and delete it (from Python: force=True)")
        for wid in running:  # the first terminates its own running children too
            if self._status(wid) not in ENDED:
                try:
                    self.terminate(wid, "terminated to be deleted")
                except (WorkflowFinished, WorkflowNotFound):
                    pass  # it ended, or went, meanwhile
        self._settle([w for w, s in tree if s is not None])
        deleted = []
        for wid, _ in reversed(tree):  # children first: a crash half-way never leaves a child without its parent
            if self._remove(wid):
                deleted.append(wid)
        return deleted

    def prune(self, *, status: Union[str, Iterable[str]] = ("completed",),
              older_than: Union[timedelta, float], dry_run: bool = False) -> list[str]:
        """Delete the ended workflows of ``status`` that ended more than ``older_than`` ago (a timedelta,
        or seconds), each with its attached children; returns the ids deleted (with ``dry_run``: the
        ids that would be). A workflow that refuses (it runs, it is a child of one that runs) is skipped."""
        statuses = {status} if isinstance(status, str) else set(status)
        if not statuses or not statuses <= set(ENDED):
            raise InputError(f"prune deletes ended workflows only: status must be among {', '.join(ENDED)}")
        age = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
        if age < 0:
            raise InputError("older_than must not be negative")
        cutoff = to_iso(_clamped(int(time.time() * 1000) - int(min(age, _LAST_MS / 1000) * 1000)))
        rows, _ = listing.rows(self.engine)
        known = {r["id"] for r in rows}
        chosen = [r["id"] for r in reversed(rows) if r["status"] in statuses and r["ended"] and r["ended"] < cutoff]
        gone: list[str] = []
        for workflow_id in chosen:
            if workflow_id in gone or (self._is_child_id(workflow_id, known) and self._attached_child(workflow_id)):
                continue  # a child goes with its parent
            try:
                if dry_run:
                    tree = self._tree(workflow_id)
                    if all(s is None or s.terminal for _, s in tree):
                        gone += [w for w, _ in reversed(tree)]
                else:
                    gone += self.delete(workflow_id)
            except LocalFlowError:
                continue
        return gone

    def _attached_child(self, workflow_id: str) -> bool:
        try:
            parent = self.engine.state_of(workflow_id).parent
        except LocalFlowError:
            return False
        return isinstance(parent, dict) and not parent.get("detached") and self._exists(parent["workflow_id"])

    def _tree(self, workflow_id: str) -> list[tuple[str, Union[WorkflowState, None]]]:
        """The workflow and its attached descendants, parents before children, each with its state
        (None: a history that cannot be read; deleted all the same, it runs nowhere)."""
        found: list[tuple[str, Union[WorkflowState, None]]] = []
        todo, seen = [workflow_id], set()
        while todo:
            wid = todo.pop(0)
            if wid in seen or not self._exists(wid):
                continue
            seen.add(wid)
            try:
                state = self.engine.state_of(wid)
            except WorkflowNotFound:
                continue
            except LocalFlowError:
                state = None
            found.append((wid, state))
            if state is not None:
                todo += [s.child_id for s in state.steps.values() if s.kind == "child" and not s.detached and s.child_id]
        return found

    def _refuse_running_parent(self, workflow_id: str) -> None:
        try:
            parent = self.engine.state_of(workflow_id).parent
        except LocalFlowError:
            return
        if not isinstance(parent, dict) or parent.get("detached"):
            return
        parent_id = parent.get("workflow_id")
        try:
            parent_state = self.engine.state_of(parent_id)
        except LocalFlowError:
            return  # gone (or unreadable): nothing waits for this child
        if not _settled(parent_state):
            raise WorkflowStillRunning(parent_id, parent_state.status,
                                       f"{workflow_id} is its child: delete or terminate {parent_id} instead")

    def _settle(self, ids: list[str]) -> None:
        """Wait until each ended workflow has nothing left to do (its attempts stopped and recorded, its
        children's ends recorded): done here when no supervisor runs, else by the supervisor."""
        def unsettled() -> list[str]:
            return [w for w in ids if self._exists(w) and not _settled(self.engine.state_of(w))]

        if not unsettled():
            return
        self._with_executor(lambda executor: [executor.reconcile(w) for w in reversed(unsettled())])
        deadline = time.monotonic() + SETTLE_S
        while (left := unsettled()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            raise WorkflowStillRunning(left[0], "stopping", f"its running work has not stopped after {SETTLE_S:g}s; "
                                                            "try again once it has")

    def _remove(self, workflow_id: str) -> bool:
        """Take one ended workflow out of var/: under its lock, rename its folder out of sight (a
        staging name no reader takes for a workflow, swept at the next supervisor start if this
        process dies), then remove it and its timer markers. No symlink is followed."""
        paths = self.engine.paths
        aside = f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with safe.directory(paths.var_dir, paths.workflows_dir) as parent_fd:
                try:
                    mode = os.stat(workflow_id, dir_fd=parent_fd, follow_symlinks=False).st_mode
                except FileNotFoundError:
                    return False
                if not stat.S_ISDIR(mode):
                    raise UnsafePath(str(paths.workflow_dir(workflow_id)),
                                     "it is a symlink" if stat.S_ISLNK(mode) else "it is not a directory")
                with locks.hold(paths.lock(workflow_id), anchor=paths.var_dir):
                    try:  # under the lock nothing appends: is it still ended and settled?
                        state = self.engine.state_of(workflow_id)
                        if not _settled(state):
                            raise WorkflowStillRunning(workflow_id, state.status, "it was resumed or changed meanwhile")
                    except WorkflowNotFound:
                        return False
                    except (WorkflowStillRunning, UnsafePath):
                        raise
                    except LocalFlowError:
                        pass  # an unreadable history: deleted as asked
                    os.rename(workflow_id, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
                    os.fsync(parent_fd)
                if sys.version_info >= (3, 11):
                    shutil.rmtree(aside, dir_fd=parent_fd, ignore_errors=True)
                else:  # (on Linux rmtree works from descriptors and never follows a symlink inside)
                    shutil.rmtree(paths.workflows_dir / aside, ignore_errors=True)
        except WorkflowNotFound:
            return False
        except OSError as exc:
            raise storage_error("delete workflow", paths.workflow_dir(workflow_id), exc) from None
        for marker in timer_store.list_markers(paths):
            if marker.workflow_id == workflow_id:
                timer_store.remove_marker(paths, marker)
        return True


def _watch(directory: Path, on_change: Callable[[], None]) -> Any:
    """A watchdog observer calling ``on_change`` on any file event in ``directory``, or None when one
    cannot be started (the caller polls)."""
    try:
        from watchdog.events import (DirDeletedEvent, FileClosedEvent, FileCreatedEvent, FileDeletedEvent,
                                     FileMovedEvent, FileSystemEventHandler)
        from watchdog.observers import Observer
    except ImportError:
        return None

    class _Changed(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:  # a hint only: the caller re-reads the history
            on_change()

    from localflow.follow import quiet_watchdog

    quiet_watchdog()
    observer = Observer()
    try:
        # writes end with a close; renames and deletions too. Not opens or read-only closes: the
        # caller's own reads would wake it again at once.
        observer.schedule(_Changed(), str(directory), recursive=False,
                          event_filter=[FileClosedEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent,
                                        DirDeletedEvent])
        observer.daemon = True
        observer.start()
    except Exception:  # noqa: BLE001 - out of inotify watches, a vanished folder: poll instead
        return None
    return observer
