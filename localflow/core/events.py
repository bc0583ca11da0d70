"""Events (past tense, what happened) and commands (imperative, what the core asks for).

Two families of events never mix:
- *decision* events record what ``decide`` chose: ActivityScheduled,
  TimerStarted, the control-flow events (BranchChosen, VariableSet,
  ParallelStarted, LoopStarted, CatchEntered, SignalConsumed, ChildStarted,
  CompensationStarted, and since the Workflow Patterns release LoopIterated,
  LoopJumped, SignalTaken, LoopClosed, ScopeStarted, LockRequested, LockAcquired,
  LockReleased) and the endings (WorkflowCompleted, WorkflowFailed,
  WorkflowCancelled). Each is the record of exactly one command, and replay
  checks that deciding again yields the same commands.
- *world* events record what came from outside: WorkflowStarted,
  ActivityStarted, ActivityHeartbeat, ActivityCompleted, ActivityFailed, TimerFired,
  SignalReceived, CancelRequested, WorkflowTerminated, ChildCompleted, ChildFailed,
  WorkflowNondeterministic (the executor found, by replaying, that the history
  disagrees with its flow), and the repairs a user asked for: WorkflowResumed,
  WorkflowForked, WorkflowImported; TimeSkipped notes a virtual clock's jump;
  LockGranted is the supervisor granting a home-wide lock.

Every event carries ``seq`` (1, 2, ...) and ``ts`` (epoch ms, stamped by the
shell). ``to_record`` / ``from_record`` convert to the plain dicts the store
writes as lines (with ``ts`` as ISO-8601); docs/events.md documents them.
"""

from __future__ import annotations

import functools
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from typing import Any, ClassVar, Union

from localflow.core.timefmt import from_iso, to_iso

JSON = Any


@dataclass(frozen=True, kw_only=True)
class Event:
    seq: int = 0
    ts: int = 0
    end: bool = False  # the last event of a transaction's batch (written only when true)
    decision: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class WorkflowStarted(Event):
    workflow_id: str
    flow_name: str
    flow_hash: str
    flow_file: str
    flow: JSON  # ir.to_json(Flow): the pinned definition
    flow_source: str
    input: JSON
    parent: JSON = None  # {"workflow_id", "step"} when started as a child flow
    request: JSON = None  # {"file", "identity"} when started by a drop-folder request


@dataclass(frozen=True, kw_only=True)
class ActivityScheduled(Event):
    """``frame`` is the block instance the step runs in; ``undo`` its evaluated compensation argv."""

    decision: ClassVar[bool] = True
    step: str
    attempt: int
    argv: list
    stdin: JSON
    timeout_ms: int
    frame: str = "root"
    undo: JSON = None
    call: JSON = None  # {"target": "module:function", "kwargs": {...}} for a call step (then argv is [])
    heartbeat_ms: JSON = None  # the step's `heartbeat` interval: no heartbeat for this long fails the attempt
    heartbeat_details: JSON = None  # the step's last recorded heartbeat details, handed to this attempt
    env: JSON = None  # the step's evaluated `env` clause {name: text}; secrets as references
    cwd: JSON = None  # the step's `cwd` clause: a folder relative to the home
    secrets: JSON = None  # the secret names the step's clauses read (the only references the runner fills in)


@dataclass(frozen=True, kw_only=True)
class ActivityStarted(Event):
    step: str
    attempt: int
    pid: int
    pgid: int
    proc_start: Union[str, None] = None  # /proc start time, so a recycled pid is never killed
    worker: Union[str, None] = None  # the Dask worker's address when it ran on a cluster (pid is there)


@dataclass(frozen=True, kw_only=True)
class ActivityQueued(Event):
    """The attempt waits, from ``ts``, for room under a concurrency bound (``waiting_for`` says which)."""

    step: str
    attempt: int
    waiting_for: str


@dataclass(frozen=True, kw_only=True)
class ActivityHeartbeat(Event):
    """The attempt's last reported progress (``localflow.activity.heartbeat``, LF_HEARTBEAT_FD),
    recorded by the executor at most every few seconds while it is pending
    (docs/activities-heartbeats.md); the step's next attempt is handed the last one."""

    step: str
    attempt: int
    details: JSON


