"""Crash at every k-th disk operation or spawn of a whole workflow life; a restart must finish it intact.

The way SQLite and etcd prove crash safety: count the operations a run makes that change the
disk or start work (localflow/faults.py hooks the store's write, fsync, rename, mkdir, unlink
and truncate, and the runner's spawns and calls), then run the same life again, killing
(SIGKILL, as kill -9) whichever process makes the k-th one, restart without faults, let it
finish, and check that nothing acknowledged was lost, nothing was done twice, every history
is intact, the end is the same as without the crash, and no process is left behind.

The life (flows below, real `lf` processes): `lf start`, a supervisor, a run step, a run step
that fails once and is retried on a durable timer, a durable sleep, a wait for a signal sent
with `lf signal`, a child flow whose second step fails so that the first is compensated
(undo) and the child fails, a catch in the parent, a Python `call` step on a worker, and the
parent's completion.

By default 12 crash points spread over 1..N are sampled (deterministic), and the first activity spawn,
worker start and call hand-over are always among them; `--all-crash-points`
runs every one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import alive, wait_for

from localflow import faults
from localflow.runner.proctree import attempt_tag
from localflow.store import history

LIFE = r"""flow Life
  input order = "o-1"
  step prepare:
    run ["sh", "-c", "echo $$ >> pids; if [ -e slow ]; then sleep 30; fi; echo '{\"ready\": true}'"]
  step reserve:
    run ["sh", "-c", "echo $$ >> pids; [ \"$LF_ATTEMPT\" -ge 2 ] || { echo busy >&2; exit 1; }; echo \"{\\\"reservation\\\": \\\"R-$1\\\"}\"", "sh", order]
    retry 3 every 200ms
  sleep 300ms
  step approval:
    wait signal approve
  step ship:
    flow ShipLife
    input {"order": order}
    catch:
      set shipping = "compensated"
  step total:
    call lifesteps.total(order=order, amount=21)
  return {"order": order, "ready": prepare.result.ready, "reservation": reserve.result.reservation, "approved_by": approval.result.by, "shipping": shipping, "total": total.result}
"""

SHIP = r"""flow ShipLife
  input order
  step pack:
    run ["sh", "-c", "echo $$ >> pids; echo \"{\\\"box\\\": \\\"B-$1\\\"}\"", "sh", order]
    undo ["sh", "-c", "echo $$ >> pids; echo unpacked $1 >> undone.log", "sh", order]
  step label:
    run ["sh", "-c", "echo $$ >> pids; echo no labels left >&2; exit 3"]
  return "shipped"
"""

STEPS = """def total(order, amount):
    return {"order": order, "total": amount * 2}
