"""The shell around the pure core: lock -> read -> fold -> decide -> append.

``Engine`` is the only writer of histories. ``start`` creates a workflow;
``transact`` records world events (an activity's outcome, a fired timer) and the
decisions that follow them in one locked, fsynced batch. Carrying decisions out
(processes, timer markers) is the executor's job (supervisor/executor.py), and
happens only after the batch is durable.

The clock is injected (``clock()`` returns epoch ms) so tests can pass their own.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterable, Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.replay import replay
from localflow.core.inputs import resolve_input
from localflow.core.state import FoldError, WorkflowState, evolve, fold, initial, repinned
from localflow.errors import (FlowNotFound, HistoryCorruptError, InputError, NondeterminismError, WorkflowFinished,
                              WorkflowNotFound)
from localflow.core import secrets
from localflow.core.jsonvalue import check_value
from localflow.store import codec
from localflow.store.base import Chunk, Cursor, HistoryStore
from localflow.store.files import FileStore
from localflow.store.atomic import ensure_dir
from localflow.store.paths import Paths, validate_workflow_id

Clock = Callable[[], int]
WorldFn = Callable[[WorkflowState], Iterable[ev.Event]]
_FLOW_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIGNAL_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def system_clock() -> int:
    return int(time.time() * 1000)


@dataclass
class Loaded:
    """A workflow as read: its events and the state they fold to."""

    events: list[ev.Event]
    state: WorkflowState
    size: int = 0  # bytes of the valid prefix the state was folded from


@dataclass
class Transaction:
    state: WorkflowState
    appended: list[ev.Event]


@dataclass
class _Folded:
    """A workflow's state as of a valid prefix of its history (this process's cache)."""

    cursor: Cursor
    state: WorkflowState


_CACHE_LIMIT = 4096


class Engine:
    def __init__(self, home: Union[str, Path], clock: Clock = system_clock,
                 store: Union[HistoryStore, None] = None) -> None:
        self.paths = Paths.at(home)
        self.clock = clock
        self.store = store if store is not None else FileStore(self.paths)
        # Whatever executes workflows sets this: each history is then replayed (every decision
        # checked against its flow) once per process before anything more is decided for it.
        self.verify = False
        self._verified: set[str] = set()
        # Where each history stood when this process last transacted on it (not merely read
        # it: a read carries nothing out), for stat-only checks of "did anything change?".
        self._transacted: dict[str, Cursor] = {}
        # A long-lived process (supervisor, lf run) folds each history once and then only
        # what was appended since: histories are append-only, so a valid prefix never changes.
        self._folded: dict[str, _Folded] = {}

    # --- layout and flows ---------------------------------------------------

    def ensure_layout(self) -> None:
        ensure_dir(self.paths.var_dir)
        for directory in (self.paths.workflows_dir, self.paths.timers_dir):
            ensure_dir(directory, self.paths.var_dir)
        try:
            os.chmod(self.paths.var_dir, 0o700)
        except OSError:
            pass

    def flow_files(self) -> list[Path]:
        """Flow files: flows/*.flow, then flows/<folder>/*.flow (e.g. flows/examples/)."""
        root = self.paths.flows_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*.flow") if p.is_file()) + sorted(
            p for p in root.glob("*/*.flow") if p.is_file())

    def flow_names(self) -> list[str]:
        return sorted({p.stem for p in self.flow_files()})

    def find_flow(self, name: str, allow_path: bool = True) -> Path:
        """The file of a flow: a path to a .flow file, or a name found in flows/ or one folder below.

        A path is accepted only from the user's own command line (``allow_path``); data such
        as a drop-folder request names a flow, never a file.
        """
        if not allow_path and not _FLOW_NAME_RE.fullmatch(name or ""):
            raise FlowNotFound(name, self.display(self.paths.flows_dir), self.flow_names(),
                               "a request names a flow, not a path")
        if name.endswith(".flow") or "/" in name:
            for candidate in (Path(name), self.paths.home / name):
                if _is_file(candidate):
                    return candidate.absolute()
            raise FlowNotFound(name, self.display(self.paths.flows_dir), self.flow_names())
        if _FLOW_NAME_RE.fullmatch(name or ""):
            top = self.paths.flow_file(name)
            if _is_file(top):
                return top
            found = [p for p in self.flow_files() if p.stem == name]
            if len(found) > 1:
                places = ", ".join(self.display(p) for p in found)
                raise FlowNotFound(name, self.display(self.paths.flows_dir),
                                   [f"{name} is ambiguous: {places}; pass the path"])
            if found:
                return found[0]
        raise FlowNotFound(name, self.display(self.paths.flows_dir), self.flow_names())

    def load_flow(self, name: str, allow_path: bool = True) -> tuple[ir.Flow, str]:
        """Parse a flow (see ``find_flow``); returns the flow and its exact source text."""
        path = self.find_flow(name, allow_path)
        from localflow import dsl  # the parser only where a flow is read (cheap read commands)

        return dsl.read_flow_file(path, self.display(path))

    def display(self, path: Path) -> str:
        """A path as users see it: relative to the home when inside it."""
        try:
            return str(path.relative_to(self.paths.home))
        except ValueError:
            return str(path)

    # --- reading ------------------------------------------------------------

    def workflow_ids(self) -> list[str]:
        """Every started workflow, sorted by id."""
        return self.store.workflow_ids()

    def load(self, workflow_id: str) -> Loaded:
        """Read and fold a whole history (one-shot commands)."""
        chunk = self.store.read(workflow_id)
        return self._fold(workflow_id, chunk.records, chunk.cursor.size)

    def _fold(self, workflow_id: str, records: list[dict], size: int) -> Loaded:
        events: list[ev.Event] = []
        state = None
        try:
            flow = repinned(records)  # `lf resume --flow` pinned another definition for all of it
        except (FoldError, ValueError, KeyError, TypeError) as exc:
            raise HistoryCorruptError(self._where(workflow_id), 0, f"a re-pinned flow cannot be read: {exc}") from None
        for record in records:  # one at a time, so an error names the line that caused it
            try:
                event = ev.from_record(record)
                if state is None and not isinstance(event, ev.WorkflowStarted):
                    raise FoldError("a history must begin with WorkflowStarted")
                state = evolve(state, event) if state is not None else initial(event, flow)
            except (FoldError, ValueError) as exc:
                raise HistoryCorruptError(self._where(workflow_id), record["seq"], str(exc)) from None
            except _MALFORMED as exc:  # a hand-edited line with a recomputed crc: a pinned flow that is no flow
                raise HistoryCorruptError(self._where(workflow_id), record["seq"], _malformed(exc)) from None
            events.append(event)
        assert state is not None  # a read never returns an empty history
        return Loaded(events, state, size)

    def _where(self, workflow_id: str) -> str:
        return str(self.paths.history(workflow_id)) if isinstance(self.store, FileStore) else f"<{workflow_id}>"

    # --- writing ------------------------------------------------------------

    def new_id(self, flow_name: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.clock() / 1000))
        return f"{flow_name[:80]}-{stamp}-{os.urandom(3).hex()}"

    def start(self, flow_name: str, given: dict, workflow_id: Union[str, None] = None,
              parent: Union[dict, None] = None, request: Union[dict, None] = None,
              allow_path: bool = True) -> str:
        """Create a workflow of ``flow_name`` with ``given`` input; returns its id.

        ``parent`` (``{"workflow_id", "step"}``) links a child flow to the step that started it;
        ``request`` records the drop-folder request that asked for it. With ``allow_path``
        false, ``flow_name`` must be a flow *name* found in flows/ (never a path).
        """
        flow, source = self.load_flow(flow_name, allow_path)
        return self.start_flow(flow, source, given, workflow_id, parent, request)

    def start_flow(self, flow: ir.Flow, source: str, given: dict, workflow_id: Union[str, None] = None,
                   parent: Union[dict, None] = None, request: Union[dict, None] = None) -> str:
        """Create a workflow of a parsed ``flow`` (``source`` is the text it was parsed from).

        A flow step that starts its child detached has nobody to report to if the child's flow
        is missing: such flows must exist now (InputError), where an attached child would
        fail its step later.
        """
        for stmt in ir.walk(flow.body):
            if isinstance(stmt, ir.ChildFlow) and stmt.detached:
                try:
                    self.find_flow(stmt.flow, allow_path=False)
                except FlowNotFound as exc:
                    raise InputError(f"step '{stmt.name}' (line {stmt.line}) starts flow {stmt.flow} detached, "
                                     f"and it could never be started: {exc}") from None
        values = check_value(resolve_input(flow, check_value(given, "the input")), "the input")
        secrets.refuse_references(values, "the input")
        workflow_id = validate_workflow_id(workflow_id) if workflow_id else self.new_id(flow.name)
        started = ev.WorkflowStarted(
            seq=1,
            ts=self.clock(),
            workflow_id=workflow_id,
            flow_name=flow.name,
            flow_hash=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            flow_file=flow.file,
            flow=ir.to_json(flow),
            flow_source=source,
            input=values,
            parent=parent,
            request=request,
            end=True,  # a transaction of its own
        )
        first = ev.to_record(started)
        codec.encode(first)  # too large or not storable: refuse before anything is created
        self.store.create(workflow_id, first)
        return workflow_id

    def transact(self, workflow_id: str, world: Union[WorldFn, None] = None) -> Transaction:
        """Under the lock: record ``world(state)`` events, then every decision that follows.

        Everything appended goes out as one write + fsync; it is durable when this
        returns, and only then may the caller carry the decisions out.
        """
        with self.store.lock(workflow_id):
            chunk, state = self._read_state(workflow_id)
            # One timestamp per transaction, later than any before it: replay tells transactions
            # apart by it (core/replay.py), and a clock that steps back cannot reorder a history.
            now = max(self.clock(), state.updated_at + 1)
            appended: list[ev.Event] = []
            divergence = self._verify(workflow_id, state)

            def add(event: ev.Event) -> None:
                nonlocal state
                event = replace(event, seq=state.last_seq + 1, ts=now)
                if isinstance(event, ev.WorkflowResumed) and event.flow is not None:
                    # it re-pins the definition for the whole history: fold everything again with it
                    state = fold(self.load(workflow_id).events + appended + [event])
                else:
                    state = evolve(state, event)
                appended.append(event)

            if divergence is not None:
                add(divergence)
            for event in (world(state) if world else ()):
                add(event)
            # Until the flow has nothing more to decide: replay holds every transaction to that.
            # (The language has no unbounded loop; the history's size limit bounds a batch.)
            while commands := decide(state):
                for command in commands:
                    add(ev.record_command(command, state.last_seq + 1, now))
            cursor = chunk.cursor
            if appended:
                appended[-1] = replace(appended[-1], end=True)  # so a batch cut by a crash shows
                cursor = self.store.append(workflow_id, chunk, [ev.to_record(e) for e in appended])
                self._remember(workflow_id, cursor, state)
            self._transacted.pop(workflow_id, None)
            self._transacted[workflow_id] = cursor
            if len(self._transacted) > _CACHE_LIMIT:
                self._transacted.pop(next(iter(self._transacted)))
            return Transaction(state, appended)

    def _verify(self, workflow_id: str, state: WorkflowState) -> Union[ev.WorkflowNondeterministic, None]:
        """Replay the whole history once per process (``verify``); the divergence to record, if any."""
        if not self.verify or workflow_id in self._verified or state.divergence is not None:
            return None
        events = self.load(workflow_id).events
        self._verified.add(workflow_id)
        try:
            replay(events)
        except NondeterminismError as exc:
            return ev.WorkflowNondeterministic(at=exc.seq, expected=_as_json(exc.expected),
                                               recorded=_as_json(exc.recorded), where=exc.detail)
        return None

    def state_of(self, workflow_id: str) -> WorkflowState:
        """The current state, folding only what was appended since this process last looked."""
        return self._read_state(workflow_id)[1]

    def cached_state(self, workflow_id: str) -> Union[WorkflowState, None]:
        """The state this process last folded for ``workflow_id`` (no read; None if none)."""
        cached = self._folded.get(workflow_id)
        return None if cached is None else cached.state

    def transacted(self, workflow_id: str) -> Union[Cursor, None]:
        """Where the history stood after this process's last transaction on it."""
        return self._transacted.get(workflow_id)

    def changed(self, workflow_id: str) -> bool:
        """False only if the history is provably what it was when this process last transacted on it
        (a stat, no read): reads such as ``state_of`` do not count, since they carry nothing out."""
        cursor = self._transacted.get(workflow_id)
        return cursor is None or self.store.changed(workflow_id, cursor)

    def _read_state(self, workflow_id: str) -> tuple[Chunk, WorkflowState]:
        cached = self._folded.get(workflow_id)
        try:
            chunk = self.store.read(workflow_id, cached.cursor if cached else None)
        except WorkflowNotFound:
            self._folded.pop(workflow_id, None)
            raise
        if cached is not None and not chunk.whole and repinned(chunk.records) is not None:
            chunk = self.store.read(workflow_id)  # a resume re-pinned the definition: fold it all again
        if chunk.whole or cached is None:
            state = self._fold(workflow_id, chunk.records, chunk.cursor.size).state
        else:
            state = cached.state
            for record in chunk.records:
                try:
                    state = evolve(state, ev.from_record(record))
                except (ValueError, FoldError) as exc:
                    raise HistoryCorruptError(self._where(workflow_id), record["seq"], str(exc)) from None
                except _MALFORMED as exc:
                    raise HistoryCorruptError(self._where(workflow_id), record["seq"], _malformed(exc)) from None
        self._remember(workflow_id, chunk.cursor, state)
        return chunk, state

    def _remember(self, workflow_id: str, cursor: Cursor, state: WorkflowState) -> None:
        self._folded.pop(workflow_id, None)
        self._folded[workflow_id] = _Folded(cursor, state)
        if len(self._folded) > _CACHE_LIMIT:
            self._folded.pop(next(iter(self._folded)))

    # --- requests from outside ------------------------------------------------

    def signal(self, workflow_id: str, name: str, data: object) -> Transaction:
        """Deliver a signal: recorded at once, buffered until a `wait signal` takes it."""
        if not isinstance(name, str) or not _SIGNAL_NAME_RE.fullmatch(name):
            raise InputError(f"invalid signal name {name!r}: a flow can only wait for names like "
                             "approve or order_paid ([A-Za-z][A-Za-z0-9_]*)")
        check_value(data, "the signal's data")
        secrets.refuse_references(data, "the signal's data")

        def world(state: WorkflowState) -> list[ev.Event]:
            if state.terminal:
                raise WorkflowFinished(workflow_id, state.status, f"signal '{name}' to")
            return [ev.SignalReceived(signal=name, data=data)]

        return self.transact(workflow_id, world)

    def terminate(self, workflow_id: str, reason: str) -> Transaction:
        """End a workflow now, ``terminated``: no compensation; its running work is killed."""
        return _terminate(self, workflow_id, reason)

    def cancel(self, workflow_id: str, reason: str) -> Transaction:
        """Ask a workflow to stop: running work is stopped, compensations run, it ends cancelled."""

        def world(state: WorkflowState) -> list[ev.Event]:
            if state.terminal:
                raise WorkflowFinished(workflow_id, state.status, "cancel")
            if state.cancel_requested is not None:
                return []
            return [ev.CancelRequested(reason=reason)]

        return self.transact(workflow_id, world)


