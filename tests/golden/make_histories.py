"""Make the golden histories: ``python tests/golden/make_histories.py [OUT_DIR]``.

Every history is produced by the real engine and executor in the in-memory world of
tests/unit/test_executor_inprocess.py (``MemoryStore``, ``ScriptedRunner``, a
``VirtualClock`` with a fixed start, ``Executor`` and ``drive``), with fixed workflow
ids, and written line for line as the store holds it (``localflow.store.codec``).
Running it again gives the same bytes: tests/golden/test_replay_golden.py regenerates
into a temporary folder and compares.

Determinism: the executor runs each attempt on a thread of its own, so two attempts
(parallel branches) could record their outcomes in either order. ``SerialExecutor``
waits after starting an attempt until it has ended, or (an attempt the script leaves
running: a race's loser, a step the workflow timeout stops) until it waits to be
cancelled, and a cancellation waits until the attempt's outcome is recorded. So there
is one thread at work at any time and the order of every append is fixed.

The flows are in tests/golden/flows/ (this folder is the engine's home, so child
flows are found by name). ``TimeSkipped`` is what the executor records when the
virtual clock jumps to a timer. A resume is recorded the way the engine records any
world event, ``engine.transact(id, world=...)``; a fork or an import is a history
created whole with ``store.create`` from a prefix of another one (ending where a
transaction ended), then driven. ``.nondeterministic`` histories are ``.ok`` ones
whose pinned flow was edited afterwards, and one where the executor itself found
the divergence (``WorkflowNondeterministic``) before the workflow was cancelled:
replaying such a history fails exactly where that record says, which is why that
event type appears in no ``.ok`` history.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from localflow import dsl, ir, repair  # noqa: E402
from localflow.clock import VirtualClock  # noqa: E402
from localflow.core import events as ev  # noqa: E402
from localflow.engine import Engine  # noqa: E402
from localflow.runner.scripted import ScriptedAttempt, ScriptedRunner, fail, succeed  # noqa: E402
from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec  # noqa: E402
from localflow.store import codec  # noqa: E402
from localflow.store.memory import MemoryStore  # noqa: E402
from localflow.supervisor.executor import Executor  # noqa: E402
from localflow.supervisor.loop import drive  # noqa: E402
from localflow.supervisor.wakeups import Wakeups  # noqa: E402

HOME = HERE  # flows/<Name>.flow below it; nothing is written there
OUT = HERE / "histories"
START_MS = 1_790_000_000_000  # 2026-09-21T14:13:20Z: every world's clock starts here
HOUR = 3_600_000

Script = Callable[[AttemptSpec], "AttemptOutcome | None"]


# --- a serial world ------------------------------------------------------------------------


class _Attempt(ScriptedAttempt):
    def __init__(self, outcome, pid, parked: Callable[[], None]) -> None:
        super().__init__(outcome, pid)
        self._parked = parked

    def wait(self) -> AttemptOutcome:
        if self._outcome is None:
            self._parked()  # its ActivityStarted is recorded: it now runs until cancelled
        return super().wait()


class SerialRunner(ScriptedRunner):
    def __init__(self, script: Script) -> None:
        super().__init__(script)
        self.parked: set[tuple] = set()

    def start(self, spec: AttemptSpec) -> _Attempt:
        self.started.append(spec)
        key = (spec.workflow_id, spec.step, spec.attempt)
        return _Attempt(self.script(spec), next(self._pids), lambda: self.parked.add(key))


class SerialExecutor(Executor):
    """An executor with one thread at work at a time (see the module's docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._thread_of: dict[tuple, object] = {}
        self.carry_out_from_attempts = False  # one thread at work at a time: the loop carries out

    def _start(self, workflow_id, step, attempt, waited=False) -> bool:
        if not super()._start(workflow_id, step, attempt, waited):
            return False  # already started (two threads may carry out the same state)
        key, thread = (workflow_id, step, attempt.number), self._threads[-1]
        self._thread_of[key] = thread
        limit = time.monotonic() + 10
        while thread.is_alive() and key not in self.runner.parked:
            thread.join(0.0005)
            if time.monotonic() > limit:
                raise RuntimeError(f"attempt {key} neither ended nor parked")
        return True

    def _cancel_running(self, workflow_id, step, number, *more) -> None:
        super()._cancel_running(workflow_id, step, number, *more)
        thread = self._thread_of.pop((workflow_id, step, number), None)
        if thread is not None:
            thread.join(10)


class World:
    """Engine + executor over a MemoryStore, a scripted runner and a virtual clock."""

    def __init__(self, script: Script, start_ms: int = START_MS) -> None:
        self.clock = VirtualClock(start_ms)
        self.store = MemoryStore()
        self.engine = Engine(HOME, clock=self.clock, store=self.store)
        self.runner = SerialRunner(script)
        self.frozen = False  # True: waiting for work never moves the clock
        self.idle = False
        self.executor = SerialExecutor(self.engine, runner=self.runner, wakeups=Wakeups(None), waiter=self._wait)

    def _wait(self, condition, seconds: float, until_due: float) -> None:
        if self.frozen:
            self.idle = True  # nothing to do before time moves on
            return
        self.clock.wait(condition, seconds, until_due)

    def start(self, flow_name: str, workflow_id: str, **given) -> str:
        return self.engine.start(flow_name, given, workflow_id)

    def settle(self, *workflow_ids: str) -> None:
        """Reconcile until nothing more happens without time passing."""
        for workflow_id in workflow_ids:
            self.executor.mark_dirty(workflow_id)
        self.frozen = True
        try:
            while True:
                self.idle = False
                work = self.executor.wait_for_work(max_wait_s=0.5)
                for workflow_id in sorted(work):
                    self.executor.reconcile(workflow_id)
                if self.idle and not work:
                    return
        finally:
            self.frozen = False

    def run(self, workflow_id: str) -> None:
        """Drive (the supervisor's own loop, time skipping ahead) until the workflow has ended."""
        deadline = time.monotonic() + 30

        def done() -> bool:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workflow_id} did not finish: {self.engine.state_of(workflow_id).current_label}")
            return self.engine.state_of(workflow_id).terminal and not self.executor.busy

        self.executor.mark_dirty(workflow_id)
        drive(self.executor, self.executor.reconcile, until=done, period_s=3600)

    def records(self, workflow_id: str) -> list[dict]:
        return self.store.read(workflow_id).records


