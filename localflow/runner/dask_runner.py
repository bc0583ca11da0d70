"""The executor's runner for a Dask cluster: attempts submitted to a scheduler, run on its workers.

A second implementation of the worker protocol (docs/design.md, "The worker protocol";
docs/cluster.md). ``DaskRunner.start(spec)`` submits ``dask_task.run_attempt`` for a
``call`` step (and for a ``run`` step with ``steps="all"``; otherwise that goes to the
local runner) and returns a ``RemoteAttempt``, whose ``wait()`` runs on the executor's
attempt thread and sees, in order: the task's ``started`` message (where it runs: the
executor records ``ActivityStarted`` with ``worker``), its heartbeats, and its end.

What stays the executor's, as locally: ``ActivityScheduled`` is durable before
``start`` is called, outcomes are recorded under the workflow's lock. What this module
adds is turning cluster trouble into outcomes, never into a hang:

- scheduler unreachable when an attempt is submitted: failed, ``spawn`` /
  ``SchedulerUnreachable`` (a connection is tried again at most every few seconds);
- the worker running it leaves the scheduler (killed, crashed, cut off): failed,
  ``exit`` / ``WorkerLost``; Dask's own rerun of the task elsewhere is refused by the
  task (its claim is taken), so a retry is always a new attempt the retry policy chose;
- the scheduler connection lost while it runs (a restarted scheduler): failed, ``exit`` /
  ``SchedulerLost``; the next attempt connects again;
- no worker at all for ``no_workers_s`` while it waits: failed, ``spawn`` / ``NoWorkers``;
- ``cancel()`` and the timeouts release the task's key; the task then kills its child
  (TERM, grace, KILL) and says ``ended``, which ``wait()`` waits for (grace + 5 s).

This module never touches histories, and imports ``distributed`` only when a runner is made.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Union

from localflow.errors import ExitCode, LocalFlowError
from localflow.runner import environment
from localflow.runner.local import LocalRunner
from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec, Running, kill_orphaned_attempt, \
    open_logs, redacted
from localflow.store import safe

STEPS = ("call", "all")  # which steps go to the cluster: `call` steps only, or `run` steps too
_RECONNECT_EVERY_S = 2.0  # after a failed connection, attempts fail at once for this long
_POLL_S = 1.0  # how often the scheduler is asked which workers it has
_ENDED_WAIT_S = 5.0  # after a cancel: wait for the task's `ended` this much longer than the grace period
_BACKSTOP_S = 10.0  # past its timeout and grace, an attempt that said nothing is stopped from here
_RESULT_WAIT_S = 30.0


class ClusterSetupError(LocalFlowError):
    """The cluster executor cannot be used as asked (the dask extra missing, no --scheduler)."""

    exit_code = ExitCode.USAGE


def missing_extra() -> Union[str, None]:
    """Why the dask extra cannot be used here, or None when it can."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        return f"the dask extra is not installed ({exc}): pip install 'localflow[dask]'"
    return None


