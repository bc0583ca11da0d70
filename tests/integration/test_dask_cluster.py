"""Activities on a real Dask cluster (`lf supervise --executor dask`), on loopback, with real processes.

One `dask scheduler` and two `dask worker` processes (one process of 4 threads each) are
started for the module; each test runs a flow of `call` steps on them under a real
supervisor and checks the history, the logs and the process table: a fan-out of 20, a
worker killed mid-run, the supervisor killed with SIGKILL mid-run and restarted, a cancel
while tasks run (and wait) remotely, a timeout enforced remotely, the scheduler down at
start, and (on a cluster of its own) the scheduler restarted mid-run. docs/cluster.md describes what
these tests observe. Skipped (with the reason) where the dask extra is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from conftest import REPO, alive, history_records, lf, wait_for, write_flow

pytest.importorskip("distributed", reason="the dask extra is not installed: pip install 'localflow[dask]'")

pytestmark = pytest.mark.slow

DASK = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")

FNS = """
    import os, time
    from pathlib import Path

    def nap(i, seconds, pids=None):
        if pids:
            Path(pids, f"{i}.{os.getpid()}").write_text("")
        print("nap", i, os.environ["LF_IDEMPOTENCY_KEY"], os.environ["LF_ATTEMPT"])
        time.sleep(seconds)
        return {"i": i}
"""

SLOW = """flow Slow
  input n = 2
  input seconds = 3
  for i in range(n) parallel 4:
    step nap:
      call fns.nap(i=i, seconds=seconds)
      retry 6 every 1s
  return "ok"
"""

TIMED = """flow Timed
  input pids = ""
  step nap:
    call fns.nap(i=0, seconds=60, pids=pids)
    timeout 1s
  return "ok"