def lines(records: Iterable[dict]) -> bytes:
    return b"".join(codec.encode(record) for record in records)


def state_of(world: World, workflow_id: str):
    return world.engine.state_of(workflow_id)


def seq_of(records: list[dict], kind: str, **fields) -> int:
    for record in records:
        if record["type"] == kind and all(record.get(k) == v for k, v in fields.items()):
            return record["seq"]
    raise LookupError(f"no {kind} {fields}")


def repin(records: list[dict], old: str, new: str) -> list[dict]:
    """The same history with its pinned flow edited (``old`` replaced by ``new`` in its source)."""
    first = dict(records[0])
    source = first["flow_source"]
    assert source.count(old) == 1, (old, first["flow_file"])
    source = source.replace(old, new)
    flow = dsl.parse_flow(source, first["flow_file"])
    first.update(flow=ir.to_json(flow), flow_source=source,
                 flow_hash=hashlib.sha256(source.encode("utf-8")).hexdigest())
    return [first, *records[1:]]


def copy_prefix(records: list[dict], upto: int, workflow_id: str) -> list[dict]:
    """The records up to seq ``upto`` (the end of a transaction) as the start of another workflow."""
    prefix = [dict(r) for r in records[:upto]]
    assert prefix[-1].get("end"), "a copy must end where a transaction ended"
    prefix[0]["workflow_id"] = workflow_id
    return prefix


def outcome(ok: bool, value=None, ms: int = 0, **error) -> AttemptOutcome:
    return AttemptOutcome(True, result=value, duration_ms=ms) if ok else AttemptOutcome(False, error=error, duration_ms=ms)


# --- the scenarios ---------------------------------------------------------------------------
# Each returns {file name: bytes}.