@dataclass(frozen=True, kw_only=True)
class ActivityCompleted(Event):
    step: str
    attempt: int
    result: JSON
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class ActivityFailed(Event):
    """``error`` is ``{"kind": exit|timeout|spawn|output|interrupted, "message": str, "exit_code": int|None}``."""

    step: str
    attempt: int
    error: JSON
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class TimerStarted(Event):
    decision: ClassVar[bool] = True
    timer: int
    step: str
    purpose: str  # "sleep", "retry-N", "signal-timeout", "step-timeout" or "workflow-timeout"
    duration_ms: int
    fire_at: int  # epoch ms = ts + duration_ms; for ``until``: the later of ts and until
    frame: str = "root"
    until: Union[int, None] = None  # ``sleep until``: the moment asked for (epoch ms; ISO in the record)


@dataclass(frozen=True, kw_only=True)
class TimerFired(Event):
    timer: int


@dataclass(frozen=True, kw_only=True)
class WorkflowCompleted(Event):
    decision: ClassVar[bool] = True
    result: JSON


@dataclass(frozen=True, kw_only=True)
class WorkflowFailed(Event):
    """``error`` is ``{"kind": ..., "message": str, "step": str|None, "line": int|None}``."""

    decision: ClassVar[bool] = True
    error: JSON


@dataclass(frozen=True, kw_only=True)
class WorkflowCancelled(Event):
    decision: ClassVar[bool] = True
    reason: JSON


# --- structure: decisions about control flow, each applied to a frame's current statement (``at``)


@dataclass(frozen=True, kw_only=True)
class BranchChosen(Event):
    """``branch`` is the block label taken (``then0``, ``then1``, ``else``) or "" when none is."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    branch: str


@dataclass(frozen=True, kw_only=True)
class VariableSet(Event):
    decision: ClassVar[bool] = True
    frame: str
    at: int
    name: str
    value: JSON


@dataclass(frozen=True, kw_only=True)
class ParallelStarted(Event):
    """``chosen``: with ``branch if`` conditions, the indexes of the branches whose condition held."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    branches: int
    race: bool
    chosen: Union[list, None] = None


@dataclass(frozen=True, kw_only=True)
class LoopStarted(Event):
    decision: ClassVar[bool] = True
    frame: str
    at: int
    items: list


@dataclass(frozen=True, kw_only=True)
class CatchEntered(Event):
    decision: ClassVar[bool] = True
    frame: str
    at: int
    step: str
    catch: int
    error: JSON


@dataclass(frozen=True, kw_only=True)
class SignalConsumed(Event):
    decision: ClassVar[bool] = True
    frame: str
    at: int
    step: str
    signal: str
    signal_seq: int


@dataclass(frozen=True, kw_only=True)
class ChildStarted(Event):
    """``detached``: the step completes at once; the child runs on its own (``flow NAME detached``)."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    step: str
    flow: str
    input: JSON
    child_id: str
    detached: Union[bool, None] = None


@dataclass(frozen=True, kw_only=True)
class LoopIterated(Event):
    """A while or repeat loop's test before its iteration ``iteration`` (0, 1, ...): ``go`` is
    whether that iteration runs (for repeat, the first always does, untested)."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    iteration: int
    go: bool


@dataclass(frozen=True, kw_only=True)
class LoopJumped(Event):
    """``break`` or ``continue`` (``jump``) ran, at ``frame``/``at``: it ends the innermost loop
    around it, or that loop's current iteration."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    jump: str


@dataclass(frozen=True, kw_only=True)
class SignalTaken(Event):
    """A signal loop (``for x in signal NAME``) or an ``on signal`` handler of a scope took the
    signal recorded at ``signal_seq``: it starts instance ``instance`` of that body."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    signal: str
    signal_seq: int
    instance: int


@dataclass(frozen=True, kw_only=True)
class LoopClosed(Event):
    """A signal loop takes no more signals: ``reason`` ``signal`` (it took its closing signal,
    ``signal_seq``), ``until`` (its condition held) or ``max`` (it ran its most iterations)."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    reason: str
    signal_seq: Union[int, None] = None


@dataclass(frozen=True, kw_only=True)
class ScopeStarted(Event):
    """A block with ``on signal`` handlers began: they take signals recorded after this event."""

    decision: ClassVar[bool] = True
    frame: str
    at: int


@dataclass(frozen=True, kw_only=True)
class LockRequested(Event):
    """``lock NAME`` was reached: the request's place in line is its seq. ``scope`` ``workflow``
    or ``home`` (``lock NAME global``)."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    lock: str
    scope: str