# What folding a record of the right types but the wrong shape raises (a pinned flow damaged inside,
# an index past a list): the line is malformed, as a ValueError from the record itself would say.
_MALFORMED = (TypeError, KeyError, AttributeError, IndexError)


def _malformed(exc: BaseException) -> str:
    return f"an event does not fit the workflow's state or pinned flow ({type(exc).__name__}: {exc})"


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but false for a path the filesystem refuses (a name over NAME_MAX or
    PATH_MAX): such a flow does not exist, it is not a storage failure."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _terminate(engine: "Engine", workflow_id: str, reason: str) -> Transaction:
    """``Engine.terminate``: record ``WorkflowTerminated``; the executor that runs the workflow (or
    `lf terminate` itself, when none does) then kills its attempts and terminates its children."""

    def world(state: WorkflowState) -> list[ev.Event]:
        if state.terminal:
            raise WorkflowFinished(workflow_id, state.status, "terminate")
        return [ev.WorkflowTerminated(reason=reason)]

    return engine.transact(workflow_id, world)


def _as_json(decision: object) -> object:
    """A decision as it would be recorded (``{"type": ..., fields}``), for the divergence event."""
    if decision is None or isinstance(decision, str):
        return decision
    return {"type": ev.recorded_name(decision), **{f.name: getattr(decision, f.name) for f in fields(decision)
                                                  if not ev.omitted(f.name, getattr(decision, f.name))}}