def activities() -> dict[str, bytes]:
    def script(spec):
        if spec.step == "reserve":
            return {1: fail("stock service busy", 1), 2: outcome(False, ms=45000, kind="timeout",
                                                               message="timed out after 45s", exit_code=None),
                    3: fail("exit code 75: try later", 75)}.get(spec.attempt, succeed({"id": "R-17"}))
        if spec.step == "charge" and spec.attempt == 1:
            return outcome(False, ms=3, kind="interrupted", message="stopped: the executor shut down while it ran",
                           exit_code=None)
        if spec.step == "charge":
            return outcome(True, {"receipt": "RC-17", "at": spec.stdin["at"], "input": spec.stdin}, ms=120)
        return outcome(True, {"argv": spec.argv}, ms=7)

    world = World(script)
    world.start("Activities", "activities-1")
    world.run("activities-1")
    records = world.records("activities-1")
    return {"activities.ok.jsonl": lines(records),
            "activities-retry-changed.nondeterministic.jsonl": lines(
                repin(records, "retry 3 every 500ms backoff 3x max 2s", "retry 3 every 500ms backoff 2x max 2s")),
            "activities-timeout-added.nondeterministic.jsonl": lines(
                repin(records, "    retry 1 every 1s\n", "    retry 1 every 1s\n    timeout 1m\n"))}


def catches() -> dict[str, bytes]:
    def script(spec):
        what = spec.argv[1]
        if what == "exit":
            return fail("exit code 3: no such account", 3)
        if what == "slow":
            return outcome(False, ms=2000, kind="timeout", message="timed out after 2s", exit_code=None)
        if what == "typed":
            return outcome(False, ms=40, kind="exit", message="insufficient funds", exit_code=1, type="CardDeclined")
        if what == "any":
            return outcome(False, kind="spawn", message="cannot run 'pay': not found", exit_code=None)
        return succeed({"paid_by": spec.argv[2]})

    world = World(script)
    world.start("Catches", "catches-1")
    world.run("catches-1")
    records = world.records("catches-1")
    return {"catches.ok.jsonl": lines(records),
            "catches-order-changed.nondeterministic.jsonl": lines(
                repin(records, 'catch error "CardDeclined", "Fraud":', 'catch error "Fraud":'))}


def control_flow() -> dict[str, bytes]:
    def script(spec):
        if spec.step == "quote_slow":
            return None  # runs until the race is lost
        if spec.step.startswith("label"):
            return succeed(f"{spec.argv[1]}:{spec.argv[2]}")
        return succeed(f"{spec.step}-ok")

    world = World(script)
    world.start("ControlFlow", "control-flow-1")
    world.run("control-flow-1")
    records = world.records("control-flow-1")
    return {"control-flow.ok.jsonl": lines(records),
            "control-flow-branch-changed.nondeterministic.jsonl": lines(
                repin(records, "elif amount > 50:", "elif amount > 80:")),
            "control-flow-loop-widened.nondeterministic.jsonl": lines(
                repin(records, "for item in items parallel 2:", "for item in items parallel 3:"))}


def signals() -> dict[str, bytes]:
    world = World(lambda spec: succeed())
    workflow_id = world.start("Signals", "signals-1")
    world.settle(workflow_id)
    world.engine.signal(workflow_id, "prepaid", {"amount": 12.5})  # before its wait: buffered
    world.clock.advance(60_000)
    world.engine.signal(workflow_id, "approve", {"by": "ann"})
    world.settle(workflow_id)  # quick's timeout timer starts
    world.clock.advance(5 * 60_000)
    world.engine.signal(workflow_id, "go", [1, 2, 3])
    world.run(workflow_id)  # late times out (caught), early takes the buffered signal
    records = world.records(workflow_id)
    return {"signals.ok.jsonl": lines(records),
            "signals-timeout-changed.nondeterministic.jsonl": lines(
                repin(records, "wait signal nudge timeout 10m", "wait signal nudge timeout 20m"))}


def children() -> dict[str, bytes]:
    def script(spec):
        if spec.step == "invoice":
            return outcome(False, ms=5, kind="exit", message="item 3 is out of stock", exit_code=1, type="OutOfStock")
        return succeed(spec.argv[1:])

    world = World(script)
    world.start("Family", "family-1")
    world.run("family-1")
    return {"children.ok.jsonl": lines(world.records("family-1")),
            "children-ship.ok.jsonl": lines(world.records("family-1.ship")),
            "children-bill.ok.jsonl": lines(world.records("family-1.bill"))}


