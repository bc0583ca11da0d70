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
  ``SchedulerUnreachable``. Each attempt tries to connect (up to the connect timeout) or
  shares the result of the connect another attempt has in flight; no refusal is remembered;
- the worker running it leaves the scheduler (killed, crashed, cut off): failed,
  ``exit`` / ``WorkerLost``; Dask's own rerun of the task elsewhere finds the attempt's
  claim taken (``Claim``) and runs nothing, so a retry is always a new attempt the retry
  policy chose;
- the scheduler connection lost while it runs (a restarted scheduler): Dask cancels the
  client's futures: failed, ``exit`` / ``SchedulerLost``. Dask reconnects the same client;
  the runner subscribes to its topic again on the new scheduler (Dask does not) and never
  closes a client Dask is still reconnecting; one Dask closed (no futures left) is replaced;
- no worker at all, for ``no_workers_s`` counted from its submission, while it waits:
  withdrawn (its claim taken back) and failed, ``spawn`` / ``NoWorkers``;
- ``cancel()`` and the timeouts first withdraw the attempt: taken back before its task
  took the claim, it never runs and is recorded at once; otherwise its key is released, the
  task kills its child (TERM, grace, KILL) and says ``ended``, which ``wait()`` waits for
  (grace + 5 s; past that the outcome says the worker did not confirm it stopped).

A ``Claim`` is closed at every end, so the scheduler forgets it; only a supervisor killed
while attempts were in flight leaves theirs (a few bytes each, until the scheduler restarts).
A background thread asks the scheduler for its workers every second, also while idle.

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
from typing import Any, Callable, NamedTuple, Union

from localflow.errors import ExitCode, LocalFlowError
from localflow.runner import environment
from localflow.runner.local import LocalRunner
from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec, Running, kill_orphaned_attempt, \
    open_logs, redacted
from localflow.store import safe

