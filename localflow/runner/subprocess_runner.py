"""Run one activity attempt as a subprocess in its own process group.

The attempt's stdin is a file holding its JSON input (kept next to the history
with its stdout and stderr, so ``cat`` shows what an attempt saw and said).
The environment carries LF_WORKFLOW_ID, LF_STEP, LF_ATTEMPT and
LF_IDEMPOTENCY_KEY (the same for every attempt of a step), and
LF_ATTEMPT_TAG, which marks every process of the attempt (see proctree). A
timeout or a cancel sends SIGTERM to the group and to every process of the
attempt, waits a grace period, then SIGKILL; when the leader exits, whatever it
left behind is killed.

stdout that parses as JSON is the result; other text is kept as a string
(whitespace stripped). Exit 0 is success. This module never touches histories.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

from localflow import faults
from localflow.core.jsonvalue import MAX_DEPTH, check_value
from localflow.errors import InvalidValue, UnsafePath
from localflow.core import secrets
from localflow.runner import environment
from localflow.store import safe
from localflow.supervisor.defaults import DEFAULT_GRACE_S  # one default for the CLI and the runner
from localflow.runner.heartbeats import DETAILS_VAR, FD_VAR, HeartbeatPipe, details_env, interval_text
from localflow.runner.proctree import (
    TAG_VAR,
    attempt_tag,
    kill_attempt,
    process_start_time,
    terminate_attempt,
)

MAX_RESULT_BYTES = 1024 * 1024
_STDERR_TAIL = 400


@dataclass(frozen=True)
class AttemptSpec:
    workflow_id: str
    step: str
    attempt: int
    argv: list
    stdin: Any
    timeout_ms: int
    cwd: Path
    stdin_path: Path
    stdout_path: Path
    stderr_path: Path
    grace_s: float = DEFAULT_GRACE_S
    var_dir: Union[Path, None] = None  # below it no symlink is followed (default: the home's var/)
    call: Any = None  # {"target", "kwargs"} of a call step: run by a worker (runner/workers.py), not spawned
    heartbeat_ms: Union[int, None] = None  # no heartbeat for this long: stopped, failed as a timeout
    heartbeat_details: Any = None  # the step's last recorded heartbeat details, handed to the attempt
    env: Any = None  # the step's `env` clause ({name: text}, secrets as references)
    step_cwd: Any = None  # the step's `cwd` clause, relative to the home (``cwd``)
    secrets: Any = None  # the secret names its references may name (runner/environment.py fills them in)
    # called with each heartbeat's details (checked JSON), from the thread that waits for the attempt
    on_heartbeat: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.var_dir is None:
            object.__setattr__(self, "var_dir", Path(self.cwd) / "var")

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}:{self.step}"

    @property
    def attempt_tag(self) -> str:
        """The LF_ATTEMPT_TAG of this attempt's processes; ``cwd`` is the LocalFlow home."""
        return attempt_tag(self.cwd, self.workflow_id, self.step, self.attempt)


@dataclass(frozen=True)
class AttemptOutcome:
    ok: bool
    result: Any = None
    error: Union[dict, None] = None
    duration_ms: int = 0