class DaskRunner:
    """Attempts on a Dask cluster; ``run`` steps stay local unless ``steps="all"``."""

    def __init__(self, home: Union[str, Path], scheduler: str, workers: int = 0, steps: str = "call",
                 connect_timeout_s: float = 5.0, no_workers_s: float = 30.0,
                 log: Union[Callable[[str], None], None] = None) -> None:
        why = missing_extra()
        if why is not None:
            raise ClusterSetupError(f"--executor dask: {why}")
        if not scheduler:
            raise ClusterSetupError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
        if steps not in STEPS:
            raise ClusterSetupError(f"which steps go to the cluster: one of {', '.join(STEPS)}, not {steps!r}")
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # trouble is reported as outcomes instead
        self.home = Path(home)
        self.scheduler = scheduler
        self.steps = steps
        self.connect_timeout_s = connect_timeout_s
        self.no_workers_s = no_workers_s
        self.log = log or (lambda message: None)
        self.local = LocalRunner(home, workers)
        self.topic = f"localflow-{uuid.uuid4().hex[:12]}"
        self._client: Any = None
        self._client_guard = threading.Lock()
        self._scheduler_id: Union[str, None] = None
        self._stale = False
        self._refused_until = 0.0
        self._refusal = ""
        self._guard = threading.Lock()
        self._attempts: dict[str, RemoteAttempt] = {}
        self._workers: frozenset = frozenset()
        self._info_at = 0.0  # monotonic time of the last answer about workers
        self._workers_seen_at = time.monotonic()
        self._closed = threading.Event()
        self._janitor: queue.Queue = queue.Queue()  # claims to clear, off the attempt threads
        threading.Thread(target=self._monitor, name="lf-dask-monitor", daemon=True).start()
        threading.Thread(target=self._clear_claims, name="lf-dask-claims", daemon=True).start()

    # --- the Runner protocol ----------------------------------------------------

    def start(self, spec: AttemptSpec) -> Running:
        if spec.call is None and self.steps != "all":
            return self.local.start(spec)
        return RemoteAttempt(self, spec)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return kill_orphaned_attempt(tag, pid, proc_start)  # attempts that ran here (run steps)

    def kill_remote_orphans(self, worker: str, workflow_id: str, step: str, attempt: int,
                            pid: Union[int, None], proc_start: Union[str, None]) -> Union[int, None]:
        """Kill what a crashed supervisor's attempt left on ``worker``: how many processes, or None when
        that worker cannot be reached (gone from the scheduler, or the scheduler unreachable)."""
        from localflow.runner.dask_task import kill_orphan

        try:
            client = self.client()
            if worker not in client.scheduler_info(n_workers=-1).get("workers", {}):
                return None
        except Exception:  # noqa: BLE001 - unreachable: nothing can be done from here
            return None
        box: list = []

        def run() -> None:
            try:
                box.append(client.run(kill_orphan, str(self.home), workflow_id, step, attempt, pid, proc_start,
                                      workers=[worker], on_error="return").get(worker))
            except Exception:  # noqa: BLE001
                pass

        thread = threading.Thread(target=run, name="lf-dask-orphan", daemon=True)
        thread.start()
        thread.join(self.connect_timeout_s + 5)
        return box[0] if box and isinstance(box[0], int) else None

    def warm(self) -> None:
        """Start the local pool, and connect now (in the background), saying whether it worked."""
        self.local.warm()

        def connect() -> None:
            try:
                client = self.client()
                count = len(self._workers)
                self.log(f"dask: connected to {self.scheduler} ({count} worker{'s' if count != 1 else ''})")
            except ClusterUnreachable as exc:
                self.log(f"dask: {exc}; call steps fail (SchedulerUnreachable) and retry per their policy "
                         f"until it is reachable")
            else:
                del client

        threading.Thread(target=connect, name="lf-dask-connect", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with self._client_guard:
            client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)
        self.local.close()

    # --- the connection -----------------------------------------------------------

    def client(self) -> Any:
        """A connected client (one for the runner), or ClusterUnreachable saying why not."""
        with self._client_guard:
            client = self._client
            if client is not None and client.status == "running" and not self._stale:
                return client
            if client is not None:
                self._client = None
                threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
            if time.monotonic() < self._refused_until:
                raise ClusterUnreachable(self._refusal)
            from distributed import Client

            try:
                client = Client(self.scheduler, timeout=self.connect_timeout_s, set_as_default=False)
                info = client.scheduler_info(n_workers=-1)
            except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a bad address (ValueError)...
                self._refused_until = time.monotonic() + _RECONNECT_EVERY_S
                self._refusal = (f"could not reach the Dask scheduler at {self.scheduler} "
                                 f"({type(exc).__name__}: {str(exc).strip() or 'no answer'}); is `dask scheduler` "
                                 f"running there?")
                raise ClusterUnreachable(self._refusal) from None
            client.subscribe_topic(self.topic, self._on_event)
            self._scheduler_id, self._stale = info.get("id"), False
            self._note_workers(info)
            self._client = client
            return client

    def _monitor(self) -> None:
        """Ask the scheduler which workers it has, every second while attempts run."""
        while not self._closed.wait(_POLL_S):
            client = self._client
            with self._guard:
                busy = bool(self._attempts)
            if client is None or not busy:
                continue
            if client.status != "running":
                self._stale = True  # it lost the scheduler; its futures are cancelled, the next one reconnects
                continue
            try:
                info = client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=5)
            except Exception:  # noqa: BLE001 - a slow answer; the connection's own loss shows in the futures
                continue
            if info.get("id") != self._scheduler_id:
                self._stale = True  # a restarted scheduler: this client's subscription is gone with the old one
            self._note_workers(info)

    def _note_workers(self, info: dict) -> None:
        workers = frozenset(info.get("workers", {}))
        now = time.monotonic()
        with self._guard:
            self._workers, self._info_at = workers, now
            if workers:
                self._workers_seen_at = now

    def worker_gone(self, address: str, since: float) -> bool:
        """Has the scheduler said, after ``since`` (monotonic), that it no longer has ``address``?"""
        with self._guard:
            return self._info_at > since and address not in self._workers

    def no_workers_for(self) -> float:
        with self._guard:
            return 0.0 if self._workers else time.monotonic() - self._workers_seen_at

    # --- messages from tasks ----------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        """On the client's event loop: hand the message to its attempt (never block here)."""
        message = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else event
        if not isinstance(message, dict):
            return
        with self._guard:
            attempt = self._attempts.get(message.get("key"))
        if attempt is not None:
            attempt.note(message)

    def register(self, key: str, attempt: "RemoteAttempt") -> None:
        with self._guard:
            self._attempts[key] = attempt

    def forget(self, key: str) -> None:
        with self._guard:
            self._attempts.pop(key, None)

    def clear_claim(self, name: str) -> None:
        self._janitor.put(name)

    def _clear_claims(self) -> None:
        from distributed import Event

        while True:
            name = self._janitor.get()
            client = self._client
            if client is None or client.status != "running":
                continue
            try:
                Event(name, client=client).clear()
            except Exception:  # noqa: BLE001 - a claim left set costs the scheduler a few bytes
                pass