STEPS = ("call", "all")  # which steps go to the cluster: `call` steps only, or `run` steps too
_POLL_S = 1.0  # how often the scheduler is asked which workers it has
_CLAIM_TIMEOUT_S = 5.0  # for the scheduler's answer about an attempt's claim
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
        # the connection: one client at a time; guarded by _cond (never held across network I/O)
        self._cond = threading.Condition()
        self._client: Any = None
        self._connecting = False  # a connect is in flight (other attempts wait for its result)
        self._refusal = ""  # why the last connect failed
        self._subscribed: tuple = ()  # (client, scheduler id) the topic was last subscribed on
        self._guard = threading.Lock()  # the attempts and what the scheduler last said about workers
        self._attempts: dict[str, RemoteAttempt] = {}
        self._workers: frozenset = frozenset()
        self._info_at = 0.0  # monotonic time of the last answer about workers
        self._workers_seen_at = time.monotonic()
        self._closed = threading.Event()
        threading.Thread(target=self._monitor, name="lf-dask-monitor", daemon=True).start()

    # --- the Runner protocol ----------------------------------------------------

    def start(self, spec: AttemptSpec) -> Running:
        if spec.call is None and self.steps != "all":
            return self.local.start(spec)
        return RemoteAttempt(self, spec)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return kill_orphaned_attempt(tag, pid, proc_start)  # attempts that ran here (run steps)

    def kill_remote_orphans(self, orphans: list[RemoteOrphan]) -> list[Union[int, None]]:
        """Kill what crashed supervisors' attempts left on the cluster, all at once, within one deadline
        (connect timeout + 5 s): per orphan, how many processes, or None when its worker (or the
        scheduler) cannot be reached. An orphan without a worker (its ActivityStarted never recorded)
        is looked for by its tag on every worker. Never called under a workflow's lock."""
        results: list[Union[int, None]] = [None] * len(orphans)
        if not orphans:
            return results
        try:
            client = self.client()
            workers = set(client.scheduler_info(n_workers=-1).get("workers", {}))
        except Exception:  # noqa: BLE001 - unreachable: nothing can be done from here
            return results
        threads = []
        for index, orphan in enumerate(orphans):
            if orphan.worker is not None and orphan.worker not in workers:
                continue  # gone from the scheduler: None
            thread = threading.Thread(target=self._kill_remote, args=(client, orphan, results, index),
                                      name="lf-dask-orphan", daemon=True)
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + self.connect_timeout_s + 5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return list(results)

    def _kill_remote(self, client: Any, orphan: RemoteOrphan, results: list, index: int) -> None:
        from localflow.runner.dask_task import kill_orphan

        try:
            answers = client.run(kill_orphan, str(self.home), orphan.workflow_id, orphan.step, orphan.attempt,
                                 orphan.pid, orphan.proc_start, on_error="return",
                                 workers=None if orphan.worker is None else [orphan.worker])
        except Exception:  # noqa: BLE001
            return
        counts = [n for n in answers.values() if isinstance(n, int)]
        if orphan.worker is None or counts:
            results[index] = sum(counts)

    def warm(self) -> None:
        """Start the local pool, and connect now (in the background), saying whether it worked."""
        self.local.warm()

        def connect() -> None:
            try:
                self.client()
                count = len(self._workers)
                self.log(f"dask: connected to {self.scheduler} ({count} worker{'s' if count != 1 else ''})")
            except ClusterUnreachable as exc:
                self.log(f"dask: {exc}; call steps fail (SchedulerUnreachable) and retry per their policy "
                         f"until it is reachable")

        threading.Thread(target=connect, name="lf-dask-connect", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            client, self._client = self._client, None
            self._cond.notify_all()
        if client is not None:
            _close_quietly(client)
        self.local.close()

    # --- the connection -----------------------------------------------------------

    def client(self) -> Any:
        """A connected client (one for the runner), or ClusterUnreachable saying why not.

        Every caller either tries to connect itself (bounded by the connect timeout) or waits
        for the connect already in flight and shares its result: no refusal is remembered.
        A client is replaced only once Dask has closed it (its futures are then cancelled):
        one that Dask is reconnecting is waited for, never closed under running attempts.
        """
        deadline = time.monotonic() + self.connect_timeout_s
        with self._cond:
            while True:
                if self._closed.is_set():
                    raise ClusterUnreachable("the executor is shutting down")
                client = self._client
                status = None if client is None else client.status
                if status == "running":
                    self._subscribe(client)
                    return client
                if status in ("connecting", "newly-created"):  # Dask reconnecting it (a restarted scheduler)
                    if time.monotonic() >= deadline:
                        raise ClusterUnreachable(
                            f"lost the connection to the Dask scheduler at {self.scheduler}; it was not back "
                            f"within {self.connect_timeout_s:g}s")
                    self._cond.wait(0.1)
                    continue
                if client is not None:  # closed by Dask after a failed reconnect: no futures left on it
                    self._client = None
                    threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
                if not self._connecting:
                    self._connecting = True
                    break
                while self._connecting:  # another attempt is connecting: its result is ours too
                    self._cond.wait()
                if self._client is None:
                    raise ClusterUnreachable(f"{self._refusal} (tried by another attempt at the same time)")
        return self._connect()

    def _connect(self) -> Any:
        from distributed import Client

        client = None
        try:
            client = Client(self.scheduler, timeout=self.connect_timeout_s, set_as_default=False)
            info = client.scheduler_info(n_workers=-1)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a bad address (ValueError)...
            if client is not None:
                _close_quietly(client)
            refusal = (f"could not reach the Dask scheduler at {self.scheduler} within {self.connect_timeout_s:g}s "
                       f"({type(exc).__name__}: {str(exc).strip() or 'no answer'}); is `dask scheduler` "
                       f"running there?")
            with self._cond:
                self._connecting, self._refusal = False, refusal
                self._cond.notify_all()
            raise ClusterUnreachable(refusal) from None
        with self._cond:
            self._connecting = False
            self._cond.notify_all()
            if self._closed.is_set():
                threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
                raise ClusterUnreachable("the executor is shutting down")
            self._client = client
            self._subscribe(client)
        self._note_workers(info)
        return client

    def _subscribe(self, client: Any) -> None:
        """(Under _cond.) Subscribe to the tasks' topic on this client's scheduler, once per scheduler:
        Dask's reconnect to a restarted scheduler does not subscribe again by itself."""
        identity = getattr(client, "_scheduler_identity", None) or {}
        where = (id(client), identity.get("id"))
        if where != self._subscribed:
            client.subscribe_topic(self.topic, self._on_event)  # (a non-blocking send)
            self._subscribed = where

    def _monitor(self) -> None:
        """Ask the scheduler which workers it has, every second (also while idle, so that "no worker
        since" is measured, not guessed); subscribe again after a reconnect."""
        while not self._closed.wait(_POLL_S):
            with self._cond:
                client = self._client
                if client is None or client.status != "running":
                    continue  # none yet, or Dask reconnecting it: its futures show the loss
                try:
                    self._subscribe(client)
                except Exception:  # noqa: BLE001 - closing under us: the next round sees it
                    continue
            try:  # (short: a slow answer must not delay WorkerLost for long)
                info = client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=_POLL_S * 2)
            except Exception:  # noqa: BLE001 - a slow answer; the connection's own loss shows in the futures
                continue
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

    def no_workers_since(self, since: float) -> float:
        """For how long, counted from ``since`` (monotonic), the scheduler has had no worker at all."""
        with self._guard:
            if self._workers or self._info_at <= since:
                return 0.0
            return self._info_at - max(since, self._workers_seen_at)

    # --- messages from tasks, claims ----------------------------------------------------

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