def kill_orphaned_attempt(tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
    """Kill every process of an attempt a crashed (or never recorded) executor left behind.

    Tagged processes always; the leader's session (the leader included) only when the
    recorded start time proves it is still the attempt's, so a recycled pid is never
    signalled. Returns how many processes were killed.
    """
    return len(kill_attempt(tag, pid, proc_start))


class Running(Protocol):
    """A started attempt, as the executor sees it (real: RunningAttempt; twin: runner/scripted.py)."""

    pid: int
    pgid: int
    proc_start: Union[str, None]

    def wait(self) -> AttemptOutcome: ...

    def cancel(self, kind: str = ..., message: str = ...) -> None: ...


class Runner(Protocol):
    """How the executor starts attempts and cleans up after a crashed one."""

    def start(self, spec: AttemptSpec) -> Running: ...

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int: ...


class SubprocessRunner:
    """Attempts as real processes (this module's RunningAttempt)."""

    def start(self, spec: AttemptSpec) -> "RunningAttempt":
        return RunningAttempt(spec)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return kill_orphaned_attempt(tag, pid, proc_start)


class RunningAttempt:
    """A started attempt: ``wait()`` for its outcome, ``cancel()`` to stop it early."""

    def __init__(self, spec: AttemptSpec) -> None:
        self.spec = spec
        self._cancelled = threading.Event()
        self._cancel_reason = ("interrupted", "stopped: the executor shut down while it ran")
        self._started = time.monotonic()
        # The allowlisted environment, the step's env with its secrets, its folder (runner/environment.py);
        # a missing secret or a bad cwd raises SpawnRefused before anything is opened.
        secret_values = environment.secret_values(spec.secrets)
        self._secret_values = secret_values  # put back as references in what the process says
        workdir = environment.working_dir(spec.cwd, spec.step_cwd)
        env = environment.step_environment(spec.env, secret_values, dict(
            LF_WORKFLOW_ID=spec.workflow_id,
            LF_STEP=spec.step,
            LF_ATTEMPT=str(spec.attempt),
            LF_IDEMPOTENCY_KEY=spec.idempotency_key,
        ))
        env[TAG_VAR] = spec.attempt_tag
        # heartbeats: a pipe whose write end the process gets as LF_HEARTBEAT_FD (runner/heartbeats.py)
        env.pop(DETAILS_VAR, None)
        env.update(details_env(spec.heartbeat_details))
        # The three files are opened under var/ without following any symlink, and stdout and
        # stderr stay open so the outcome is read from what the process wrote, not from a path.
        with safe.directory(spec.var_dir, spec.stdout_path.parent, create=True) as logs:
            self._out, self._err = open_logs(logs, spec)
            try:
                stdin = _open_log(logs, spec.stdin_path)
            except BaseException:
                self._close_logs()
                raise
        self._beats: Union[HeartbeatPipe, None] = None
        feed: Union[int, None] = None  # stdin with its secrets filled in, when it names any
        try:
            try:
                self._beats = HeartbeatPipe(spec.on_heartbeat, self._note)
                env[FD_VAR] = str(self._beats.write_fd)
                safe.write_all(stdin, json.dumps(spec.stdin).encode("utf-8"))  # the .in log: references only
                os.lseek(stdin, 0, os.SEEK_SET)
                feed = _secret_stdin(spec.stdin, secret_values)  # the values, never on disk
                self.process = subprocess.Popen(
                    [str(a) for a in environment.resolve(spec.argv, secret_values)],
                    stdin=stdin if feed is None else feed,
                    stdout=self._out,
                    stderr=self._err,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(self._beats.write_fd,),
                )
                if faults.ACTIVE:  # just spawned, pid not yet recorded: the window a crash there tests
                    faults.hit("spawn", self.process)
            finally:
                os.close(stdin)
                if feed is not None:
                    os.close(feed)
        except BaseException:
            if self._beats is not None:
                self._beats.close()
            self._close_logs()
            raise
        self._beats.started()
        self.pid = self.process.pid
        self.pgid = self.pid
        self.proc_start = process_start_time(self.pid)

    def cancel(self, kind: str = "interrupted", message: str = "stopped: the executor shut down while it ran") -> None:
        """Stop the attempt (TERM to its processes, grace, KILL); it ends as a failure of ``kind``."""
        self._cancel_reason = (kind, message)
        self._cancelled.set()

    def wait(self) -> AttemptOutcome:
        try:
            return redacted(self._wait(), self._secret_values)
        finally:
            self._beats.drain()  # the last heartbeats reach on_heartbeat before the outcome is returned
            self._beats.close()
            self._close_logs()

    def _note(self, text: str) -> None:
        """A line of LocalFlow's own in the attempt's .err log (a heartbeat it ignored)."""
        os.write(self._err, text.encode("utf-8", "replace"))

    def _close_logs(self) -> None:
        for fd in (self._out, self._err):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wait(self) -> AttemptOutcome:
        deadline = self._started + self.spec.timeout_ms / 1000
        while True:
            remaining = deadline - time.monotonic()
            if self._cancelled.is_set():
                self._stop_group()
                return self._failed(*self._cancel_reason)
            if remaining <= 0:
                self._stop_group()
                return self._failed("timeout", f"timed out after {self.spec.timeout_ms / 1000:g}s")
            quiet = self._heartbeat_left()
            if quiet <= 0:
                self._stop_group()
                return self._failed("timeout", f"no heartbeat for {interval_text(self.spec.heartbeat_ms)}")
            if not self._beats.eof:  # heartbeats as they come; end-of-file comes when the process ends
                self._beats.pump(min(remaining, quiet, 0.2))
                code = self.process.poll()
                if code is None:
                    continue
            else:
                try:
                    code = self.process.wait(timeout=min(remaining, quiet, 0.2))
                except subprocess.TimeoutExpired:
                    continue
            self._kill_leftovers()
            return self._finished(code)

    def _heartbeat_left(self) -> float:
        """Seconds until the `heartbeat` timeout (from the start, then from each heartbeat)."""
        if not self.spec.heartbeat_ms:
            return float("inf")
        return self._beats.last + self.spec.heartbeat_ms / 1000 - time.monotonic()

    def _stop_group(self) -> None:
        # One SIGTERM each (a second may cut a graceful exit short); the group alone where nothing
        # can be found (no /proc), or when everything already ended.
        if not terminate_attempt(self.spec.attempt_tag, self.pid, self.proc_start):
            _signal_group(self.pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=self.spec.grace_s)
        except subprocess.TimeoutExpired:
            pass
        self._kill_leftovers()
        self.process.wait()

    def _kill_leftovers(self) -> None:
        # Whatever the activity left behind would outlive the attempt; the attempt is over. The group
        # is signalled too, for systems without /proc, where nothing else can be found.
        _signal_group(self.pgid, signal.SIGKILL)
        kill_attempt(self.spec.attempt_tag, self.pid, self.proc_start)

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def _failed(self, kind: str, message: str, exit_code: Union[int, None] = None) -> AttemptOutcome:
        error = {"kind": kind, "message": message, "exit_code": exit_code}
        return AttemptOutcome(False, error=error, duration_ms=self._elapsed_ms())

    def _finished(self, code: int) -> AttemptOutcome:
        if code != 0:
            reported = _reported_error(self._out)
            if reported:  # the activity named its error: keep its own words
                outcome = self._failed("exit", reported["message"] or reported["error"], code)
                outcome.error["type"] = reported["error"]
                return outcome
            tail = _tail(self._err) or _tail(self._out)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            return self._failed("exit", f"{how}" + (f": {tail}" if tail else ""), code)
        size = os.fstat(self._out).st_size
        if size > MAX_RESULT_BYTES:
            return self._failed("output", f"stdout is {size} bytes, over the {MAX_RESULT_BYTES}-byte result limit")
        try:
            result = parse_result(os.pread(self._out, size, 0))
        except UnusableOutput as exc:
            return self._failed("output", str(exc))
        return AttemptOutcome(True, result=result, duration_ms=self._elapsed_ms())


class UnusableOutput(ValueError):
    """Output that parses as JSON but cannot be stored as JSON (NaN, Infinity, absurd nesting)."""


def _reject_constant(name: str) -> Any:
    raise UnusableOutput(f"stdout holds {name}, which JSON cannot store")


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise UnusableOutput(f"stdout holds the number {text}, too large for JSON")
    return value


def parse_result(data: bytes) -> Any:
    """stdout as JSON when it is JSON (else the text); UnusableOutput when JSON cannot hold it."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except UnusableOutput:
        if not _is_json(text):  # "NaN is not a number", "1e999 apples": text, however it begins
            return text
        raise
    except RecursionError:
        raise UnusableOutput(f"stdout is JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        return text
    try:
        return check_value(value, "stdout")
    except InvalidValue as exc:
        raise UnusableOutput(str(exc)) from None


def _is_json(text: str) -> bool:
    """Is ``text`` one JSON document, NaN, Infinity and out-of-range numbers allowed?"""
    try:
        json.loads(text)
    except RecursionError:
        return True
    except ValueError:
        return False
    return True


def _reported_error(stdout: int) -> dict:
    """A failing activity may print {"error": "Type", "message": "..."} on stdout to name its error."""
    try:
        size = os.fstat(stdout).st_size
        if size > MAX_RESULT_BYTES:
            return {}
        value = parse_result(os.pread(stdout, size, 0))
    except (OSError, UnusableOutput):
        return {}
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return {"error": value["error"], "message": str(value.get("message", ""))}
    return {}


def spawn_failure(spec: AttemptSpec, exc: Exception) -> AttemptOutcome:
    """The outcome of an attempt whose program could not be started at all."""
    if isinstance(exc, environment.SpawnRefused):  # a missing secret, a bad cwd: its own words
        return AttemptOutcome(False, error={"kind": "spawn", "message": str(exc), "exit_code": None})
    what = spec.argv[0] if spec.argv else (spec.call or {}).get("target")
    message = f"could not start {what!r}: {getattr(exc, 'strerror', None) or exc}"
    return AttemptOutcome(False, error={"kind": "spawn", "message": message, "exit_code": None})


def redacted(outcome: AttemptOutcome, values: dict) -> AttemptOutcome:
    """The outcome with every secret value the attempt was given put back as its reference."""
    if not values:
        return outcome
    error = secrets.redact(outcome.error, values) if outcome.error is not None else None
    return AttemptOutcome(outcome.ok, secrets.redact(outcome.result, values), error, outcome.duration_ms)


def _secret_stdin(stdin: Any, values: dict) -> Union[int, None]:
    """When the stdin value references a secret: a file descriptor that reads it with the values filled
    in, held in memory only (memfd, or a pipe fed by a thread); None when it references none."""
    if not values or not (secrets.names_in(stdin) & set(values)):
        return None
    data = json.dumps(environment.resolve(stdin, values)).encode("utf-8")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("lf-stdin", os.MFD_CLOEXEC)
        safe.write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    read_end, write_end = os.pipe()

    def feed() -> None:
        try:
            safe.write_all(write_end, data)
        except OSError:
            pass  # the process ended without reading it all
        finally:
            os.close(write_end)

    threading.Thread(target=feed, name="lf-stdin", daemon=True).start()
    return read_end


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def open_logs(logs: int, spec: AttemptSpec) -> tuple[int, int]:
    out = _open_log(logs, spec.stdout_path)
    try:
        return out, _open_log(logs, spec.stderr_path)
    except BaseException:
        os.close(out)
        raise


def _open_log(logs: int, path: Path) -> int:
    """A fresh private file in the attempt's logs/ folder (``logs``, opened without following links)."""
    try:
        fd = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=logs)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(str(path), "it is a symlink") from None
        raise
    os.fchmod(fd, 0o600)
    return fd


def _tail(fd: int) -> str:
    try:
        size = os.fstat(fd).st_size
        text = os.pread(fd, 4096, max(size - 4096, 0)).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][-_STDERR_TAIL:] if lines else ""
