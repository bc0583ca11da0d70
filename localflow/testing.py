"""Test your own flows with pytest: skipped time, scripted or real activities, signals, the history.

    from localflow.testing import fail, succeed, world

    def test_purchase_retries_the_charge(tmp_path):
        with world("flows", activities={
            "reserve": succeed({"reservation": "R-1"}),
            "charge": [fail("card network busy"), succeed({"receipt": "RC-1"})],
        }) as w:
            workflow_id = w.start("PurchaseFlow", {"order_id": "A-7"})
            state = w.run_to_end(workflow_id)
            assert state.result == {"order": "A-7", "reservation": "R-1", "receipt": "RC-1"}
            assert w.count(workflow_id, "ActivityFailed") == 1
            w.assert_replays(workflow_id)

A *world* is the engine and executor LocalFlow runs everywhere, wired to a
``VirtualClock`` (time stands still while things happen, and jumps to the next
timer when nothing else can), an in-memory history store (``MemoryStore``) and
the ``ScriptedRunner`` (activities end as the test says, with no process). With
``real_activities=True`` every step not scripted runs as a real process in a
temporary home (a copy of the flows folder, histories on disk under its var/).

Flows come from a flows folder (``world("flows")``: a home holding flows/, or the
flows folder itself) and from source text (``w.add_flow(text)``, or
``w.start(text)`` directly); child flows are found by name among them.

Time: ``run_until_idle()`` runs everything that can happen *now* (no time is
skipped); ``advance("1h")`` moves the clock, firing each timer due on the way at
its own time; ``run_to_end(id)`` skips from timer to timer until the workflow
ends (raising ``Stuck`` if it waits for something nobody will send). A jump that
makes a workflow's timer due is recorded in its history as ``TimeSkipped``.
See docs/testing.md.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

from localflow.clock import VirtualClock
from localflow.core import events as ev
from localflow.core.replay import replay
from localflow.core.state import WorkflowState
from localflow.engine import Engine
from localflow.runner.scripted import ScriptedRunner
from localflow.runner.local import LocalRunner
from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec
from localflow.store.memory import MemoryStore
from localflow.supervisor.executor import Executor
from localflow.supervisor.wakeups import Wakeups

__all__ = ["world", "World", "Stuck", "succeed", "fail", "timed_out", "hang", "AttemptSpec", "AttemptOutcome",
           "DEFAULT_START_MS"]

DEFAULT_START_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z: every world starts here unless told otherwise
_PASS_S = 0.02  # how long one pass waits for an activity to report (real time)

Outcome = Union[AttemptOutcome, None]  # None: runs until cancelled
Script = Union[AttemptOutcome, "_Hang", Sequence[Union[AttemptOutcome, "_Hang"]], Callable[[AttemptSpec], Any]]


class Stuck(AssertionError):
    """The workflow is not finished, nothing runs, and no timer is left to skip to."""


# --- outcomes ---------------------------------------------------------------------------------------


def succeed(result: Any = None) -> AttemptOutcome:
    """The attempt exits 0 and ``result`` is what it printed (its JSON result)."""
    return AttemptOutcome(True, result=result)


def fail(message: str = "failed", exit_code: Union[int, None] = 1, kind: str = "exit",
         type: Union[str, None] = None) -> AttemptOutcome:  # noqa: A002 - the history's own word
    """The attempt fails: by default as a process exiting 1 would (``catch exit 1``); ``type`` is
    the error type an activity reports (``catch error NAME``); ``kind`` "timeout" is a timeout."""
    error: dict[str, Any] = {"kind": kind, "message": message, "exit_code": exit_code}
    if type is not None:
        error["type"] = type
    return AttemptOutcome(False, error=error)


def timed_out(message: str = "timed out") -> AttemptOutcome:
    """The attempt ran past its ``timeout`` (what ``catch timeout`` catches)."""
    return fail(message, exit_code=None, kind="timeout")


class _Hang:
    def __repr__(self) -> str:
        return "hang"


hang = _Hang()
"""Not an outcome: the attempt keeps running until it is cancelled (a race it loses, a cancel)."""


# --- the world --------------------------------------------------------------------------------------


@contextmanager
def world(flows: Union[str, Path, None] = None, activities: Union[Mapping[str, Script], Callable, None] = None,
          *, real_activities: bool = False, start_ms: int = DEFAULT_START_MS,
          timeout_s: float = 30.0) -> Iterator["World"]:
    """A world to run workflows in; everything it made is stopped and removed on exit.

    ``flows``: a home holding ``flows/``, or a flows folder itself (None: only flows added as
    text). ``activities``: per step name (``"charge"``; a loop's ``"pack[0]"`` is found as
    ``"pack"`` too) an outcome, a list of outcomes (one per attempt, the last one repeats), or a
    callable given the ``AttemptSpec`` and returning an outcome (or any other value: it succeeds
    with it); or one callable for every step. Undo commands run as step ``"undo:NAME"``. A step that is not scripted fails
    (kind ``script``), unless ``real_activities`` runs it as a real process. ``timeout_s`` is the
    real time any one ``run_*`` call may take.
    """
    made = World(flows, activities, real_activities=real_activities, start_ms=start_ms, timeout_s=timeout_s)
    try:
        yield made
    finally:
        made.close()


class World:
    """Use ``world(...)``: the engine, executor, clock and runner of one test. See the module doc."""

    def __init__(self, flows: Union[str, Path, None], activities: Union[Mapping[str, Script], Callable, None],
                 *, real_activities: bool, start_ms: int, timeout_s: float) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="localflow-test-"))
        self.timeout_s = timeout_s
        _copy_flows(flows, self.home / "flows", everything=real_activities)
        self.clock = VirtualClock(start_ms)
        store = None if real_activities else MemoryStore()  # real processes log under a real var/
        self.engine = Engine(self.home, clock=self.clock, store=store)
        if real_activities:
            self.engine.ensure_layout()
        # real activities: run steps as processes and call steps on a worker pool, as the supervisor does
        self._scripts = _Scripts(activities, real=LocalRunner(self.home) if real_activities else None)
        self.executor = Executor(self.engine, runner=self._scripts, wakeups=Wakeups(None),
                                 on_events=self._on_events, waiter=self._wait)

    def _on_events(self, workflow_id: str, events: list) -> None:
        # A clock that stands still lags the history by a ms per transaction: keep up, so that
        # advance("3h") reaches a 3h timer's fire_at, without calling it skipped.
        self.clock.catch_up(max(e.ts for e in events))
        self._scripts.reported(workflow_id, events)

    def _busy(self) -> bool:
        """Something runs that will report by itself: a real process or a scripted attempt whose
        outcome is being recorded. Attempts scripted to ``hang`` wait for a cancel: they do not
        count, so time may skip past them (their race's sleep wins)."""
        return any(not self._scripts.hangs(key) for key in self.executor.running_keys())

    def _wait(self, condition: threading.Condition, seconds: float, until_due: float) -> None:
        """The executor's wait: the virtual clock's, told the next wake-up even while hanging attempts run."""
        if until_due == float("inf") and not self._busy():
            at = self.executor.wakeups.next_at()
            if at is not None:
                until_due = max(0.0, (at - self.clock()) / 1000)
        self.clock.wait(condition, seconds, until_due)

    # --- flows and workflows ---------------------------------------------------------------------

    def add_flow(self, source: str) -> str:
        """Make a flow given as text startable by name (and as a child flow); returns its name."""
        match = re.search(r"^\s*flow\s+([A-Za-z_][A-Za-z0-9_]*)", source, flags=re.M)
        if match is None:
            raise ValueError("flow source must contain a `flow NAME` line")
        path = self.home / "flows" / f"{match.group(1)}.flow"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return match.group(1)

    def start(self, flow: str, input: Union[Mapping[str, Any], None] = None,  # noqa: A002 - as the CLI says
              id: Union[str, None] = None) -> str:  # noqa: A002
        """Start a workflow of ``flow`` (a flow name, or the flow's source text); returns its id.
        Nothing runs until a ``run_*`` or ``advance`` call."""
        name = self.add_flow(flow) if "\n" in flow else flow
        workflow_id = self.engine.start(name, dict(input or {}), id)
        self.executor.mark_dirty(workflow_id)
        return workflow_id

    def signal(self, workflow_id: str, name: str, data: Any = None) -> None:
        """Send a signal, as ``lf signal`` does (run the world to see what it does)."""
        self.engine.signal(workflow_id, name, data)
        self.executor.mark_dirty(workflow_id)

    def cancel(self, workflow_id: str, reason: str = "cancelled by the test") -> None:
        self.engine.cancel(workflow_id, reason)
        self.executor.mark_dirty(workflow_id)

    # --- running -----------------------------------------------------------------------------------

    def run_until_idle(self) -> None:
        """Run everything that can happen without time passing: decisions, activities (scripted ones
        end at once), timers already due. Returns when nothing runs and nothing is due."""
        self._pump(lambda: False, limit_ms=self.clock())

    def advance(self, duration: Union[str, int, float, timedelta]) -> None:
        """Move the clock ``duration`` ahead ("90s", "1h", "2d", ms as a number, a timedelta),
        firing each timer due on the way at its own time, then ``run_until_idle``."""
        target = self.clock() + _to_ms(duration)
        self._pump(lambda: False, limit_ms=target)
        self.clock.skip_to(target)
        self.run_until_idle()

    def run_to_end(self, workflow_id: str) -> WorkflowState:
        """Run, skipping time from timer to timer, until ``workflow_id`` has ended; its final state.
        Raises ``Stuck`` if it waits for something (a signal) nobody will send."""
        def ended() -> bool:
            state = self.engine.state_of(workflow_id)
            return (state.terminal or state.divergence is not None) and not self._busy()

        self.executor.mark_dirty(workflow_id)
        if not self._pump(ended, limit_ms=None):
            state = self.engine.state_of(workflow_id)
            hanging = self._scripts.hanging()
            running = f"only attempts scripted to hang run ({', '.join(hanging)})" if hanging else "nothing runs"
            raise Stuck(f"{workflow_id} is {state.status} and nothing can move it on: {running} and no "
                        f"timer is pending (waiting for a signal?). Last events: "
                        f"{[type(e).__name__ for e in self.history(workflow_id)[-5:]]}")
        self.run_until_idle()  # what its end set off (a parent told, a loser's cancellation recorded)
        return self.engine.state_of(workflow_id)

    def _pump(self, until: Callable[[], bool], limit_ms: Union[int, None]) -> bool:
        """Drive the executor until ``until()`` (True) or nothing more can happen before ``limit_ms``
        (False; None: no limit, time skips to every timer)."""
        self.clock.limit_ms = limit_ms
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                if until():
                    return True
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the world did not settle within {self.timeout_s:g}s of real time")
                busy = self._busy()  # read before waiting: only this thread starts attempts
                woken = self.executor.wait_for_work(max_wait_s=_PASS_S)
                for workflow_id in sorted(woken):
                    self.executor.reconcile(workflow_id)
                if self._scripts.errors:
                    error = self._scripts.errors.pop(0)
                    raise AssertionError(f"an activity script raised: {error!r}") from error
                if woken or busy:
                    continue
                at = self.executor.wakeups.next_at()
                if at is None or (limit_ms is not None and at > limit_ms):
                    return until()
        finally:
            self.clock.limit_ms = None

    # --- looking -----------------------------------------------------------------------------------

    def now(self) -> int:
        """The virtual time, epoch ms."""
        return self.clock()

    @property
    def skipped_ms(self) -> int:
        """All the virtual time skipped so far."""
        return self.clock.skipped_ms

    def history(self, workflow_id: str) -> list[ev.Event]:
        """Every event of the workflow, in order (``localflow.core.events`` dataclasses)."""
        return self.engine.load(workflow_id).events

    def events(self, workflow_id: str, *types: Union[str, type]) -> list[ev.Event]:
        """The events of these types (names like "TimerFired", or classes); all without types."""
        names = {t if isinstance(t, str) else t.__name__ for t in types}
        return [e for e in self.history(workflow_id) if not names or type(e).__name__ in names]

    def count(self, workflow_id: str, event_type: Union[str, type]) -> int:
        return len(self.events(workflow_id, event_type))

    def state(self, workflow_id: str) -> WorkflowState:
        """The folded state: ``.status``, ``.result``, ``.error``, ``.steps``, ``.variables``, ..."""
        return self.engine.state_of(workflow_id)

    def result(self, workflow_id: str) -> Any:
        return self.state(workflow_id).result

    def workflows(self) -> list[str]:
        """Every workflow in the world (children included), by id."""
        return self.engine.workflow_ids()

    @property
    def attempts(self) -> list[AttemptSpec]:
        """Every attempt started so far, scripted or real, in order (``.step``, ``.attempt``, ``.stdin``...)."""
        return self._scripts.started_specs()

    def assert_replays(self, workflow_id: str, flow: Union[str, None] = None) -> WorkflowState:
        """Replay the history and check every decision (``lf replay``); with ``flow`` (a flow name or
        source text: an edited definition) check it against that instead. Raises
        ``NondeterminismError`` naming the first difference."""
        events = self.history(workflow_id)
        if flow is None:
            return replay(events)
        from localflow.dsl import parse_flow

        source = flow if "\n" in flow else self.engine.find_flow(flow).read_text(encoding="utf-8")
        return replay(events, parse_flow(source, "<test>"), source=source)

    # --- the end -----------------------------------------------------------------------------------

    def close(self) -> None:
        self.executor.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# --- helpers ----------------------------------------------------------------------------------------


class _Scripts:
    """The runner of a world: a scripted outcome per step, or a real process for the rest."""

    def __init__(self, activities: Union[Mapping[str, Script], Callable, None],
                 real: Union[LocalRunner, None]) -> None:
        self._by_step = dict(activities) if isinstance(activities, Mapping) else {}
        self._every = activities if callable(activities) and not isinstance(activities, Mapping) else None
        self._real = real
        self._counts: dict[str, int] = {}
        self._scripted = ScriptedRunner(self._outcome)  # the in-memory runner the unit tests use
        self._started: list[AttemptSpec] = []
        self._live: dict[tuple, bool] = {}  # (workflow id, step, attempt) -> scripted to hang
        self.errors: list[BaseException] = []  # what the test's script functions raised
        self._guard = threading.Lock()

    def _script_for(self, step: str) -> tuple[Union[str, None], Script]:
        for key in (step, step.split("[", 1)[0]):
            if key in self._by_step:
                return key, self._by_step[key]
        return None, None

    def start(self, spec: AttemptSpec):
        with self._guard:
            self._started.append(spec)
        key, _ = self._script_for(spec.step)
        if key is None and self._every is None and self._real is not None:
            with self._guard:
                self._live[(spec.workflow_id, spec.step, spec.attempt)] = False
            return self._real.start(spec)
        return self._scripted.start(spec)  # it asks _outcome, which notes whether the attempt hangs

    def close(self) -> None:
        """The executor stops: so do the real activities' worker processes."""
        if self._real is not None:
            self._real.close()

    def reported(self, workflow_id: str, events: list) -> None:
        """An attempt's outcome is in its history: it no longer runs."""
        with self._guard:
            for event in events:
                if isinstance(event, (ev.ActivityCompleted, ev.ActivityFailed)):
                    self._live.pop((workflow_id, event.step, event.attempt), None)

    def hanging(self) -> list[str]:
        with self._guard:
            return [f"{wid}: {step} attempt {n}" for (wid, step, n), hangs in self._live.items() if hangs]

    def hangs(self, key: tuple) -> bool:
        """Whether the attempt (workflow id, step, number) is one scripted to hang (it reports only when
        cancelled); an attempt whose thread still carries out what its outcome led to does not."""
        with self._guard:
            return self._live.get(key) is True

    def _outcome(self, spec: AttemptSpec) -> Outcome:
        outcome = self._scripted_outcome(spec)
        with self._guard:
            self._live[(spec.workflow_id, spec.step, spec.attempt)] = outcome is None
        return outcome

    def _scripted_outcome(self, spec: AttemptSpec) -> Outcome:
        key, script = self._script_for(spec.step)
        if key is None:
            if self._every is None:
                return fail(f"localflow.testing: no scripted outcome for step {spec.step!r}", exit_code=None,
                            kind="script")
            script = self._every
        if isinstance(script, (list, tuple)):
            with self._guard:
                index = self._counts.get(key, 0)
                self._counts[key] = index + 1
            script = script[min(index, len(script) - 1)] if script else hang
        elif callable(script) and not isinstance(script, _Hang):
            try:
                script = script(spec)
            except Exception as exc:  # the test's own bug: fail the attempt, and raise it from run_*
                with self._guard:
                    self.errors.append(exc)
                return fail(f"localflow.testing: the script for step {spec.step!r} raised {exc!r}",
                            exit_code=None, kind="script")
        if isinstance(script, _Hang):
            return None
        return script if isinstance(script, AttemptOutcome) else succeed(script)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return self._real.kill_orphans(tag, pid, proc_start) if self._real is not None else 0

    def started_specs(self) -> list[AttemptSpec]:
        with self._guard:
            return list(self._started)


def _copy_flows(source: Union[str, Path, None], target: Path, everything: bool) -> None:
    """Copy a flows folder (given as itself or as the home holding it) into the world's home:
    all of it for real activities (their scripts live there), only the .flow files otherwise."""
    target.mkdir(parents=True, exist_ok=True)
    if source is None:
        return
    root = Path(source)
    if (root / "flows").is_dir() and not any(root.glob("*.flow")):
        root = root / "flows"
    if not root.is_dir():
        raise FileNotFoundError(f"no flows folder at {source} (give a home holding flows/, or flows/ itself)")
    if everything:
        shutil.copytree(root, target, dirs_exist_ok=True, symlinks=True)
        return
    for path in list(root.glob("*.flow")) + list(root.glob("*/*.flow")):
        destination = target / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _to_ms(duration: Union[str, int, float, timedelta]) -> int:
    if isinstance(duration, timedelta):
        return int(duration.total_seconds() * 1000)
    if isinstance(duration, (int, float)):
        return int(duration)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r} (write 500ms, 30s, 5m, 1h or 2d)")
    return int(float(match.group(1)) * _UNITS_MS[match.group(2)])
