"""What runs on a Dask worker: one activity attempt, in a child process the task can kill.

The supervisor's ``DaskRunner`` (runner/dask_runner.py) submits ``run_attempt(payload)``;
this module is imported on the worker (localflow must be installed there, the same
version as the supervisor's). Dask cannot interrupt a running task
(dask/distributed#4694), so the work never runs in the task's own thread: a ``call``
goes to a pool of localflow worker processes kept by this Dask worker process
(runner/workers.py, one per Dask thread), a ``run`` step is a subprocess
(runner/subprocess_runner.py). The task only watches, and stops the work:

- when its Dask key is released: the supervisor cancelled the attempt (cancel,
  timeout seen there, the workflow no longer wants it), or the supervisor's client
  went away (a crash: the scheduler drops a vanished client's futures). The
  child's processes get SIGTERM, then SIGKILL after the grace period;
- at its own timeout and heartbeat timeout (enforced here, where the heartbeats are);
- when this Dask worker process dies: the pool's workers hold a lifeline pipe to it
  (localflow/worker.py) and kill their process group, so a ``call`` never outlives a
  killed worker. A ``run`` step's process has no such link: a Dask worker killed with
  SIGKILL leaves it running (docs/cluster.md says so); ``kill_orphan`` finds it by
  its tag when the supervisor reaches that worker again.

A retry is always a new, recorded attempt: the task first takes its attempt's claim (the
one token of a Dask ``Queue`` named after its key, which the supervisor put there); if Dask
runs the task a second time (it reschedules the tasks of a worker that died), or the
supervisor withdrew the attempt first, there is no token and the task returns
``{"rerun": true}`` without running anything.

It never raises (Dask would log its arguments, secret values filled in, with the error),
and the attempt's stdin file is unlinked as soon as the child has it open.

Messages to the supervisor go through ``Worker.log_event`` on the runner's topic:
``started`` (worker address, pid, start time), ``heartbeat`` (details, at most one a
second, the last one always comes back with the result) and ``ended`` (sent by every
task that took its claim, once its child is gone or was never started). The attempt's stdout and stderr are written to files in a temporary
folder on the worker and returned with the result (the last MiB of each).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Union

from localflow.runner.proctree import attempt_tag, kill_attempt
from localflow.runner.subprocess_runner import AttemptSpec, RunningAttempt
from localflow.runner.workers import WorkerPool

_LOG_TAIL_BYTES = 1024 * 1024  # of each of stdout and stderr sent back (docs/cluster.md; a row for docs/limits.md)
_POLL_S = 0.1
_BEAT_EVERY_S = 1.0
_pools: dict[tuple, WorkerPool] = {}
_pools_guard = threading.Lock()


def run_attempt(payload: dict) -> dict:
    """The Dask task: one attempt, watched until it ends or is no longer wanted.

    It never raises: Dask would log the task's arguments (secret values filled in) with the
    exception. Anything unexpected comes back as a failed outcome instead."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except Exception as exc:  # noqa: BLE001 - not on a worker
        return _refused(None, f"not run on a Dask worker ({type(exc).__name__})")
    try:
        return _run(worker, payload)
    except BaseException as exc:  # noqa: BLE001 - see above; its message only, never its arguments
        return _refused(worker, f"the task failed on the Dask worker {worker.address}: {type(exc).__name__}: {exc}")


def _run(worker: Any, payload: dict) -> dict:
    key = worker.get_current_task()
    if not _claim(payload["claim"]):  # Dask's rerun, or withdrawn by the supervisor: nothing runs
        return {"rerun": True, "worker": worker.address}
    relay = _Relay(worker, payload["topic"], key)
    try:
        home = Path(payload["home"])
        if not home.is_dir():
            return _refused(worker, f"the home {home} does not exist on the Dask worker {worker.address} "
                                    f"(the worker needs the home's flows/ at the same path)")
        if not _wanted(worker, key):  # released between its claim and here: never started
            return _refused(worker, "not started: its Dask task was released first")
        return _run_claimed(worker, payload, key, relay)
    finally:
        relay.send("ended")  # (after the child is gone: whatever was claimed is over)