"""

FAN = """flow Fan
  input n = 20
  input seconds = 0.3
  input pids = ""
  for i in range(n) parallel 20:
    step nap:
      call fns.nap(i=i, seconds=seconds, pids=pids)
      retry 2 every 100ms
  return "ok"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A scheduler and its workers, as real processes; workers are started again when a test killed one."""

    def __init__(self, tmp, workers: int = 2) -> None:
        self.tmp = tmp
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   self.address.rsplit(":", 1)[1], "--no-dashboard"])
        self.workers: dict[str, subprocess.Popen] = {}
        self.ensure_workers(workers)

    def _spawn(self, name: str, argv: list) -> subprocess.Popen:
        log = open(self.tmp / f"{name}-{time.monotonic_ns()}.log", "w")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp)

    def addresses(self) -> set:
        from distributed import Client

        with Client(self.address, timeout=10, set_as_default=False) as client:
            return set(client.scheduler_info(n_workers=-1)["workers"])

    def ensure_workers(self, count: int = 2, fresh: bool = False) -> None:
        if fresh:  # (workers that lost their scheduler: gone, or on their way out)
            for process in self.workers.values():
                process.kill()
                process.wait()
            self.workers = {}
        self.workers = {a: p for a, p in self.workers.items() if p.poll() is None}
        for _ in range(count - len(self.workers)):
            port = free_port()
            process = self._spawn("worker", [DASK, "worker", self.address, "--nworkers", "1", "--nthreads", "4",
                                             "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                                             "--worker-port", str(port)])
            self.workers[f"tcp://127.0.0.1:{port}"] = process
        wait_for(lambda: set(self.workers) <= self.addresses(), timeout=60, interval=0.3, what="dask workers")

    def restart_scheduler(self, pause: float = 0) -> None:
        """Kill the scheduler and start a new one at the same address (its workers close with it)."""
        self.scheduler.kill()
        self.scheduler.wait()
        time.sleep(pause)
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   self.address.rsplit(":", 1)[1], "--no-dashboard"])

    def close(self) -> None:
        for process in [*self.workers.values(), self.scheduler]:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if DASK is None:
        pytest.skip("the `dask` command is not installed (the dask extra)")
    started = Cluster(tmp_path_factory.mktemp("dask"))
    yield started
    started.close()


@pytest.fixture
def fan_home(home):
    path = home / "flows" / "fns.py"
    path.write_text(textwrap.dedent(FNS))
    write_flow(home, "Fan", FAN)
    write_flow(home, "Slow", SLOW)
    write_flow(home, "Timed", TIMED)
    (home / "pids").mkdir()
    return home


def on_cluster(supervisor, cluster, *extra):
    return supervisor("--executor", "dask", "--scheduler", cluster.address, "--grace", "1", *extra)


def records(home, workflow_id, type_):
    return [r for r in history_records(home, workflow_id) if r["type"] == type_]


def status(home, workflow_id):
    types = {r["type"] for r in history_records(home, workflow_id)}
    return next((t for t in ("WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled") if t in types), None)


def start(home, *args, flow="Fan"):
    done = lf(home, "start", flow, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def each_step_completed_once(home, workflow_id, n):
    completed = Counter(r["step"] for r in records(home, workflow_id, "ActivityCompleted"))
    assert completed == Counter({f"nap[{i}]": 1 for i in range(n)})


def remote_pids(home):
    return {int(name.split(".")[1]) for name in os.listdir(home / "pids")}


def test_a_parallel_fan_out_of_callables_runs_on_the_cluster_and_says_where(fan_home, supervisor, cluster):
    sup = on_cluster(supervisor, cluster)
    wf = start(fan_home, "--id", "fan20")
    wait_for(lambda: status(fan_home, wf), timeout=60, what="the fan-out to end")
    assert status(fan_home, wf) == "WorkflowCompleted"
    each_step_completed_once(fan_home, wf, 20)
    started = records(fan_home, wf, "ActivityStarted")
    assert len(started) == 20 and {r["worker"] for r in started} <= set(cluster.workers)
    # the call's print reached the attempt's log here, with the same idempotency key as ever
    assert (fan_home / "var/workflows/fan20/logs/nap[3].1.out").read_text() == "nap 3 fan20:nap[3] 1\n"
    from localflow.engine import Engine

    state = Engine(fan_home).state_of(wf)  # what `lf inspect` renders: the attempt's worker
    assert state.steps["nap[0]"].last.worker in cluster.workers
    assert f"dask: connected to {cluster.address} (2 workers)" in sup.output()


def test_cancel_stops_the_work_running_on_the_workers_and_withdraws_what_waits(fan_home, supervisor, cluster):
    on_cluster(supervisor, cluster)
    # 10 attempts on 8 Dask threads: 8 run, 2 wait in the scheduler's queue
    wf = start(fan_home, "--id", "cancel1", "-i", "n=10", "-i", "seconds=60", "-i", f"pids={fan_home / 'pids'}")
    wait_for(lambda: len(records(fan_home, wf, "ActivityStarted")) == 8 and len(remote_pids(fan_home)) == 8,
             timeout=30, what="8 remote attempts")
    pids = remote_pids(fan_home)
    assert lf(fan_home, "cancel", wf).returncode == 0
    wait_for(lambda: status(fan_home, wf), timeout=30, what="the cancel")
    assert status(fan_home, wf) == "WorkflowCancelled"
    failed = records(fan_home, wf, "ActivityFailed")
    assert len(failed) == 10 and {f["error"]["kind"] for f in failed} == {"cancelled"}
    # each running attempt was recorded once its task said its child was gone; each waiting one
    # was withdrawn (its claim taken back) and never started anywhere
    assert [p for p in pids if alive(p)] == []
    assert all("did not confirm" not in f["error"]["message"] for f in failed)
    time.sleep(1)
    assert len(remote_pids(fan_home)) == 8 and len(records(fan_home, wf, "ActivityStarted")) == 8


def test_a_timeout_stops_the_remote_process_before_it_is_recorded(fan_home, supervisor, cluster):
    on_cluster(supervisor, cluster)
    wf = start(fan_home, "--id", "timed1", "-i", f"pids={fan_home / 'pids'}", flow="Timed")
    wait_for(lambda: status(fan_home, wf), timeout=30, what="the timeout")
    assert status(fan_home, wf) == "WorkflowFailed"
    [failed] = records(fan_home, wf, "ActivityFailed")
    assert failed["error"]["kind"] == "timeout" and "did not confirm" not in failed["error"]["message"]
    [pid] = remote_pids(fan_home)
    assert not alive(pid)


def test_supervisor_killed_mid_run_remote_work_stops_and_a_restart_retries_each_step_once(
        fan_home, supervisor, cluster):
    sup = on_cluster(supervisor, cluster)
    wf = start(fan_home, "--id", "crash1", "-i", "n=6", "-i", "seconds=4", "-i", f"pids={fan_home / 'pids'}")
    wait_for(lambda: len(records(fan_home, wf, "ActivityStarted")) == 6 and len(remote_pids(fan_home)) == 6,
             timeout=30, what="6 remote attempts")
    pids = remote_pids(fan_home)
    sup.stop(signal.SIGKILL)
    # Given no supervisor at all: the scheduler drops its client's tasks and each task kills its child
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="the orphaned remote calls to stop")
    assert status(fan_home, wf) is None
    restarted = on_cluster(supervisor, cluster)
    wait_for(lambda: status(fan_home, wf), timeout=60, what="the workflow to end after the restart")
    assert status(fan_home, wf) == "WorkflowCompleted"
    each_step_completed_once(fan_home, wf, 6)
    failed = records(fan_home, wf, "ActivityFailed")
    assert sorted(f["step"] for f in failed) == [f"nap[{i}]" for i in range(6)]
    assert {f["error"]["kind"] for f in failed} == {"interrupted"}
    assert all("on Dask worker tcp://" in f["error"]["message"] for f in failed)
    assert "was orphaned" in restarted.output()


def test_a_worker_killed_mid_run_fails_its_attempts_and_retries_run_elsewhere_once(fan_home, supervisor, cluster):
    on_cluster(supervisor, cluster)
    wf = start(fan_home, "--id", "lost1", "-i", "n=8", "-i", "seconds=4", "-i", f"pids={fan_home / 'pids'}")
    wait_for(lambda: len(records(fan_home, wf, "ActivityStarted")) == 8, timeout=30, what="8 remote attempts")
    victim = Counter(r["worker"] for r in records(fan_home, wf, "ActivityStarted")).most_common(1)[0][0]
    on_victim = {r["step"] for r in records(fan_home, wf, "ActivityStarted") if r["worker"] == victim}
    wait_for(lambda: len(remote_pids(fan_home)) == 8, timeout=30, what="8 remote processes")
    ran_on_victim = {int(n.split(".")[1]) for n in os.listdir(fan_home / "pids") if f"nap[{n.split('.')[0]}]" in on_victim}
    cluster.workers[victim].kill()
    # the killed worker's localflow workers (its calls) die with it: their lifeline closed
    wait_for(lambda: not any(alive(p) for p in ran_on_victim), timeout=10, what="the victim's calls to die")
    wait_for(lambda: status(fan_home, wf), timeout=60, what="the workflow to end")
    assert status(fan_home, wf) == "WorkflowCompleted"
    each_step_completed_once(fan_home, wf, 8)
    failed = records(fan_home, wf, "ActivityFailed")
    assert {f["step"] for f in failed} == on_victim
    assert {f["error"].get("type") for f in failed} == {"WorkerLost"}
    assert all(victim in f["error"]["message"] for f in failed)
    retried = [r for r in records(fan_home, wf, "ActivityStarted") if r["attempt"] == 2]
    assert {r["step"] for r in retried} == on_victim and victim not in {r["worker"] for r in retried}
    cluster.ensure_workers()


def test_scheduler_down_at_start_fails_attempts_with_a_clear_error_never_a_hang(fan_home, supervisor):
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    sup = supervisor("--executor", "dask", "--scheduler", nowhere)
    assert sup.process.poll() is None
    wf = start(fan_home, "--id", "down1", "-i", "n=2")
    wait_for(lambda: status(fan_home, wf), timeout=60, what="the workflow to end")
    assert status(fan_home, wf) == "WorkflowFailed"
    # the step that used up its 3 attempts (retry 2) failed the workflow; the other may have been
    # waiting for its retry then (cancelled before its next attempt started)
    tried = [f for f in records(fan_home, wf, "ActivityFailed") if f["error"]["kind"] != "cancelled"]
    per_step = Counter(f["step"] for f in tried)
    assert set(per_step) == {"nap[0]", "nap[1]"} and sorted(per_step.values())[-1] == 3
    assert all(1 <= count <= 3 for count in per_step.values())
    assert {(f["error"]["kind"], f["error"].get("type")) for f in tried} == {("spawn", "SchedulerUnreachable")}
    # each attempt tried to connect itself (no refusal remembered from an earlier one)
    assert all(f"could not reach the Dask scheduler at {nowhere}" in f["error"]["message"] for f in tried)
    assert f"dask: could not reach the Dask scheduler at {nowhere}" in sup.output()
    assert "Traceback" not in sup.output()


def test_executor_dask_without_a_scheduler_is_a_usage_error(fan_home):
    done = lf(fan_home, "supervise", "--executor", "dask")
    assert done.returncode == 2 and "--executor dask needs --scheduler" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_scheduler_restarted_mid_run_or_idle_fails_only_the_running_attempts_and_later_ones_are_heard(
        fan_home, supervisor, tmp_path):
    own = Cluster(tmp_path, workers=1)  # (its own: its scheduler is restarted)
    try:
        on_cluster(supervisor, own)
        first = start(fan_home, "--id", "restart1", flow="Slow")
        wait_for(lambda: len(records(fan_home, first, "ActivityStarted")) == 2, timeout=30, what="2 remote attempts")
        own.restart_scheduler()  # mid-run
        own.ensure_workers(1, fresh=True)
        wait_for(lambda: status(fan_home, first), timeout=60, what="the first workflow to end")
        own.restart_scheduler(pause=1)  # while idle: the client reconnects with no attempt running
        own.ensure_workers(1, fresh=True)
        # Given the reconnected client: a workflow runs and its tasks are heard while they run (the
        # topic was subscribed again on the new scheduler); one started meanwhile swaps no client
        # from under it (which would cancel its tasks)
        second = start(fan_home, "--id", "restart2", flow="Slow")
        wait_for(lambda: status(fan_home, second) or len(records(fan_home, second, "ActivityStarted")) == 2,
                 timeout=30, what="the second workflow's attempts to start")
        third = start(fan_home, "--id", "restart3", flow="Slow")
        wait_for(lambda: status(fan_home, second) and status(fan_home, third), timeout=60, what="both to end")
    finally:
        own.close()
    for wf in (first, second, third):
        assert status(fan_home, wf) == "WorkflowCompleted"
        each_step_completed_once(fan_home, wf, 2)
    lost = records(fan_home, first, "ActivityFailed")
    assert {f["step"] for f in lost if f["error"].get("type") == "SchedulerLost" and f["attempt"] == 1} == \
        {"nap[0]", "nap[1]"}
    assert {f["error"].get("type") for f in lost} <= {"SchedulerLost", "SchedulerUnreachable", "NoWorkers"}
    assert records(fan_home, second, "ActivityFailed") == records(fan_home, third, "ActivityFailed") == []
    new_worker = set(own.workers)
    for wf in (second, third):
        history = history_records(fan_home, wf)
        for done in records(fan_home, wf, "ActivityCompleted"):
            [began] = [r for r in history if r["type"] == "ActivityStarted" and (r["step"], r["attempt"]) ==
                       (done["step"], done["attempt"])]
            assert began["worker"] in new_worker
            assert _ms(done["ts"]) - _ms(began["ts"]) >= 2000  # recorded while it ran: heard live


def _ms(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