class RemoteOrphan(NamedTuple):
    """An attempt a crashed supervisor left on the cluster (``worker`` None: where is not known)."""

    worker: Union[str, None]
    workflow_id: str
    step: str
    attempt: int
    pid: Union[int, None]
    proc_start: Union[str, None]


class Claim:
    """An attempt's claim: one token in a Dask ``Queue`` named after its key, put there before the
    task is submitted. Whoever takes the token first (``Queue.get(batch=True)``, atomic on the
    scheduler) owns the attempt: the task (it runs it) or the supervisor withdrawing it (it never
    runs). Dask's rerun of a task finds no token and runs nothing. Closed at the attempt's end:
    the scheduler then forgets the queue (each holder's close drops one reference)."""

    def __init__(self, client: Any, name: str) -> None:
        from distributed import Queue

        self.name = name
        self._queue = Queue(name, client=client)
        self._closed = False
        try:
            self._queue.put(1, callback_timeout=_CLAIM_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def withdraw(self) -> Union[bool, None]:
        """Take the token back: True (the task never took it, and never will), False (the task took
        it), None (the scheduler did not answer)."""
        try:
            return bool(self._queue.get(batch=True, callback_timeout=_CLAIM_TIMEOUT_S))
        except Exception:  # noqa: BLE001
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._queue.close()  # (a non-blocking send; a lost scheduler forgot it anyway)
            except Exception:  # noqa: BLE001
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
        self.claim: Union[Claim, None] = None
        self._taken = False  # its task is known to have taken its claim
        self._early: Union[AttemptOutcome, None] = None
        try:
            client = runner.client()
        except ClusterUnreachable as exc:
            self._early = self._failed("spawn", str(exc), "SchedulerUnreachable")
            return
        payload = self._payload(values)
        runner.register(self.key, self)
        try:
            self.claim = Claim(client, payload["claim"])
            self.future = client.submit(run_attempt, payload, key=self.key, pure=False, retries=0)
        except Exception as exc:  # noqa: BLE001 - the connection went between the check and the submit
            runner.forget(self.key)
            if self.claim is not None:
                self.claim.close()
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
            if self.claim is not None:
                self.claim.close()
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
        elif not self._taken and self.runner.no_workers_since(self._submitted) > self.runner.no_workers_s:
            withdrawn = self._withdraw()
            if not withdrawn:  # its task took the claim (it runs after all: its `started` is on the way),
                self._taken = withdrawn is False  # or the scheduler did not answer (asked again later)
                return None
            self._release()
            return self._failed("spawn", f"no Dask worker was connected to the scheduler at "
                                         f"{self.runner.scheduler} for {self.runner.no_workers_s:g}s after it was "
                                         f"submitted; not run", "NoWorkers")
        return None

    def _withdraw(self) -> Union[bool, None]:
        return None if self.claim is None else self.claim.withdraw()

    def _stop(self, kind: str, message: str) -> AttemptOutcome:
        """Stop it and record it only once it is known not to run: withdrawn before its task took the
        claim (it never runs), or its task said ``ended`` (its child is gone) within grace + 5 s."""
        if self.future is None:
            return self._failed(kind, message)
        withdrawn = self._withdraw()
        self._release()  # (its worker, if it runs it, sees the key released and kills the child)
        if not withdrawn and not self._ended(time.monotonic() + self.spec.grace_s + _ENDED_WAIT_S):
            worker = (self.where or {}).get("worker")
            message += (f" (its Dask worker {worker} did not confirm it stopped)" if worker else
                        " (it may have started on a Dask worker, which did not confirm it stopped)")
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
