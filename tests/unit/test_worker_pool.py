"""The worker pool of `call` steps (localflow/runner/workers.py), driven directly: no engine, no history.

Each test gets a home in tmp_path with a module flows/fns.py, and a pool of real
worker processes (localflow/worker.py) that is closed, and its processes reaped,
afterwards.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from localflow.runner.subprocess_runner import AttemptSpec
from localflow.runner.workers import WorkerPool
from conftest import alive

FNS = textwrap.dedent("""
    import os, time

    NOT_A_FUNCTION = 42

    def pid(tag=None):
        return {"pid": os.getpid(), "tag": tag}

    def add(a, b):
        return a + b

    def wait_for_file(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        return os.getpid()

    def nap(seconds):
        time.sleep(seconds)
        return "rested"

    def boom():
        raise KeyError("missing")
""")


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "fns.py").write_text(FNS)
    (tmp_path / "var").mkdir()  # the runner creates the logs folder below var/, never var/ itself
    return tmp_path


@pytest.fixture
def make_pool(home):
    pools: list[WorkerPool] = []

    def make(size: int) -> WorkerPool:
        pool = WorkerPool(home, size)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        workers = list(pool._workers)
        pool.close()
        for worker in workers:
            worker.process.wait(timeout=10)


_counter = iter(range(1, 1_000_000))


def spec(home: Path, target: str, timeout_ms: int = 10_000, **kwargs) -> AttemptSpec:
    n = next(_counter)
    logs = home / "var" / "workflows" / "w" / "logs"
    return AttemptSpec(
        workflow_id="w", step=f"s{n}", attempt=1, argv=[], stdin=None, timeout_ms=timeout_ms, cwd=home,
        stdin_path=logs / f"s{n}.1.in", stdout_path=logs / f"s{n}.1.out", stderr_path=logs / f"s{n}.1.err",
        grace_s=0.5, call={"target": target, "kwargs": kwargs},
    )


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_sequential_calls_reuse_one_worker(home, make_pool):
    pool = make_pool(2)
    outcomes = [pool.start(spec(home, "fns:pid", tag=i)).wait() for i in range(8)]
    assert all(o.ok for o in outcomes)
    assert [o.result["tag"] for o in outcomes] == list(range(8))
    assert len({o.result["pid"] for o in outcomes}) == 1, "one worker served every call, one at a time"
    assert len(pool._workers) == 1, "no second worker was started for sequential calls"
    assert pool.start(spec(home, "fns:add", a=2, b=3)).wait().result == 5


def test_the_running_call_reports_its_workers_pid(home, make_pool):
    pool = make_pool(1)
    running = pool.start(spec(home, "fns:pid"))
    outcome = running.wait()
    assert outcome.result["pid"] == running.pid == running.pgid
    assert running.proc_start  # recorded so a successor can prove the pid is still the worker


def test_size_bounds_concurrency(home, make_pool, tmp_path):
    pool = make_pool(2)
    gates = [tmp_path / f"gate{i}" for i in range(3)]
    first = pool.start(spec(home, "fns:wait_for_file", path=str(gates[0])))
    second = pool.start(spec(home, "fns:wait_for_file", path=str(gates[1])))
    assert first.pid != second.pid

    third: list = []
    starter = threading.Thread(target=lambda: third.append(
        pool.start(spec(home, "fns:wait_for_file", path=str(gates[2])))), daemon=True)
    starter.start()
    starter.join(0.5)
    assert starter.is_alive() and third == [], "a third call must wait while both workers are busy"
    assert len(pool._workers) == 2

    gates[0].touch()
    assert first.wait().result == first.pid
    starter.join(5)
    assert third, "the third call starts once a worker is free"
    assert third[0].pid == first.pid, "it runs on the worker the first call freed"
    gates[1].touch()
    gates[2].touch()
    assert second.wait().ok and third[0].wait().result == first.pid
    assert len(pool._workers) == 2


def test_close_kills_every_worker(home, make_pool):
    pool = make_pool(3)
    workers = [pool.acquire() for _ in range(3)]  # three started
    for worker in workers:
        pool.release(worker)
    pids = [w.pid for w in workers]
    assert len(set(pids)) == 3
    assert all(alive(pid) for pid in pids)
    pool.close()
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), "close() leaves no worker running"
    with pytest.raises(OSError):
        pool.start(spec(home, "fns:pid"))


def test_close_with_a_busy_worker_kills_it_too(home, make_pool, tmp_path):
    pool = make_pool(1)
    running = pool.start(spec(home, "fns:wait_for_file", path=str(tmp_path / "never")))
    pool.close()
    assert wait_until(lambda: not alive(running.pid))
    outcome = running.wait()
    assert not outcome.ok and outcome.error["kind"] == "interrupted"


@pytest.mark.parametrize("target, words", [
    ("nosuchmodule:fn", "could not import nosuchmodule.fn: ModuleNotFoundError"),
    ("fns:nosuchfunction", "could not import fns.nosuchfunction: AttributeError"),
    ("fns", "could not import fns.: AttributeError"),  # no ':function' at all
    ("fns:NOT_A_FUNCTION", "fns.NOT_A_FUNCTION is not a function"),
    (":pid", "could not import .pid"),
])
def test_a_malformed_target_fails_as_spawn_and_keeps_the_worker(home, make_pool, target, words):
    pool = make_pool(1)
    outcome = pool.start(spec(home, target)).wait()
    assert not outcome.ok
    assert outcome.error["kind"] == "spawn"
    assert words in outcome.error["message"]
    assert outcome.error["exit_code"] is None
    worker_pid = next(iter(pool._workers)).pid
    assert pool.start(spec(home, "fns:pid")).wait().result["pid"] == worker_pid, "the worker serves the next call"


def test_an_exception_reports_its_type_and_message(home, make_pool):
    pool = make_pool(1)
    s = spec(home, "fns:boom")
    outcome = pool.start(s).wait()
    assert outcome.error == {"kind": "exception", "type": "KeyError", "message": "KeyError: 'missing'",
                             "exit_code": None}
    assert "Traceback" in s.stderr_path.read_text() and "KeyError" in s.stderr_path.read_text()


def test_wrong_arguments_are_an_exception(home, make_pool):
    pool = make_pool(1)
    outcome = pool.start(spec(home, "fns:add", a=1)).wait()
    assert outcome.error["kind"] == "exception" and outcome.error["type"] == "TypeError"
    assert "'b'" in outcome.error["message"]


def test_a_worker_killed_while_idle_is_replaced_on_the_next_acquire(home, make_pool):
    pool = make_pool(1)
    before = pool.start(spec(home, "fns:pid")).wait().result["pid"]
    [worker] = pool._workers
    os.kill(before, signal.SIGKILL)
    # gone for good: every thread of it has exited (its leader shows as a zombie a little earlier; a call
    # sent in that moment reaches a worker about to vanish and comes back "interrupted", to be retried)
    assert wait_until(lambda: worker.process.poll() is not None)
    outcome = pool.start(spec(home, "fns:pid")).wait()
    assert outcome.ok, outcome.error
    after = outcome.result["pid"]
    assert after != before
    assert [w.pid for w in pool._workers] == [after] and pool._count == 1


def test_a_timeout_kills_the_worker_and_the_pool_refills(home, make_pool):
    pool = make_pool(1)
    running = pool.start(spec(home, "fns:nap", timeout_ms=300, seconds=30))
    started = time.monotonic()
    outcome = running.wait()
    assert time.monotonic() - started < 5
    assert outcome.error["kind"] == "timeout" and "timed out after 0.3s" in outcome.error["message"]
    assert wait_until(lambda: not alive(running.pid))
    again = pool.start(spec(home, "fns:pid")).wait()
    assert again.ok and again.result["pid"] != running.pid


def test_cancel_kills_the_busy_worker(home, make_pool):
    pool = make_pool(1)
    running = pool.start(spec(home, "fns:nap", seconds=30))
    running.cancel("cancelled", "the workflow was cancelled")
    outcome = running.wait()
    assert outcome.error == {"kind": "cancelled", "message": "the workflow was cancelled", "exit_code": None}
    assert wait_until(lambda: not alive(running.pid))
    assert pool.start(spec(home, "fns:add", a=1, b=1)).wait().result == 2


def test_warm_starts_the_workers_ahead(home, make_pool):
    pool = make_pool(2)
    pool.warm()
    assert wait_until(lambda: len(pool._workers) == 2 and pool._idle.qsize() == 2)
    assert pool.start(spec(home, "fns:add", a=1, b=2)).wait().result == 3
    assert len(pool._workers) == 2


def test_a_worker_outlives_the_thread_that_started_it(home, make_pool):
    pool = make_pool(2)
    started = []

    def attempt():  # as the executor does: each attempt runs on a thread of its own, which then ends
        running = pool.start(spec(home, "fns:pid"))
        started.append(running.wait().result["pid"])
        time.sleep(0.5)  # the worker has armed its death signal by now

    # (a regression test: PR_SET_PDEATHSIG followed the *thread* that started a worker, so a worker died
    # when an attempt's thread ended, sometimes under a call; workers now watch a lifeline pipe instead)
    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    time.sleep(0.3)
    assert alive(started[0]), "the idle worker was killed when its starting thread ended"
