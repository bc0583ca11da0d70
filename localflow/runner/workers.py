"""Python steps: the worker protocol, and a pool of local worker processes that implements it.

A ``call`` step's attempt is handed to a ``WorkerPool`` (the executor's runner for
specs with ``call``); the pool gives it to an idle worker process
(localflow/worker.py), started ahead of time, so a call costs a message rather than
an interpreter start. The protocol, as the executor sees it, is the same ``Runner``
/ ``Running`` pair as for subprocesses (runner/subprocess_runner.py):

- ``start(spec)`` hands the call over (blocking while every worker is busy) and
  returns a running call whose ``pid`` / ``pgid`` / ``proc_start`` are the worker's,
  so a crashed executor's successor can find and kill what is left of it;
- ``wait()`` returns the outcome: the function's return value, or its exception
  (``kind: "exception"``, ``type``: the class name, usable by ``catch error "Type"``),
  a value JSON cannot hold (``kind: "output"``), an import error (``kind: "spawn"``),
  a timeout, or a worker that died mid-call (``kind: "exit"``, ``type: "WorkerDied"``:
  counted against the retries, since a call that crashes its worker would crash the next);
- ``cancel()`` stops it: the worker's whole session gets SIGTERM, then SIGKILL after
  the grace period, and the pool starts a replacement;
- ``kill_orphans(...)`` as for subprocesses (the worker's session, proved by its start
  time, and every process carrying the attempt's tag).

Messages between pool and worker are length-prefixed JSON over a socket pair (see
localflow/worker.py), and a lifeline pipe ends a worker when this process ends; the attempt's stdout and stderr logs travel with the call as
file descriptors. docs/design.md, "The worker protocol", is the contract a second
implementation (a cluster's) follows.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Union

from localflow import faults
from localflow.runner.heartbeats import check_details, details_env, interval_text
from localflow.runner.proctree import kill_attempt, process_start_time, terminate_attempt
from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec, open_logs, redacted, kill_orphaned_attempt
from localflow.runner import environment
from localflow.store import safe
from localflow import worker as protocol


def default_size() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class Worker:
    """One worker process and our end of its socket."""

    def __init__(self, flows_dir: Path, cwd: Path) -> None:
        ours, theirs = socket.socketpair()
        lifeline, self._lifeline = os.pipe()  # the write end stays here: its closing tells the worker to go
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localflow.worker", str(theirs.fileno()), str(flows_dir), str(lifeline),
                 str(os.getpid())],
                cwd=cwd, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(), lifeline), start_new_session=True,
                env={**environment.inherited(), "PYTHONPATH": _localflow_path()},  # the allowlist, as run steps
            )
            if faults.ACTIVE:
                faults.hit("worker", self.process)
        except BaseException:
            ours.close()
            os.close(self._lifeline)
            raise
        finally:
            theirs.close()
            os.close(lifeline)
        self.sock = ours
        self.pid = self.pgid = self.process.pid
        self.proc_start = process_start_time(self.pid)

    def kill(self, grace_s: float, tag: Union[str, None] = None) -> None:
        """SIGTERM to its session (and the attempt's tagged processes), grace, then SIGKILL."""
        if tag:
            terminate_attempt(tag, self.pid, self.proc_start)
        _signal_group(self.pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(self.pgid, signal.SIGKILL)
        if tag:
            kill_attempt(tag, self.pid, self.proc_start)
        self.process.wait()
        self.close()

    def close(self) -> None:
        self.sock.close()
        try:
            os.close(self._lifeline)
        except OSError:
            pass

    @property
    def alive(self) -> bool:
        """Running, and its end of the socket still open (a dead worker's reads end-of-file)."""
        if self.process.poll() is not None:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False


class WorkerPool:
    """``size`` worker processes for ``call`` steps, started ahead and replaced when one is killed."""

    def __init__(self, home: Union[str, Path], size: int = 0, flows_dir: Union[Path, None] = None) -> None:
        self.home = Path(home)
        self.flows_dir = Path(flows_dir) if flows_dir is not None else self.home / "flows"
        if size < 0:
            raise ValueError(f"a worker pool of {size} workers")
        self.size = size or default_size()
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._guard = threading.Lock()
        self._count = 0  # workers alive or being started
        self._closed = False
        self._workers: set[Worker] = set()
        # Every worker is started by this one thread, alive as long as the pool: a worker's
        # PR_SET_PDEATHSIG follows the thread that started it (localflow/worker.py).
        self._spawns: queue.Queue = queue.Queue()
        self._spawner = threading.Thread(target=self._spawn_loop, name="lf-worker-spawner", daemon=True)
        self._spawner.start()

    def warm(self) -> None:
        """Start the workers now, in the background (the executor calls it when it starts)."""
        threading.Thread(target=self._fill, name="lf-workers", daemon=True).start()

    def _fill(self) -> None:
        while True:
            with self._guard:
                if self._closed or self._count >= self.size:
                    return
                self._count += 1
            try:
                self._idle.put(self._spawn())
            except OSError:
                with self._guard:
                    self._count -= 1
                return

    def _spawn(self) -> Worker:
        """A new worker, started by the spawner thread (OSError if it could not be started)."""
        done: queue.Queue = queue.Queue(maxsize=1)
        self._spawns.put(done)
        result = done.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def _spawn_loop(self) -> None:
        while True:
            done = self._spawns.get()
            if done is None:
                return
            try:
                worker = Worker(self.flows_dir, self.home)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                done.put(exc if isinstance(exc, OSError) else OSError(f"could not start a worker: {exc}"))
                continue
            with self._guard:
                closed = self._closed
                if not closed:
                    self._workers.add(worker)
            if closed:  # the pool closed while it started: it is not wanted
                worker.kill(0.0)
                done.put(OSError("the worker pool is closed"))
            else:
                done.put(worker)

    def acquire(self) -> Worker:
        """An idle worker: a waiting one, a new one while under ``size``, else the next one freed."""
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                with self._guard:
                    grow = not self._closed and self._count < self.size
                    if grow:
                        self._count += 1
                if grow:
                    try:
                        return self._spawn()
                    except BaseException:
                        with self._guard:
                            self._count -= 1
                        raise
                worker = self._idle.get()
            if worker is None:
                raise OSError("the worker pool is closed")
            if worker.alive:
                return worker
            self.discard(worker)

    def release(self, worker: Worker) -> None:
        if self._closed:
            self.discard(worker)
        else:
            self._idle.put(worker)

    def discard(self, worker: Worker, grace_s: float = 0.0, tag: Union[str, None] = None) -> None:
        """Kill ``worker`` (if it still runs) and start a replacement in the background."""
        if worker.alive:
            worker.kill(grace_s, tag)
        else:
            worker.process.wait()
            worker.close()
        with self._guard:
            self._workers.discard(worker)
            self._count -= 1
            refill = not self._closed
        if refill:
            self.warm()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop every worker (idle ones at once; busy ones are killed by their calls' cancel)."""
        with self._guard:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            _signal_group(worker.pgid, signal.SIGKILL)
        for _ in range(len(workers) + 1):
            self._idle.put(None)
        for worker in workers:  # reaped, and their sockets and lifelines closed
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            worker.close()
        self._spawns.put(None)

    # --- the Runner protocol ---------------------------------------------------

    def start(self, spec: AttemptSpec) -> "RunningCall":
        return RunningCall(self, spec)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return kill_orphaned_attempt(tag, pid, proc_start)


class RunningCall:
    """One call on one worker: ``wait()`` for its outcome, ``cancel()`` to stop it early."""

    def __init__(self, pool: WorkerPool, spec: AttemptSpec) -> None:
        self.pool, self.spec = pool, spec
        self._cancelled = threading.Event()
        self._cancel_reason = ("interrupted", "stopped: the executor shut down while it ran")
        values = environment.secret_values(spec.secrets)  # a missing secret: SpawnRefused, nothing opened
        self._secret_values = values  # put back as references in the outcome
        with safe.directory(spec.var_dir, spec.stdout_path.parent, create=True) as logs:
            self._out, self._err = open_logs(logs, spec)
        message = {"op": "call", "target": spec.call["target"],
                   "kwargs": environment.resolve(spec.call.get("kwargs") or {}, values),
                   "env": {**{str(k): str(environment.resolve(v, values)) for k, v in (spec.env or {}).items()},
                           "LF_WORKFLOW_ID": spec.workflow_id, "LF_STEP": spec.step,
                           "LF_ATTEMPT": str(spec.attempt), "LF_IDEMPOTENCY_KEY": spec.idempotency_key,
                           "LF_ATTEMPT_TAG": spec.attempt_tag, **details_env(spec.heartbeat_details)}}
        try:
            for tries_left in range(pool.size + 1, 0, -1):
                self.worker = pool.acquire()
                self._started = time.monotonic()
                try:
                    if faults.ACTIVE:
                        faults.hit("call", spec.call.get("target"))
                    protocol.send(self.worker.sock, message, (self._out, self._err))
                    break
                except OSError:  # it died while idle (killed from outside): the call never reached it
                    pool.discard(self.worker)
                    if tries_left == 1:
                        raise
        finally:
            for fd in (self._out, self._err):
                os.close(fd)
        self.pid = self.worker.pid
        self.pgid = self.worker.pgid
        self.proc_start = self.worker.proc_start
        self._replies: queue.Queue = queue.Queue()
        self._last_beat = self._started  # the `heartbeat` timeout counts from here, then from each heartbeat
        threading.Thread(target=self._read, name=f"lf-call-{spec.step}", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                reply, fds = protocol.receive(self.worker.sock)
                for fd in fds:
                    os.close(fd)
            except (OSError, ValueError):
                reply = None
            if isinstance(reply, dict) and reply.get("op") == "heartbeat":
                self._heartbeat(reply.get("details"))
                continue
            self._replies.put(reply)
            return

    def _heartbeat(self, details: Any) -> None:
        """``{"op": "heartbeat", "details": ...}`` from the call: alive, and its progress if any."""
        self._last_beat = time.monotonic()
        if details is None or self.spec.on_heartbeat is None:
            return
        try:  # (the worker checked them already; a bad one is dropped, never fatal)
            self.spec.on_heartbeat(check_details(details))
        except Exception:  # noqa: BLE001
            pass

    def cancel(self, kind: str = "interrupted", message: str = "stopped: the executor shut down while it ran") -> None:
        self._cancel_reason = (kind, message)
        self._cancelled.set()
        self._replies.put(_CANCELLED)

    def wait(self) -> AttemptOutcome:
        return redacted(self._wait(), self._secret_values)

    def _wait(self) -> AttemptOutcome:
        deadline = self._started + self.spec.timeout_ms / 1000
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.pool.discard(self.worker, self.spec.grace_s, self.spec.attempt_tag)
                return self._failed("timeout", f"timed out after {self.spec.timeout_ms / 1000:g}s")
            quiet = (self._last_beat + self.spec.heartbeat_ms / 1000 - time.monotonic()
                     if self.spec.heartbeat_ms else float("inf"))
            if quiet <= 0:
                self.pool.discard(self.worker, self.spec.grace_s, self.spec.attempt_tag)
                return self._failed("timeout", f"no heartbeat for {interval_text(self.spec.heartbeat_ms)}")
            try:
                reply = self._replies.get(timeout=min(remaining, quiet))
            except queue.Empty:
                continue
            if reply is _CANCELLED:
                self.pool.discard(self.worker, self.spec.grace_s, self.spec.attempt_tag)
                return self._failed(*self._cancel_reason)
            if reply is None:  # the worker died mid-call (the call crashed it, the OOM killer, kill -9)
                code = self.worker.process.wait()
                self.pool.discard(self.worker, 0.0, self.spec.attempt_tag)
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                if self.pool.closed:  # the executor is shutting down: not the call's fault
                    return self._failed("interrupted", f"stopped: the executor shut down while it ran ({how})")
                # A failure of the attempt, counted against its retries: a function that kills its
                # worker every time (os._exit, a crashing C extension) must not be retried forever.
                outcome = self._failed("exit", f"its worker process died during the call ({how})")
                outcome.error.update(type="WorkerDied", exit_code=code)
                return outcome
            self.pool.release(self.worker)
            if reply.get("ok"):
                return AttemptOutcome(True, result=reply.get("value"), duration_ms=self._elapsed_ms())
            error = dict(reply.get("error") or {})
            error.setdefault("kind", "exception")
            error["exit_code"] = None
            return AttemptOutcome(False, error=error, duration_ms=self._elapsed_ms())

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def _failed(self, kind: str, message: str) -> AttemptOutcome:
        return AttemptOutcome(False, error={"kind": kind, "message": message, "exit_code": None},
                              duration_ms=self._elapsed_ms())


_CANCELLED: Any = object()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _localflow_path() -> str:
    """PYTHONPATH for a worker: wherever this localflow is imported from, then the caller's own."""
    here = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH", "")
    return here + (os.pathsep + rest if rest else "")