class ClusterUnreachable(OSError):
    """The scheduler cannot be reached (the message says where and why)."""


class RemoteAttempt:
    """One attempt on the cluster: ``wait()`` for its outcome, ``cancel()`` to stop it early."""

    pid = pgid = None  # where it runs is known only once it starts: ``when_started``
    proc_start = None

    def __init__(self, runner: DaskRunner, spec: AttemptSpec) -> None:
        from localflow.runner.dask_task import run_attempt

        self.runner, self.spec = runner, spec
        values = environment.secret_values(spec.secrets)  # a missing secret: SpawnRefused, nothing sent
        self._secret_values = values
        with safe.directory(spec.var_dir, spec.stdout_path.parent, create=True) as logs:
            self._out, self._err = open_logs(logs, spec)
        self._events: queue.Queue = queue.Queue()
        self._cancel_reason = ("interrupted", "stopped: the executor shut down while it ran")
        self._cancelled = False
        self._ended_seen = False
        self._on_started: Union[Callable[[dict], None], None] = None
        self.where: Union[dict, None] = None
        self._started_at = 0.0
        self._submitted = time.monotonic()
        self._last_details: Any = spec.heartbeat_details
        self.key = f"lf-{spec.workflow_id}-{spec.step}-{spec.attempt}-{uuid.uuid4().hex[:8]}"
        self.future: Any = None
        self._early: Union[AttemptOutcome, None] = None
        try:
            client = runner.client()
        except ClusterUnreachable as exc:
            self._early = self._failed("spawn", str(exc), "SchedulerUnreachable")
            return
        payload = self._payload(values)
        runner.register(self.key, self)
        try:
            self.future = client.submit(run_attempt, payload, key=self.key, pure=False, retries=0)
        except Exception as exc:  # noqa: BLE001 - the connection went between the check and the submit
            runner.forget(self.key)
            self._early = self._failed("spawn", f"could not submit it to the Dask scheduler at {runner.scheduler}: "
                                                f"{type(exc).__name__}: {exc}", "SchedulerUnreachable")
            return
        self.future.add_done_callback(lambda _: self._events.put(("done", None)))

    def _payload(self, values: dict) -> dict:
        spec = self.spec
        call = None if spec.call is None else {
            "target": spec.call["target"], "kwargs": environment.resolve(spec.call.get("kwargs") or {}, values)}
        return {
            "topic": self.runner.topic, "claim": f"lf-claim-{self.key}", "home": str(self.runner.home),
            "flows_dir": str(self.runner.home / "flows"), "workflow_id": spec.workflow_id, "step": spec.step,
            "attempt": spec.attempt, "call": call, "argv": [str(a) for a in environment.resolve(spec.argv, values)],
            "stdin": environment.resolve(spec.stdin, values), "timeout_ms": spec.timeout_ms,
            "grace_s": spec.grace_s, "heartbeat_ms": spec.heartbeat_ms, "heartbeat_details": spec.heartbeat_details,
            "env": environment.resolve(spec.env, values) if spec.env else None, "step_cwd": spec.step_cwd,
        }

    # --- what the executor calls -------------------------------------------------------

    def when_started(self, callback: Callable[[dict], None]) -> None:
        """``callback(where)`` on the waiting thread once it runs: {worker, pid, pgid, proc_start}."""
        self._on_started = callback

    def cancel(self, kind: str = "interrupted", message: str = "stopped: the executor shut down while it ran") -> None:
        self._cancel_reason = (kind, message)
        self._cancelled = True
        self._events.put(("cancel", None))

    def note(self, message: dict) -> None:
        self._events.put((message.get("event"), message))

    def wait(self) -> AttemptOutcome:
        try:
            return redacted(self._wait(), self._secret_values)
        finally:
            self.runner.forget(self.key)
            for fd in (self._out, self._err):
                try:
                    os.close(fd)
                except OSError:
                    pass

    # --- inside ------------------------------------------------------------------------

    def _wait(self) -> AttemptOutcome:
        if self._early is not None:
            return self._early
        while True:
            try:
                what, data = self._events.get(timeout=0.25)
            except queue.Empty:
                what, data = None, None
            if what == "started":
                self._started(data)
            elif what == "heartbeat":
                self._beat(data.get("details"))
            elif what == "cancel":
                return self._stop(*self._cancel_reason)
            elif what == "done":
                return self._finished()
            elif what == "ended":
                self._ended_seen = True
            trouble = self._trouble()
            if trouble is not None:
                return trouble

    def _started(self, message: dict) -> None:
        if self.where is not None or message.get("pid") is None:
            return
        self.where = {k: message.get(k) for k in ("worker", "pid", "pgid", "proc_start")}
        self._started_at = time.monotonic()
        if self._on_started is not None:
            self._on_started(dict(self.where))

    def _beat(self, details: Any) -> None:
        if details is None or details == self._last_details or self.spec.on_heartbeat is None:
            return
        self._last_details = details
        try:
            self.spec.on_heartbeat(details)
        except Exception:  # noqa: BLE001 - a bad one is dropped, never fatal (as locally)
            pass

    def _trouble(self) -> Union[AttemptOutcome, None]:
        """Cluster trouble the future alone would not show (soon enough): a lost worker, none at all, silence."""
        if self.where is not None:
            worker = self.where["worker"]
            if self.runner.worker_gone(worker, self._started_at):
                self._release()
                return self._failed("exit", f"its Dask worker {worker} left the scheduler while it ran (killed, "
                                            f"crashed or cut off); not run again by Dask: a retry is a new attempt",
                                    "WorkerLost")
            limit = self.spec.timeout_ms / 1000 + self.spec.grace_s + _BACKSTOP_S
            if time.monotonic() - self._started_at > limit:
                return self._stop("timeout", f"timed out after {self.spec.timeout_ms / 1000:g}s (its Dask worker "
                                             f"{worker} did not report its end)")
        elif self.runner.no_workers_for() > self.runner.no_workers_s:
            self._release()
            return self._failed("spawn", f"no Dask worker has been connected to the scheduler at "
                                         f"{self.runner.scheduler} for {self.runner.no_workers_s:g}s; not run",
                                "NoWorkers")
        return None

    def _stop(self, kind: str, message: str) -> AttemptOutcome:
        """Release the task (its worker kills the child) and wait for it to say it ended."""
        self._release()
        if self.where is not None and self.future is not None:
            if not self._ended(time.monotonic() + self.spec.grace_s + _ENDED_WAIT_S):
                message += f" (its Dask worker {self.where['worker']} did not confirm it stopped)"
        return self._failed(kind, message)

    def _ended(self, deadline: float) -> bool:
        """Wait until ``deadline`` for the task's ``ended`` (its child is gone)."""
        if self._ended_seen:
            return True
        while (left := deadline - time.monotonic()) > 0:
            try:
                what, _ = self._events.get(timeout=left)
            except queue.Empty:
                return False
            if what == "ended":  # (not "done": a released future is done at once, its child maybe not)
                return True
        return False

    def _release(self) -> None:
        try:
            self.future.cancel()
        except Exception:  # noqa: BLE001 - the scheduler is gone: so is the task's key, and the task stops
            pass

    def _finished(self) -> AttemptOutcome:
        future = self.future
        if future.status == "cancelled":
            if self._cancelled:
                return self._stop(*self._cancel_reason)
            return self._failed("exit", f"lost the connection to the Dask scheduler at {self.runner.scheduler} "
                                        f"while it ran (restarted or unreachable); its task stops when its worker "
                                        f"loses the scheduler", "SchedulerLost")
        if future.status == "error":
            return self._remote_error(future)
        try:
            reply = future.result(timeout=_RESULT_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the worker holding it died before it was fetched
            return self._failed("exit", f"its result could not be fetched from the cluster: "
                                        f"{type(exc).__name__}: {exc}", "WorkerLost")
        finally:
            self._release()
        if reply.get("rerun"):
            where = (self.where or {}).get("worker", "its first worker")
            return self._failed("exit", f"its Dask worker {where} was lost while it ran; Dask started it again on "
                                        f"{reply.get('worker')}, which was refused (a retry is a new attempt)",
                                "WorkerLost")
        self.runner.clear_claim(f"lf-claim-{self.key}")
        self._started(reply)  # (if its `started` message has not come yet: recorded before the outcome)
        self._beat(reply.get("heartbeat"))
        for fd, text in ((self._out, reply.get("stdout")), (self._err, reply.get("stderr"))):
            if text:
                safe.write_all(fd, text.encode("utf-8", "replace"))
        return AttemptOutcome(bool(reply.get("ok")), result=reply.get("result"), error=reply.get("error"),
                              duration_ms=int(reply.get("duration_ms") or 0))

    def _remote_error(self, future: Any) -> AttemptOutcome:
        try:
            exc = future.exception(timeout=5)
        except Exception as problem:  # noqa: BLE001
            exc = problem
        name = type(exc).__name__
        if name == "KilledWorker":  # a scheduler with allowed-failures 0: the worker's death, told at once
            return self._failed("exit", f"its Dask worker was lost while it ran ({exc})", "WorkerLost")
        hint = " (is localflow installed on every worker?)" if isinstance(exc, ImportError) else ""
        return self._failed("exit", f"the Dask worker could not run it: {name}: {exc}{hint}", "RemoteError")

    def _failed(self, kind: str, message: str, type_: Union[str, None] = None) -> AttemptOutcome:
        error = {"kind": kind, "message": message, "exit_code": None}
        if type_ is not None:
            error["type"] = type_
        return AttemptOutcome(False, error=error, duration_ms=int((time.monotonic() - self._submitted) * 1000))


def _close_quietly(client: Any) -> None:
    try:
        client.close(timeout=2)
    except Exception:  # noqa: BLE001
        pass