def compensation() -> dict[str, bytes]:
    def script(spec):
        if spec.step == "car":
            return succeed({"ok": False, "why": "none left"})
        if spec.step == "undo:hotel" and spec.attempt == 1:
            return fail("hotel API down", 1)
        return succeed({"ref": spec.argv[1].upper() + "-1"} if not spec.step.startswith("undo:") else "undone")

    world = World(script)
    world.start("Saga", "saga-1")
    world.run("saga-1")
    return {"compensation.ok.jsonl": lines(world.records("saga-1"))}


def workflow_timeout() -> dict[str, bytes]:
    world = World(lambda spec: None if spec.step == "crunch" else succeed("ok"))
    world.start("Deadline", "deadline-1")
    world.settle("deadline-1")  # crunch runs (until it is stopped); the clock never skips over it
    world.clock.advance(state_of(world, "deadline-1").timer_for("workflow", "workflow-timeout").fire_at - world.clock())
    world.run("deadline-1")
    return {"workflow-timeout.ok.jsonl": lines(world.records("deadline-1"))}


def cancel() -> dict[str, bytes]:
    world = World(lambda spec: succeed({"step": spec.step}))
    workflow_id = world.start("Cancellable", "cancel-1")
    world.settle(workflow_id)
    world.clock.advance(HOUR)
    world.engine.cancel(workflow_id, "the customer changed their mind")
    world.run(workflow_id)
    return {"cancel.ok.jsonl": lines(world.records(workflow_id))}


def terminate() -> dict[str, bytes]:
    """lf terminate: ended at once, no compensation; the running attempt is killed and recorded."""
    world = World(lambda spec: succeed({"step": spec.step}))
    workflow_id = world.start("Cancellable", "terminate-1")
    world.settle(workflow_id)
    world.clock.advance(HOUR)
    world.engine.terminate(workflow_id, "stuck: the operator ended it")
    world.run(workflow_id)
    assert state_of(world, workflow_id).status == "terminated"
    return {"terminate.ok.jsonl": lines(world.records(workflow_id))}


def limits() -> dict[str, bytes]:
    """A flow's concurrency 1: the second branch's step waits (ActivityQueued) while the first runs
    and reports its progress (ActivityHeartbeat); then the workflow is cancelled."""
    world = World(lambda spec: None if spec.step == "crunch" else succeed({"step": spec.step}))
    workflow_id = world.start("Limited", "limits-1")
    world.settle(workflow_id)
    world.clock.advance(30_000)
    world.engine.transact(workflow_id, lambda state: [
        ev.ActivityHeartbeat(step="crunch", attempt=1, details={"done": 5, "of": 9})])
    world.settle(workflow_id)
    world.engine.cancel(workflow_id, "no longer needed")
    world.run(workflow_id)
    records = world.records(workflow_id)
    assert {r["type"] for r in records} >= {"ActivityQueued", "ActivityHeartbeat", "WorkflowCancelled"}
    return {"limits.ok.jsonl": lines(records)}


def resume() -> dict[str, bytes]:
    """lf resume (localflow.repair.resume) after a plain failure, and after one that compensated."""
    fixed = []

    def script(spec):
        if spec.step == "charge" and not fixed:
            return fail(f"card network down (attempt {spec.attempt})", 1)
        if spec.step == "hotel" and not fixed:
            return fail("no rooms", 1)
        if spec.step == "flight" and not fixed:
            return None  # still running when hotel fails: stopped by the failure
        return succeed(f"{spec.step}-{spec.attempt}")

    world = World(script)
    world.start("Resumable", "resume-1")
    world.run("resume-1")
    world.start("ResumableParallel", "resume-parallel-1")
    world.run("resume-parallel-1")
    assert state_of(world, "resume-1").status == state_of(world, "resume-parallel-1").status == "failed"
    world.clock.advance(HOUR)
    fixed.append(True)
    repair.resume(world.engine, "resume-1", reason="the card network is back")
    repair.resume(world.engine, "resume-parallel-1", reason="rooms freed up")
    world.run("resume-1")
    world.run("resume-parallel-1")
    records = world.records("resume-parallel-1")
    assert seq_of(records, "WorkflowResumed") and seq_of(records, "CompensationStarted")
    return {"resume.ok.jsonl": lines(world.records("resume-1")),
            "resume-compensated.ok.jsonl": lines(records)}


