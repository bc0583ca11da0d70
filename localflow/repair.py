"""Repairs the user asks for: resume a failed workflow in place, fork a workflow into a new one.

**Resume** (``lf resume ID [--flow FILE]``) appends one ``WorkflowResumed`` to the
same history, and the decisions that follow it: the fold goes back to the state
just before the failure, with every fact since kept, fresh attempts for the failed
steps (same workflow id, so the same ``LF_IDEMPOTENCY_KEY``), and a fresh timeout
for a workflow or wait whose deadline had fired. It is refused, with the reason,
when it cannot help: a workflow that is not failed; one whose compensations ran
(the work they undid is gone); a child workflow (its parent already took the
failure); one that would fail again at once (a ``fail`` statement, an expression
error: fix the flow and pass ``--flow``, whose definition must replay the history
up to the failure and is then pinned for the whole of it). It also releases an
imported (held) workflow.

**Fork** (``lf fork ID --at SEQ | --step NAME | --last-failure``) creates a new
workflow whose history is a copy of the origin's first SEQ events (its
``WorkflowStarted`` under the new id), one ``WorkflowForked`` naming the origin,
an ``ActivityFailed`` (interrupted) for each attempt that was running at that
point (its process belongs to the origin), and the decisions that follow: all
one batch, created whole or not at all. The copy must replay against the flow
the fork will run (``--flow`` or the pinned one). The origin is never touched.
Re-run steps get the fork's own idempotency keys (they derive from its id): a
fork is a new run, and an external service must not answer it with the origin's
results.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Union

from localflow import ir
from localflow.core import events as ev
from localflow.core.decide import decide
from localflow.core.replay import replay
from localflow.core.state import FAILED, UNDO_PREFIX, WorkflowState, evolve, fold
from localflow.engine import Engine, Transaction
from localflow.errors import ExitCode, InputError, LocalFlowError, NondeterminismError, WorkflowFinished
from localflow.store import codec
from localflow.store.paths import validate_workflow_id


class RepairRefused(LocalFlowError):
    """The repair cannot help this workflow (the message says why and what to do instead)."""

    exit_code = ExitCode.REFUSED


# --- resume ----------------------------------------------------------------------------


def resume(engine: Engine, workflow_id: str, flow_name: Union[str, None] = None,
           reason: str = "resumed by the user") -> Transaction:
    """Resume a failed workflow (or release an imported one); returns what was appended."""
    pinned = engine.load_flow(flow_name) if flow_name else None

    def world(state: WorkflowState) -> list[ev.Event]:
        events = engine.load(workflow_id).events
        event = _resume_event(workflow_id, state, events, pinned, reason)
        if event.from_seq is not None:
            # Everything the resume would decide at once, as the engine will: none of it may be a failure
            # (in any branch: a child the failure cancelled would fail the workflow again just as well).
            trial, _ = _decided(events, [event], state.updated_at + 1)
            again = [e for e in trial[len(events):] if isinstance(e, (ev.WorkflowFailed, ev.CompensationStarted))]
            if again:
                message = (again[0].reason if isinstance(again[0], ev.CompensationStarted) else again[0].error) or {}
                hint = "" if pinned else "; fix the flow and pass --flow FILE"
                raise RepairRefused(f"cannot resume {workflow_id}: it would fail again at once "
                                    f"({message.get('message')}){hint}")
        return [event]

    return engine.transact(workflow_id, world)


def _resume_event(workflow_id: str, state: WorkflowState, events: list, pinned: Union[tuple, None],
                  reason: str) -> ev.WorkflowResumed:
    if state.status != FAILED:
        if state.held and not state.terminal:
            return ev.WorkflowResumed(from_seq=None, reason="released by the user: " + reason)
        if state.status == "nondeterministic":
            raise RepairRefused(f"cannot resume {workflow_id}: its history disagrees with its flow; "
                                f"fork it with the flow that matches (lf fork {workflow_id} --at SEQ --flow FILE)")
        if not state.terminal:
            raise RepairRefused(f"cannot resume {workflow_id}: it is {state.status}, not failed")
        if state.status == "terminated":
            raise RepairRefused(f"cannot resume {workflow_id}: it was terminated ({(state.error or {}).get('message')}), "
                                "and a terminated workflow stays ended; to run it again, fork it: "
                                f"lf fork {workflow_id} --at SEQ (see lf history {workflow_id})")
        raise WorkflowFinished(workflow_id, state.status, "resume")
    if state.checkpoint is None:
        raise RepairRefused(f"cannot resume {workflow_id}: its history does not show where it began to fail")
    undone = sorted(k[len(UNDO_PREFIX):] for k, s in state.steps.items() if s.kind == "undo" and s.attempts)
    if undone:
        raise RepairRefused(f"cannot resume {workflow_id}: its compensations ran (undo of {', '.join(undone)}), "
                            "so the work before the failure was undone; run it again instead: "
                            f"lf fork {workflow_id} --at 1")
    if state.parent and not state.parent.get("detached"):
        raise RepairRefused(f"cannot resume {workflow_id}: it is a child of {state.parent['workflow_id']}, "
                            "which already took its failure; fork the parent instead")
    held = _held_home_locks(state.checkpoint[1])
    if held:
        raise RepairRefused(f"cannot resume {workflow_id}: it held the home-wide lock '{held[0]}' when it began "
                            "to fail, and gave it up; resuming would put it back inside that critical section "
                            f"while another workflow may hold it. Fork it from before the lock instead "
                            f"(lf fork {workflow_id} --at SEQ; see lf history {workflow_id})")
    from_seq = state.checkpoint[0]
    if pinned is None:
        return ev.WorkflowResumed(from_seq=from_seq, reason=reason)
    flow, source = _as_pinned_before(pinned, state.flow)
    if flow.name != state.flow.name:
        raise InputError(f"--flow defines flow {flow.name}, but {workflow_id} runs {state.flow.name}")
    replay([e for e in events if e.seq < from_seq], flow=flow, source=source)  # NondeterminismError: exit 4
    return ev.WorkflowResumed(from_seq=from_seq, reason=reason, flow=ir.to_json(flow),
                              flow_hash=_hash(source), flow_file=flow.file, flow_source=source)


# --- fork ------------------------------------------------------------------------------


@dataclass
class ForkPlan:
    """What a fork is (or would be): the copy, what runs again, its first decisions."""

    origin: str
    at: int
    workflow_id: str
    records: list = field(default_factory=list)  # the whole first batch, as written
    again: list = field(default_factory=list)  # steps recorded after ``at`` in the origin: they run again
    interrupted: list = field(default_factory=list)  # attempts running at ``at``: retried in the fork
    first: list = field(default_factory=list)  # the fork's first decisions (event names and steps)


def fork(engine: Engine, workflow_id: str, at: Union[int, None] = None, step: Union[str, None] = None,
         last_failure: bool = False, new_id: Union[str, None] = None, flow_name: Union[str, None] = None,
         dry_run: bool = False) -> ForkPlan:
    """Create (unless ``dry_run``) a workflow that goes on from event ``at`` of ``workflow_id``."""
    if sum(x is not None and x is not False for x in (at, step, last_failure)) != 1:
        raise InputError("say where to fork: one of --at SEQ, --step NAME, --last-failure")
    loaded = engine.load(workflow_id)
    events, state = loaded.events, loaded.state
    seq = _fork_point(workflow_id, events, state, at, step, last_failure)
    prefix = events[:seq]
    _check_copyable(workflow_id, prefix, seq)
    first = prefix[0]
    flow, source = engine.load_flow(flow_name) if flow_name else (None, None)
    if flow is not None:
        flow, source = _as_pinned_before((flow, source), ir.from_json(first.flow))
    if flow is not None and flow.name != first.flow_name:
        raise InputError(f"--flow defines flow {flow.name}, but {workflow_id} runs {first.flow_name}")
    new_id = validate_workflow_id(new_id) if new_id else engine.new_id(first.flow_name)
    started = replace(first, workflow_id=new_id, parent=None, request=None)
    if flow is not None:
        started = replace(started, flow=ir.to_json(flow), flow_hash=_hash(source), flow_file=flow.file,
                          flow_source=source)
    copy = [started] + list(prefix[1:])
    copied = fold(copy)
    now = max(engine.clock(), copied.updated_at + 1)
    batch: list[ev.Event] = [ev.WorkflowForked(origin={"workflow_id": workflow_id, "seq": seq})]
    interrupted = [(key, attempt.number) for key, attempt in copied.pending_attempts()]
    batch += [ev.ActivityFailed(step=key, attempt=number, duration_ms=0,
                                error={"kind": "interrupted", "exit_code": None,
                                       "message": f"not carried into the fork: it ran for {workflow_id}"})
              for key, number in interrupted]
    history, state = _decided(copy, batch, now)
    try:
        replay(history)  # what every executor will check first: against the definition it pins
    except NondeterminismError as exc:
        raise NondeterminismError(exc.seq, exc.expected, exc.recorded, exc.detail,
                                  (f"the fork's copy of {workflow_id} up to seq {seq} does not replay "
                                   "against the flow it would run",) + tuple(exc.explain)) from None
    records = [ev.to_record(e) for e in history]
    for record in records:
        codec.encode(record)  # too large or not storable: refuse before anything is created
    decided = [e for e in history[len(copy) + len(batch):]]
    plan = ForkPlan(
        origin=workflow_id, at=seq, workflow_id=new_id, records=records,
        again=_steps_after(events, seq), interrupted=[f"{k} attempt {n}" for k, n in interrupted],
        first=[f"{type(e).__name__}" + (f" {e.step}" if getattr(e, "step", None) else "") for e in decided],
    )
    if not dry_run:
        engine.store.create(new_id, records[0], records[1:])
    return plan


def _fork_point(workflow_id: str, events: list, state: WorkflowState, at: Union[int, None],
                step: Union[str, None], last_failure: bool) -> int:
    last = events[-1].seq
    if at is not None:
        if not 1 <= at <= last:
            raise InputError(f"--at {at}: {workflow_id} has events 1 to {last}")
        return at
    if step is not None:
        seq = _first_of_step(events, step)
        if seq is None:
            names = sorted({e.step.split("[")[0] for e in events if _begins_step(e)})
            raise InputError(f"--step {step}: {workflow_id} recorded no step of that name"
                             + (f" (it has {', '.join(names)})" if names else ""))
        return seq - 1
    if state.status != FAILED or state.checkpoint is None:
        raise InputError(f"--last-failure: {workflow_id} is {state.status}, not failed")
    failed_step = (state.error or {}).get("step")
    seq = _first_of_step(events, failed_step) if failed_step else None
    if seq is not None and any(isinstance(e, ev.ActivityScheduled) and e.seq == seq for e in events):
        return seq - 1  # the step that failed it runs again, with all its attempts
    return state.checkpoint[0] - 1  # else: just before it began to fail


def _first_of_step(events: list, name: str) -> Union[int, None]:
    """The first decision of step ``name`` (its exact key, or the first instance of it in a loop)."""
    for exact in (True, False):
        for event in events:
            if _begins_step(event) and (event.step == name if exact else event.step.split("[")[0] == name):
                return event.seq
    return None


def _begins_step(event: ev.Event) -> bool:
    """Is this a decision that runs a step (an activity, a child, a sleep, a wait)?"""
    if isinstance(event, ev.TimerStarted):
        return event.purpose in ("sleep", "signal-timeout")
    return isinstance(event, (ev.ActivityScheduled, ev.ChildStarted, ev.SignalConsumed)) and \
        not event.step.startswith(UNDO_PREFIX)


def _held_home_locks(state: WorkflowState) -> list:
    """The home-wide locks ``state`` holds (names): another workflow may hold them now."""
    return [r.lock for r in state.live_locks() if r.scope == "home" and r.granted]


def _as_pinned_before(pinned: tuple, original: ir.Flow) -> tuple:
    """A flow re-pinned onto a history whose own flow predates waits that say how they ended
    (``WaitSignal.tells_ending``) keeps its waits as they read then, so the values recorded
    from them decide the same."""
    flow, source = pinned
    waits = [s for s in ir.walk(original.body) if isinstance(s, ir.WaitSignal)]
    if not waits or any(w.tells_ending for w in waits):
        return pinned
    return ir.without_tells_ending(flow), source


def _check_copyable(workflow_id: str, prefix: list, seq: int) -> None:
    ends = (ev.WorkflowCompleted, ev.WorkflowFailed, ev.WorkflowCancelled, ev.CompensationStarted,
            ev.WorkflowNondeterministic, ev.WorkflowTerminated)
    set_aside = [(e.from_seq, e.seq) for e in prefix if isinstance(e, ev.WorkflowResumed) and e.from_seq is not None]
    for event in prefix:
        if isinstance(event, ends) and not any(lo <= event.seq < hi for lo, hi in set_aside):  # (a resume's past)
            raise InputError(f"at seq {seq} {workflow_id} was already ending ({type(event).__name__} at seq "
                             f"{event.seq}): fork at {event.seq - 1} or before")
    copied = fold(prefix)
    held = _held_home_locks(copied)
    if held:
        raise InputError(f"at seq {seq} {workflow_id} held the home-wide lock '{held[0]}': a copy would hold it "
                         "too; fork before the lock was granted or after it was released")
    for child in copied.pending_children():
        raise InputError(f"at seq {seq} the child flow of step {child.step} ({child.child_id}) was running, and "
                         f"it belongs to {workflow_id}: fork before it started or after it ended")


def _decided(copy: list, batch: list, now: int) -> tuple[list, WorkflowState]:
    """The copy, then ``batch`` and every decision after it, stamped ``now``, the last marked ``end``."""
    history = list(copy)
    for event in batch:
        history.append(replace(event, seq=history[-1].seq + 1, ts=now))
    state = fold(history)  # (all of it: a resume with --flow re-pins the definition for the whole history)
    while commands := decide(state):
        for command in commands:
            event = ev.record_command(command, state.last_seq + 1, now)
            history.append(event)
            state = evolve(state, event)
    history[-1] = replace(history[-1], end=True)
    return history, state


def _steps_after(events: list, seq: int) -> list:
    """Steps the origin ran after ``seq``: a fork from there runs them again."""
    seen: list = []
    for event in events[seq:]:
        if isinstance(event, (ev.ActivityScheduled, ev.ChildStarted)) and not event.step.startswith(UNDO_PREFIX):
            if event.step not in seen:
                seen.append(event.step)
    return seen


def _hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()