@dataclass(frozen=True, kw_only=True)
class LockAcquired(Event):
    """A workflow-scoped lock went to the request at ``frame``/``at`` (decided: first in line)."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    lock: str


@dataclass(frozen=True, kw_only=True)
class LockReleased(Event):
    """The body of the lock at ``frame``/``at`` ended: the lock is free for the next in line."""

    decision: ClassVar[bool] = True
    frame: str
    at: int
    lock: str


@dataclass(frozen=True, kw_only=True)
class CompensationStarted(Event):
    """The workflow is failing (or being cancelled): stop everything, then run ``steps``' undo in order."""

    decision: ClassVar[bool] = True
    reason: JSON
    cancel: bool
    steps: list


# --- world events from outside the flow


@dataclass(frozen=True, kw_only=True)
class SignalReceived(Event):
    signal: str
    data: JSON


@dataclass(frozen=True, kw_only=True)
class LockGranted(Event):
    """A home-scoped lock (``lock NAME global``) went to the request at ``frame``/``at``: recorded by
    the supervisor, the one grantor, in order of request across the workflows of the home."""

    frame: str
    at: int
    lock: str


@dataclass(frozen=True, kw_only=True)
class CancelRequested(Event):
    reason: str


@dataclass(frozen=True, kw_only=True)
class WorkflowTerminated(Event):
    """``lf terminate``: the workflow ends at once, ``terminated``: no compensation runs, running
    attempts are killed, timers never fire, running child workflows are terminated too."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class WorkflowNondeterministic(Event):
    """The history disagrees with its pinned flow (found by replaying it): nothing more is decided.

    ``at`` is the seq where they part; ``expected`` / ``recorded`` the two decisions (as
    JSON, ``null`` for none), ``where`` the flow line(s) deciding there.
    """

    at: int
    expected: JSON
    recorded: JSON
    where: str


@dataclass(frozen=True, kw_only=True)
class WorkflowResumed(Event):
    """The user resumed the workflow (``lf resume``): it carries on as it was before it failed.

    ``from_seq`` is the failing decision (``CompensationStarted`` or ``WorkflowFailed``) this
    supersedes; the state goes back to just before it, with fresh attempts for failed steps.
    ``None`` when it only releases an imported workflow (nothing had failed). With
    ``lf resume --flow`` the four ``flow*`` fields re-pin the definition for the whole
    history (its prefix was replayed against it first); else they are ``None``.
    """

    from_seq: Union[int, None]
    reason: str
    flow: JSON = None
    flow_hash: JSON = None
    flow_file: JSON = None
    flow_source: JSON = None


@dataclass(frozen=True, kw_only=True)
class WorkflowForked(Event):
    """This workflow was forked (``lf fork``): the events before this one are a copy of the
    origin's, ``{"workflow_id", "seq"}``, up to ``seq``."""

    origin: JSON


@dataclass(frozen=True, kw_only=True)
class WorkflowImported(Event):
    """The history above came from a bundle (``lf import``): the workflow is held (nothing of it
    runs, nothing is decided) until ``lf resume`` releases it. ``bundle`` says where it came from."""

    bundle: JSON


@dataclass(frozen=True, kw_only=True)
class TimeSkipped(Event):
    """A virtual clock (``lf run --skip-time``, ``localflow.testing``) jumped ahead ``skipped_ms``
    because nothing else could happen before the next timer."""

    skipped_ms: int


@dataclass(frozen=True, kw_only=True)
class ChildCompleted(Event):
    step: str
    child_id: str
    result: JSON


@dataclass(frozen=True, kw_only=True)
class ChildFailed(Event):
    step: str
    child_id: str
    error: JSON


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        WorkflowStarted,
        ActivityScheduled,
        ActivityStarted,
        ActivityHeartbeat,
        ActivityQueued,
        ActivityCompleted,
        ActivityFailed,
        TimerStarted,
        TimerFired,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCancelled,
        BranchChosen,
        VariableSet,
        ParallelStarted,
        LoopStarted,
        CatchEntered,
        SignalConsumed,
        ChildStarted,
        CompensationStarted,
        SignalReceived,
        CancelRequested,
        ChildCompleted,
        ChildFailed,
        WorkflowNondeterministic,
        WorkflowResumed,
        WorkflowForked,
        WorkflowImported,
        TimeSkipped,
        WorkflowTerminated,
        LoopIterated,
        LoopJumped,
        SignalTaken,
        LoopClosed,
        ScopeStarted,
        LockRequested,
        LockAcquired,
        LockReleased,
        LockGranted,
    )
}