def repairs() -> dict[str, bytes]:
    """Sleepy (a skipped day), then a fork, an import and a drift of its history."""
    world = World(lambda spec: succeed(f"{' '.join(spec.argv[1:])}!"))
    origin = world.start("Sleepy", "sleepy-1")
    world.run(origin)  # the clock skips the day: the executor records TimeSkipped before TimerFired
    records = world.records(origin)
    out = {"time-skipped.ok.jsonl": lines(records)}

    # lf fork sleepy-1 --at <bye started>: the copy's running attempt is interrupted, then retried
    world.clock.advance(HOUR)
    repair.fork(world.engine, origin, at=seq_of(records, "ActivityStarted", step="bye"), new_id="sleepy-1-fork")
    world.run("sleepy-1-fork")
    out["fork.ok.jsonl"] = lines(world.records("sleepy-1-fork"))

    # lf import on another machine of sleepy-1 exported while it slept: held until lf resume
    sleeping = seq_of(records, "TimerStarted", purpose="sleep")  # a transaction ended there
    other = World(world.runner.script, start_ms=START_MS + 2 * HOUR)
    note = {"file": "sleepy-1.bundle.jsonl", "exported_at": "2026-09-21T15:00:00.000Z", "root": origin}
    held = ev.to_record(ev.WorkflowImported(seq=sleeping + 1, ts=other.clock(), end=True, bundle=note))
    other.store.create(origin, records[0], [*records[1:sleeping], held])
    other.settle(origin)
    assert other.records(origin)[-1] == held  # held: nothing runs, nothing is decided or recorded
    other.clock.advance(60_000)
    repair.resume(other.engine, origin, reason="imported from build-7")
    other.run(origin)
    out["import.ok.jsonl"] = lines(other.records(origin))

    # The pinned flow no longer matches what was decided: the executor records the divergence
    # (WorkflowNondeterministic) once, decides nothing more, and a cancel still ends it.
    world.clock.advance(HOUR)
    drifted = repin(copy_prefix(records, sleeping, "sleepy-1-drifted"), "sleep 1d", "sleep 2d")
    world.store.create("sleepy-1-drifted", drifted[0], drifted[1:])
    world.settle("sleepy-1-drifted")
    world.clock.advance(60_000)
    world.engine.cancel("sleepy-1-drifted", "its flow changed under it")
    assert state_of(world, "sleepy-1-drifted").status == "cancelled"
    out["divergence-recorded.nondeterministic.jsonl"] = lines(world.records("sleepy-1-drifted"))
    return out


def patterns() -> dict[str, bytes]:
    """Patterns.flow: every construct of the Workflow Patterns release, and the signals it needs."""
    checks = []

    def script(spec):
        if spec.argv[0] == "slow":
            return None  # runs until `parallel first 2` cancels it
        if spec.argv[0] == "check":
            checks.append(spec.attempt)
            return succeed("ready" if len(checks) >= 2 else "not yet")
        return succeed(spec.argv[1:] or spec.argv[0])

    world = World(script)
    workflow_id = world.start("Patterns", "patterns-1")
    world.settle(workflow_id)  # up to the signal loop
    world.engine.signal(workflow_id, "job", 1)
    world.engine.signal(workflow_id, "change", "too early")  # before the scope began: never taken
    world.engine.signal(workflow_id, "job", 2)
    world.settle(workflow_id)
    world.clock.advance(60_000)
    world.engine.signal(workflow_id, "close", None)
    world.settle(workflow_id)  # the scope waits for go
    world.engine.signal(workflow_id, "change", "address")
    world.clock.advance(60_000)
    world.engine.signal(workflow_id, "go", None)
    world.run(workflow_id)
    assert state_of(world, workflow_id).status == "completed", state_of(world, workflow_id).error
    return {"patterns.ok.jsonl": lines(world.records(workflow_id))}


SCENARIOS = (activities, catches, control_flow, signals, children, compensation, workflow_timeout, cancel, terminate, limits,
             resume,
             repairs, patterns)


def generate() -> dict[str, bytes]:
    """Every golden history this script makes, by file name."""
    made: dict[str, bytes] = {}
    for scenario in SCENARIOS:
        for name, data in scenario().items():
            assert name not in made, name
            made[name] = data
    return made


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(generate().items()):
        (out / name).write_bytes(data)
        print(f"{name}: {len(data.splitlines())} events")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