"""

WID, CHILD = "w", "w.ship"
RESULT = {"order": "o-1", "ready": True, "reservation": "R-o-1", "approved_by": "ann", "shipping": "compensated",
          "total": {"order": "o-1", "total": 42}}
COMPLETED = {WID: Counter({"prepare": 1, "reserve": 1, "total": 1}), CHILD: Counter({"pack": 1, "undo:pack": 1})}
SAMPLES = 12
PARALLEL = max(2, min(4, os.cpu_count() or 1))


def make_home(root: Path) -> Path:
    home = root / "home"
    (home / "flows").mkdir(parents=True)
    (home / "flows" / "Life.flow").write_text(LIFE)
    (home / "flows" / "ShipLife.flow").write_text(SHIP)
    (home / "flows" / "lifesteps.py").write_text(STEPS)
    for path in (home / "flows").iterdir():  # settled files: registered at once, not when they look settled
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    return home


def environment(spec: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    env["COLUMNS"] = "200"
    if spec:
        env[faults.ENV] = spec
    return env


def run_lf(home: Path, spec: str | None, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localflow", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=60, cwd=home, env=environment(spec))


class Supervisor:
    """`lf supervise` with (or without) LF_FAULTS; its output goes to a file."""

    def __init__(self, home: Path, spec: str | None) -> None:
        self.log_path = home.parent / f"supervisor-{time.monotonic_ns()}.log"
        with open(self.log_path, "w") as log:
            argv = [sys.executable, "-m", "localflow", "--home", str(home), "supervise", "--rescan", "1",
                    "--workers", "1"]
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=home,
                                            env=environment(spec))

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_started(self) -> None:
        wait_for(lambda: "supervising" in self.output() or self.process.poll() is not None, what="supervisor start")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def records(home: Path, workflow_id: str) -> list[dict]:
    """The history (a torn tail ignored); [] if there is none. Raises on a bad checksum or seq."""
    try:
        return history.read(home / "var" / "workflows" / workflow_id / "history.jsonl").records
    except FileNotFoundError:
        return []


def sleep_fired(recs: list[dict]) -> bool:
    timers = {r["timer"] for r in recs if r["type"] == "TimerStarted" and r.get("purpose") == "sleep"}
    return any(r["type"] == "TimerFired" and r["timer"] in timers for r in recs)


def ended(recs: list[dict]) -> bool:
    return bool(recs) and recs[-1]["type"] in ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled",
                                               "WorkflowTerminated")


class Life:
    """Drives the life once: its processes get ``spec`` as LF_FAULTS until one of them crashes (only the
    first supervisor with ``supervisor_only``), then the rest runs without faults.

    A supervisor that exits is started again (without faults): after a crash, or, with ``exits``,
    after an exit of its own (tests/crash/test_io_faults.py; each is kept in ``exits``)."""

    def __init__(self, home: Path, spec: str | None, supervisor_only: bool = False,
                 exits: list | None = None) -> None:
        self.home = home
        self.spec = spec
        self.supervisor_only = supervisor_only
        self.exits = exits  # (exit code, output) of supervisors that exited by themselves
        self.crashed: list[str] = []  # which process was killed by its crash point
        self.acked: list[str] = []  # commands that reported success (exit 0)
        self.signals_sent = 0
        self.supervisors: list[Supervisor] = []

    def env_spec(self, supervisor: bool = False) -> str | None:
        if self.crashed or (self.supervisor_only and (not supervisor or self.supervisors)):
            return None
        return self.spec

    def command(self, what: str, *args: str) -> subprocess.CompletedProcess:
        done = run_lf(self.home, self.env_spec(), *args)
        if done.returncode == -signal.SIGKILL:
            self.crashed.append(what)
        return done

    def supervisor(self) -> Supervisor:
        sup = Supervisor(self.home, self.env_spec(supervisor=True))
        self.supervisors.append(sup)
        return sup

    def run(self, timeout: float = 90) -> None:
        try:
            self._run(timeout)
        finally:
            for sup in self.supervisors:
                sup.kill()

    def _run(self, timeout: float) -> None:
        self.start()
        sup = self.supervisor()
        signalled = False
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"the life did not end in {timeout}s: {self.describe()}"
            if sup.process.poll() is not None:
                if self.exits is not None and sup.process.returncode != -signal.SIGKILL:
                    self.exits.append((sup.process.returncode, sup.output()))
                else:
                    assert sup.process.returncode == -signal.SIGKILL, \
                        f"the supervisor exited with {sup.process.returncode}:\n{sup.output()[-3000:]}"
                    self.crashed.append("supervisor")
                sup = self.supervisor()  # the restart, without faults
            recs = records(self.home, WID)
            if not signalled:
                if any(r["type"] == "SignalReceived" for r in recs):
                    signalled = True  # sent by a command that crashed after making it durable
                elif sleep_fired(recs):
                    self.signals_sent += 1
                    done = self.command("lf signal", "signal", WID, "approve", "--data", '{"by": "ann"}')
                    if done.returncode == 0:
                        self.acked.append("signal")
                        signalled = True
                    else:  # a crash: looked at again (and sent again if it is not there) next time round
                        assert done.returncode == -signal.SIGKILL, done.stderr
            if ended(recs):
                break
            time.sleep(0.05)
        code = sup.stop()
        if code == -signal.SIGKILL and self.exits is None:  # its crash point was in its shutdown: once more
            self.crashed.append("supervisor (stopping)")
            sup = self.supervisor()
            sup.wait_started()
            assert sup.stop() != -signal.SIGKILL

    def start(self) -> None:
        done = self.command("lf start", "start", "Life", "--id", WID)
        if done.returncode == 0:
            self.acked.append("start")
            return
        assert done.returncode == -signal.SIGKILL, done.stderr
        again = self.command("lf start (again)", "start", "Life", "--id", WID)
        assert again.returncode == 0 or "already exists" in again.stderr, again.stderr
        if again.returncode == 0:
            self.acked.append("start")

    def crash_note(self) -> str:
        notes = [p.read_text().strip() for p in self.home.parent.glob("*.crash")]
        return " | ".join(notes) or "no crash"

    def describe(self) -> str:
        logs = "\n".join(f"--- {s.log_path.name}\n{s.output()[-2500:]}" for s in self.supervisors)
        return f"crashed: {self.crashed}; acked: {self.acked}; {self.crash_note()}\n{logs}"


def outcome(home: Path) -> dict:
    """How each workflow ended, and how often each step completed."""
    found = {}
    for workflow_id in (WID, CHILD):
        recs = records(home, workflow_id)
        assert recs, f"{workflow_id} has no history"
        assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1)), f"{workflow_id}: seq not contiguous"
        last = recs[-1]
        error = dict(last["error"]) if isinstance(last.get("error"), dict) else last.get("error")
        if error and isinstance(error.get("message"), str):
            # an attempt a crash interrupted is retried at once, and counted: "failed after 2 attempts"
            error["message"] = re.sub(r"after \d+ attempts?", "after N attempts", error["message"])
        found[workflow_id] = {
            "end": last["type"], "result": last.get("result"), "error": error,
            "completed": Counter(r["step"] for r in recs if r["type"] == "ActivityCompleted"),
        }
    return found


def leftover_processes(home: Path) -> list[str]:
    """Processes of this home still alive: activities (by their tag) or anything running in the home."""
    real = os.path.realpath(home)
    tag = ("LF_ATTEMPT_TAG=" + attempt_tag(home, "x", "x", 1).split(":")[0] + ":").encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or not alive(int(name)):
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
            with open(f"/proc/{name}/environ", "rb") as handle:
                tagged = any(entry.startswith(tag) for entry in handle.read().split(b"\0"))
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tagged or cwd == real or cwd.startswith(real + "/"):
            found.append(f"{name}: {cmd}")
    return found


def check(life: Life, baseline: dict) -> None:
    """Everything a crash anywhere must leave true once the life has been finished without faults."""
    home = life.home
    got = outcome(home)  # (every line's checksum and seq are checked by the read)
    for workflow_id, want in baseline.items():
        assert got[workflow_id] == want, f"{workflow_id} ended otherwise than without a crash: {got[workflow_id]}"
    recs = records(home, WID)
    assert recs[0]["type"] == "WorkflowStarted"  # (lf start, acknowledged or not, is in the history)
    signals = [r for r in recs if r["type"] == "SignalReceived"]
    assert len(signals) == 1, f"{len(signals)} signals recorded"
    if "signal" in life.acked:
        assert signals[0]["data"] == {"by": "ann"}
    workflows = home / "var" / "workflows"
    assert sorted(p.name for p in workflows.iterdir()) == [WID, CHILD], "a half-made workflow directory is left"
    assert not any((home / "var" / "timers").iterdir()), "timer markers left"
    wait_for(lambda: not leftover_processes(home), timeout=10, what=f"no processes left: {leftover_processes(home)}")


def sample(n: int, count: int = SAMPLES) -> list[int]:
    """``count`` crash points spread evenly over 1..n (deterministic), both ends included."""
    if n <= count:
        return list(range(1, n + 1))
    return sorted({1 + round(i * (n - 1) / (count - 1)) for i in range(count)})


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    """The uncrashed life: how it ends, and its operations (the count file)."""
    root = tmp_path_factory.mktemp("baseline")
    home = make_home(root)
    ops = root / "ops"
    life = Life(home, f"count:{ops}")
    life.run()
    assert not life.crashed and life.acked == ["start", "signal"], life.describe()
    ended_as = outcome(home)
    assert ended_as[WID]["end"] == "WorkflowCompleted" and ended_as[WID]["result"] == RESULT, ended_as
    assert ended_as[CHILD]["end"] == "WorkflowFailed", ended_as
    assert {w: e["completed"] for w, e in ended_as.items()} == COMPLETED
    check(life, ended_as)
    return {"outcome": ended_as, "ops": faults.records(ops)}


def crash_life(root: Path, point: str) -> tuple[Life, str]:
    """The life, crashing at ``point`` (``KIND:N``: the run's N-th operation of KIND, or of any kind)."""
    home = make_home(root)
    life = Life(home, f"count:{root / 'ops'},crash:{point}")
    life.run()
    return life, life.crash_note()


def test_crash_at_each_sampled_operation_of_a_life_loses_nothing(baseline, tmp_path, request):
    ops = baseline["ops"]
    n = len(ops)
    kinds = Counter(r.kind for r in ops)
    assert n > 50 and {"write", "fsync", "rename", "mkdir", "unlink", "spawn", "worker", "call"} <= set(kinds), kinds
    every = request.config.getoption("--all-crash-points")
    # Whatever the sample, by their own numbering (the worker starts on a thread of its own, so where it
    # falls among all operations varies): the window between spawning an activity's process and
    # recording its pid, the start of a worker, the hand-over of a call.
    points = [("any", k) for k in (range(1, n + 1) if every else sample(n))]
    points += [("spawn", 1), ("worker", 1), ("call", 1)]

    def one(point: tuple[str, int]) -> str:
        kind, k = point
        name = f"{kind}:{k}"
        root = tmp_path / name.replace(":", "-")
        root.mkdir()
        life, note = crash_life(root, f"{kind}:{k}")
        try:
            check(life, baseline["outcome"])
        except AssertionError as exc:
            return f"{name} FAILED: {exc}\n{life.describe()}"
        return f"{name} ok, crashed: {', '.join(life.crashed) or 'nothing (past the end of this run)'}; {note}"

    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(one, points))
    report = "\n".join([f"{n} operations ({dict(kinds)}); {len(points)} crash points in "
                        f"{time.monotonic() - started:.1f}s"] + results)
    print(report)
    failed = [r for r in results if "FAILED" in r]
    assert not failed, "\n\n".join(failed)
    crashed = sum("nothing (past" not in r for r in results)
    assert crashed >= len(points) - 2, report  # a run may make an operation or two fewer than the counted one