_TIME_FIELDS = ("ts", "fire_at", "until")
_OMITTED_WHEN_NONE = frozenset({"call", "heartbeat_ms", "heartbeat_details",
                                 "env", "cwd", "secrets", "until", "chosen", "detached",
                                 "worker"})  # added later: histories without it read and write as before


def omitted(name: str, value: Any) -> bool:
    """Is this field left out of the record (a field added later, unset)?"""
    return value is None and name in _OMITTED_WHEN_NONE


def to_record(event: Event) -> dict[str, Any]:
    """The plain dict the store writes: ``seq``, ``ts`` (ISO), ``type``, then the fields."""
    record: dict[str, Any] = {"seq": event.seq, "ts": to_iso(event.ts), "type": type(event).__name__}
    for f in fields(event):
        if f.name in ("seq", "ts", "end"):
            continue
        value = getattr(event, f.name)
        if value is None and f.name in _OMITTED_WHEN_NONE:
            continue
        record[f.name] = to_iso(value) if f.name in _TIME_FIELDS else value
    if event.end:
        record["end"] = True
    return record


class UnknownEventType(ValueError):
    pass


@functools.lru_cache(maxsize=None)
def _field_names(cls: type) -> frozenset:
    return frozenset(f.name for f in fields(cls))


# The JSON types a record's field may hold, by its declared type (JSON fields: any value).
_DECLARED = {"int": (int,), "str": (str,), "bool": (bool,), "list": (list,), "Union[int, None]": (int, type(None)),
             "Union[str, None]": (str, type(None)), "Union[bool, None]": (bool, type(None)),
             "Union[list, None]": (list, type(None))}


# JSON fields that always hold an object (docs/events.md); ``error`` in every event that has one.
_OBJECTS = {"WorkflowStarted": {"flow": (dict,), "input": (dict,), "parent": (dict, type(None)),
                                "request": (dict, type(None))},
            "WorkflowCancelled": {"reason": (dict,)}, "CompensationStarted": {"reason": (dict,)},
            "WorkflowResumed": {"flow": (dict, type(None))},
            "WorkflowForked": {"origin": (dict,)}, "WorkflowImported": {"bundle": (dict,)}}


# Fields declared text that earlier versions could record as other JSON (argparse before Python 3.13
# stored `[]` for `--reason=--`): any JSON value is read.
_ANY_JSON = {"CancelRequested": {"reason"}, "WorkflowTerminated": {"reason"}, "WorkflowResumed": {"reason"}}

# A time is from 1970 up to the last moment ISO-8601 can write (9999-12-31T23:59:59.999Z), where
# `sleep until` and a skipping virtual clock may take a workflow.
_LATEST_TS_MS = 253_402_300_799_999


@functools.cache
def _field_types(cls: type) -> dict:
    types = {f.name: _DECLARED[f.type] for f in fields(cls) if f.type in _DECLARED}
    if "error" in _field_names(cls):
        types["error"] = (dict,)
    types.update(_OBJECTS.get(cls.__name__, {}))
    for name in _ANY_JSON.get(cls.__name__, ()):
        types.pop(name, None)
    return types


def from_record(record: dict[str, Any]) -> Event:
    """Inverse of ``to_record``; raises UnknownEventType or ValueError for malformed records
    (a field the event does not have, or whose value is not of its declared type: a hand-edited
    line whose crc was recomputed gets here)."""
    cls = EVENT_TYPES.get(record.get("type", ""))
    if cls is None:
        raise UnknownEventType(f"unknown event type {record.get('type')!r}")
    names = _field_names(cls)
    types = _field_types(cls)
    values = {}
    for key, value in record.items():
        if key == "type":
            continue
        if key not in names:
            raise ValueError(f"{cls.__name__} has no field {key!r}")
        allowed = types.get(key)
        if key in _TIME_FIELDS:
            try:
                if not isinstance(value, str):
                    raise TypeError
                value = from_iso(value)
                if key == "ts" and not 0 <= value <= _LATEST_TS_MS:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{cls.__name__} field {key!r} is not an ISO-8601 time: {value!r:.80}") from None
        elif allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            names_ = " or ".join({type(None): "null", dict: "an object"}.get(t, t.__name__) for t in allowed)
            raise ValueError(f"{cls.__name__} field {key!r} is not {names_}: {value!r:.80}")
        values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"malformed {cls.__name__}: {exc}") from None