def _run_claimed(worker: Any, payload: dict, key: Any, relay: "_Relay") -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="lf-attempt-"))
    try:
        spec = _spec(payload, scratch, relay.heartbeat)
        try:
            running = _start(spec, payload, worker)
        except (OSError, ValueError) as exc:
            return _refused(worker, f"could not start it on {worker.address}: {exc}")
        finally:  # its stdin (secret values filled in) stays off this disk: the process holds it open
            spec.stdin_path.unlink(missing_ok=True)
        where = {"worker": worker.address, "pid": running.pid, "pgid": running.pgid,
                 "proc_start": running.proc_start}
        relay.send("started", **where)
        outcome = _watch(worker, key, running)
        return {"ok": outcome.ok, "result": outcome.result, "error": outcome.error,
                "duration_ms": outcome.duration_ms, "heartbeat": relay.last, **where,
                "stdout": _tail(spec.stdout_path), "stderr": _tail(spec.stderr_path)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def kill_orphan(home: str, workflow_id: str, step: str, attempt: int, pid: Union[int, None],
                proc_start: Union[str, None]) -> int:
    """On a worker (``Client.run``): kill what is left of an attempt a crashed supervisor started here.

    Always by the attempt's tag; by its session too only when ``pid`` is given (a ``run`` step's
    own process). A ``call``'s recorded pid is a long-lived pool worker that may run another
    attempt by now, so the supervisor never passes it (its own task stops the call)."""
    return len(kill_attempt(attempt_tag(home, workflow_id, step, attempt), pid, proc_start))


def _claim(name: str) -> bool:
    """Take the attempt's claim token (runner/dask_runner.py, ``Claim``): True once, for the first
    taker; False for Dask's rerun of the task, or when the supervisor withdrew the attempt."""
    from distributed import Queue

    claim = Queue(name)
    try:
        return bool(claim.get(batch=True))
    finally:
        claim.close()


def _spec(payload: dict, scratch: Path, on_heartbeat: Any) -> AttemptSpec:
    """The attempt as this machine runs it: its logs in ``scratch``, everything else as the supervisor said."""
    (scratch / "logs").mkdir(mode=0o700)
    logs = scratch / "logs"
    return AttemptSpec(
        workflow_id=payload["workflow_id"], step=payload["step"], attempt=payload["attempt"],
        argv=list(payload["argv"]), stdin=payload["stdin"], timeout_ms=payload["timeout_ms"],
        cwd=Path(payload["home"]), stdin_path=logs / "a.in", stdout_path=logs / "a.out",
        stderr_path=logs / "a.err", grace_s=payload["grace_s"], var_dir=scratch, call=payload["call"],
        heartbeat_ms=payload["heartbeat_ms"], heartbeat_details=payload["heartbeat_details"],
        env=payload["env"], step_cwd=payload["step_cwd"], secrets=None, on_heartbeat=on_heartbeat,
    )  # secrets: the supervisor filled them in (this machine has none of its LF_SECRET_*)


def _start(spec: AttemptSpec, payload: dict, worker: Any) -> Any:
    if spec.call is None:
        return RunningAttempt(spec)
    return _pool(Path(payload["home"]), Path(payload["flows_dir"]), worker.state.nthreads).start(spec)


def _pool(home: Path, flows_dir: Path, size: int) -> WorkerPool:
    """This Dask worker process's pool of localflow workers for one home (they live as long as it)."""
    with _pools_guard:
        pool = _pools.get((home, flows_dir))
        if pool is None:
            pool = _pools[(home, flows_dir)] = WorkerPool(home, max(1, size), flows_dir)
            pool.warm()
        return pool


def _watch(worker: Any, key: Any, running: Any) -> Any:
    """Wait for the attempt's outcome; stop it as soon as the key is released or the worker closes."""
    box: list = []
    waiter = threading.Thread(target=lambda: box.append(running.wait()), name=f"lf-wait-{key}", daemon=True)
    waiter.start()
    stopped = False
    while waiter.is_alive():
        waiter.join(_POLL_S)
        if not stopped and waiter.is_alive() and not _wanted(worker, key):
            running.cancel("cancelled", "stopped: its Dask task was released (cancelled by the supervisor, "
                                        "or the supervisor's connection closed)")
            stopped = True
    return box[0]


def _wanted(worker: Any, key: Any) -> bool:
    """Is this task still wanted here? (Released keys turn ``cancelled`` in the worker's state.)"""
    if getattr(worker.status, "name", "running") not in ("running", "paused"):
        return False
    task = worker.state.tasks.get(key)
    return task is not None and task.state not in ("cancelled", "released", "forgotten")


def _refused(worker: Any, message: str) -> dict:
    return {"ok": False, "error": {"kind": "spawn", "message": message, "exit_code": None},
            "duration_ms": 0, "worker": getattr(worker, "address", None), "pid": None, "pgid": None, "proc_start": None,
            "stdout": "", "stderr": "", "heartbeat": None}


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


class _Relay:
    """Events for the supervisor, on its topic; heartbeats at most one a second (the last kept)."""

    def __init__(self, worker: Any, topic: str, key: Any) -> None:
        self.worker, self.topic, self.key = worker, topic, key
        self.last: Any = None
        self._sent_at = 0.0

    def send(self, what: str, **fields: Any) -> None:
        try:
            self.worker.log_event(self.topic, {"key": self.key, "event": what, **fields})
        except Exception:  # noqa: BLE001 - a lost message is covered by the result (or by the timeouts)
            pass

    def heartbeat(self, details: Any) -> None:
        self.last = details
        now = time.monotonic()
        if now - self._sent_at >= _BEAT_EVERY_S:
            self._sent_at = now
            self.send("heartbeat", details=details)
