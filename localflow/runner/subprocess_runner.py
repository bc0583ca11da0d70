"""Run one activity attempt as a subprocess in its own process group.

The attempt's stdin is a file holding its JSON input (kept next to the history
with its stdout and stderr, so ``cat`` shows what an attempt saw and said).
The environment carries LF_WORKFLOW_ID, LF_STEP, LF_ATTEMPT and
LF_IDEMPOTENCY_KEY (the same for every attempt of a step). A timeout or a
cancel sends SIGTERM to the whole group, waits a grace period, then SIGKILL.

stdout that parses as JSON is the result; other text is kept as a string
(whitespace stripped). Exit 0 is success. This module never touches histories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

MAX_RESULT_BYTES = 1024 * 1024
DEFAULT_GRACE_S = 5.0
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

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}:{self.step}"


@dataclass(frozen=True)
class AttemptOutcome:
    ok: bool
    result: Any = None
    error: Union[dict, None] = None
    duration_ms: int = 0


def process_start_time(pid: int) -> Union[str, None]:
    """The kernel's start time of ``pid`` (Linux /proc), to tell a live process from a recycled pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def kill_orphan(pid: int, pgid: int, proc_start: Union[str, None]) -> bool:
    """Kill the process group of an attempt left behind by a crashed executor.

    Only when the group leader is still the process that was recorded (same
    start time), so a recycled pid is never signalled. Returns True if killed.
    """
    current = process_start_time(pid)
    if current is None or proc_start is None or current != proc_start:
        return False  # gone, or not provably the same process: never signal a stranger
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class RunningAttempt:
    """A started attempt: ``wait()`` for its outcome, ``cancel()`` to stop it early."""

    def __init__(self, spec: AttemptSpec) -> None:
        self.spec = spec
        self._cancelled = threading.Event()
        self._cancel_reason = ("interrupted", "stopped: the executor shut down while it ran")
        self._started = time.monotonic()
        spec.stdout_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(spec.stdin_path, json.dumps(spec.stdin).encode("utf-8"))
        env = dict(os.environ)
        env.update(
            LF_WORKFLOW_ID=spec.workflow_id,
            LF_STEP=spec.step,
            LF_ATTEMPT=str(spec.attempt),
            LF_IDEMPOTENCY_KEY=spec.idempotency_key,
        )
        with open(spec.stdin_path, "rb") as stdin, _open_private(spec.stdout_path) as out, _open_private(
            spec.stderr_path
        ) as err:
            self.process = subprocess.Popen(
                [str(a) for a in spec.argv],
                stdin=stdin,
                stdout=out,
                stderr=err,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        self.pid = self.process.pid
        self.pgid = self.pid
        self.proc_start = process_start_time(self.pid)

    def cancel(self, kind: str = "interrupted", message: str = "stopped: the executor shut down while it ran") -> None:
        """Stop the attempt (TERM to its group, grace, KILL); it ends as a failure of ``kind``."""
        self._cancel_reason = (kind, message)
        self._cancelled.set()

    def wait(self) -> AttemptOutcome:
        deadline = self._started + self.spec.timeout_ms / 1000
        while True:
            remaining = deadline - time.monotonic()
            if self._cancelled.is_set():
                self._stop_group()
                return self._failed(*self._cancel_reason)
            if remaining <= 0:
                self._stop_group()
                return self._failed("timeout", f"timed out after {self.spec.timeout_ms / 1000:g}s")
            try:
                code = self.process.wait(timeout=min(remaining, 0.2))
            except subprocess.TimeoutExpired:
                continue
            self._kill_leftovers()
            return self._finished(code)

    def _stop_group(self) -> None:
        _signal_group(self.pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=self.spec.grace_s)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(self.pgid, signal.SIGKILL)
        self.process.wait()

    def _kill_leftovers(self) -> None:
        # Children the activity left in its group would outlive the attempt; the attempt is over.
        _signal_group(self.pgid, signal.SIGKILL)

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def _failed(self, kind: str, message: str, exit_code: Union[int, None] = None) -> AttemptOutcome:
        error = {"kind": kind, "message": message, "exit_code": exit_code}
        return AttemptOutcome(False, error=error, duration_ms=self._elapsed_ms())

    def _finished(self, code: int) -> AttemptOutcome:
        if code != 0:
            reported = _reported_error(self.spec.stdout_path)
            if reported:  # the activity named its error: keep its own words
                outcome = self._failed("exit", reported["message"] or reported["error"], code)
                outcome.error["type"] = reported["error"]
                return outcome
            tail = _tail(self.spec.stderr_path) or _tail(self.spec.stdout_path)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            return self._failed("exit", f"{how}" + (f": {tail}" if tail else ""), code)
        size = self.spec.stdout_path.stat().st_size
        if size > MAX_RESULT_BYTES:
            return self._failed("output", f"stdout is {size} bytes, over the {MAX_RESULT_BYTES}-byte result limit")
        try:
            result = parse_result(self.spec.stdout_path.read_bytes())
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
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except UnusableOutput:
        raise
    except RecursionError:
        raise UnusableOutput("stdout is JSON nested too deeply to store") from None
    except ValueError:
        return text


def _reported_error(stdout_path: Path) -> dict:
    """A failing activity may print {"error": "Type", "message": "..."} on stdout to name its error."""
    try:
        if stdout_path.stat().st_size > MAX_RESULT_BYTES:
            return {}
        value = parse_result(stdout_path.read_bytes())
    except (OSError, UnusableOutput):
        return {}
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return {"error": value["error"], "message": str(value.get("message", ""))}
    return {}


def spawn_failure(spec: AttemptSpec, exc: Exception) -> AttemptOutcome:
    """The outcome of an attempt whose program could not be started at all."""
    message = f"could not start {spec.argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
    return AttemptOutcome(False, error={"kind": "spawn", "message": message, "exit_code": None})


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _open_private(path: Path):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb")


def _write_private(path: Path, data: bytes) -> None:
    with _open_private(path) as handle:
        handle.write(data)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - 4096, 0))
            text = handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][-_STDERR_TAIL:] if lines else ""