# --- commands: what decide asks the shell to do ------------------------------
#
# Each command is the imperative twin of one decision event: the same fields,
# without ``seq`` and ``ts`` (stamped when it is recorded) and ``fire_at``
# (computed from ``ts``). They are generated from the events so the two can
# never drift apart.

_STAMPED = ("seq", "ts", "end", "fire_at")


def _command_for(name: str, event: type[Event]) -> type:
    spec = []
    for f in fields(event):
        if f.name in _STAMPED:
            continue
        spec.append((f.name, f.type) if f.default is MISSING else (f.name, f.type, field(default=f.default)))
    command = make_dataclass(name, spec, frozen=True)
    command.__module__ = __name__
    command.__doc__ = f"Recorded as {event.__name__}."
    return command


ScheduleActivity = _command_for("ScheduleActivity", ActivityScheduled)
StartTimer = _command_for("StartTimer", TimerStarted)
CompleteWorkflow = _command_for("CompleteWorkflow", WorkflowCompleted)
FailWorkflow = _command_for("FailWorkflow", WorkflowFailed)
CancelWorkflow = _command_for("CancelWorkflow", WorkflowCancelled)
ChooseBranch = _command_for("ChooseBranch", BranchChosen)
SetVariable = _command_for("SetVariable", VariableSet)
StartParallel = _command_for("StartParallel", ParallelStarted)
StartLoop = _command_for("StartLoop", LoopStarted)
EnterCatch = _command_for("EnterCatch", CatchEntered)
ConsumeSignal = _command_for("ConsumeSignal", SignalConsumed)
StartChild = _command_for("StartChild", ChildStarted)
StartCompensation = _command_for("StartCompensation", CompensationStarted)
IterateLoop = _command_for("IterateLoop", LoopIterated)
JumpLoop = _command_for("JumpLoop", LoopJumped)
TakeSignal = _command_for("TakeSignal", SignalTaken)
CloseLoop = _command_for("CloseLoop", LoopClosed)
StartScope = _command_for("StartScope", ScopeStarted)
RequestLock = _command_for("RequestLock", LockRequested)
AcquireLock = _command_for("AcquireLock", LockAcquired)
ReleaseLock = _command_for("ReleaseLock", LockReleased)

Command = Any  # one of the classes above

_RECORDED_AS: dict[type, type[Event]] = {
    ScheduleActivity: ActivityScheduled,
    StartTimer: TimerStarted,
    CompleteWorkflow: WorkflowCompleted,
    FailWorkflow: WorkflowFailed,
    CancelWorkflow: WorkflowCancelled,
    ChooseBranch: BranchChosen,
    SetVariable: VariableSet,
    StartParallel: ParallelStarted,
    StartLoop: LoopStarted,
    EnterCatch: CatchEntered,
    ConsumeSignal: SignalConsumed,
    StartChild: ChildStarted,
    StartCompensation: CompensationStarted,
    IterateLoop: LoopIterated,
    JumpLoop: LoopJumped,
    TakeSignal: SignalTaken,
    CloseLoop: LoopClosed,
    StartScope: ScopeStarted,
    RequestLock: LockRequested,
    AcquireLock: LockAcquired,
    ReleaseLock: LockReleased,
}
_COMMAND_OF: dict[type[Event], type] = {v: k for k, v in _RECORDED_AS.items()}


def record_command(command: Command, seq: int, ts: int) -> Event:
    """The decision event that records ``command``, stamped at ``ts`` (epoch ms)."""
    values = {f.name: getattr(command, f.name) for f in fields(command)}
    if isinstance(command, StartTimer):
        values["fire_at"] = ts + command.duration_ms if command.until is None else max(ts, command.until)
    return _RECORDED_AS[type(command)](seq=seq, ts=ts, **values)


def recorded_name(command: Command) -> str:
    """The name of the event a command is recorded as (what users see in histories)."""
    return _RECORDED_AS[type(command)].__name__


def command_of(event: Event) -> Command:
    """The command a decision event records (for replay comparison)."""
    cls = _COMMAND_OF[type(event)]
    return cls(**{f.name: getattr(event, f.name) for f in fields(cls)})