def test_crash_between_spawning_an_activity_and_recording_its_pid_kills_the_orphan(baseline, tmp_path):
    """The window README's Limits used to leave open: the process runs, the history knows no pid."""
    home = make_home(tmp_path)
    (home / "slow").touch()  # prepare sleeps 30s: the orphan is still there when the supervisor comes back
    assert run_lf(home, None, "start", "Life", "--id", WID).returncode == 0
    crashing = Supervisor(home, "crash:spawn:1")  # its first activity process: prepare, attempt 1
    try:
        assert crashing.process.wait(timeout=30) == -signal.SIGKILL, crashing.output()
    finally:
        crashing.kill()
    recs = records(home, WID)
    assert [r["type"] for r in recs if r.get("step") == "prepare"] == ["ActivityScheduled"]  # no pid recorded
    wait_for(lambda: (home / "pids").exists() and (home / "pids").read_text().strip(), what="the orphan's pid")
    orphan = int((home / "pids").read_text().split()[0])
    assert alive(orphan) and len(leftover_processes(home)) >= 2  # sh and its sleep, both tagged
    (home / "slow").unlink()

    life = Life(home, None)
    sup = life.supervisor()
    try:
        wait_for(lambda: not alive(orphan), timeout=15, what="the orphan killed")
        wait_for(lambda: "prepare attempt 1 was started but its pid never recorded; killed 2 processes of it"
                 in sup.output(), what="the supervisor to say so")  # (sh and its sleep)
        wait_for(lambda: sleep_fired(records(home, WID)), what="the sleep")
        assert run_lf(home, None, "signal", WID, "approve", "--data", '{"by": "ann"}').returncode == 0
        life.acked.append("signal")
        wait_for(lambda: ended(records(home, WID)), what="the end")
        assert sup.stop() == 0
    finally:
        sup.kill()
    check(life, baseline["outcome"])
    prepare = [(r["type"], r.get("attempt")) for r in records(home, WID) if r.get("step") == "prepare"]
    assert prepare == [("ActivityScheduled", 1), ("ActivityStarted", 1), ("ActivityCompleted", 1)]
