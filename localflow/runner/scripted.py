"""The runner's twin: attempts that end as a script says, with no process (STYLE convention 7).

``ScriptedRunner(script)`` calls ``script(spec)`` for each attempt it starts: an
``AttemptOutcome`` ends the attempt at once; ``None`` keeps it running until it is
cancelled (a timeout, a race it lost, a cancelled workflow). ``started`` lists
every spec, so tests can assert what ran and with what input.
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable, Union

from localflow.runner.subprocess_runner import AttemptOutcome, AttemptSpec

Script = Callable[[AttemptSpec], Union[AttemptOutcome, None]]


def succeed(result: object = None) -> AttemptOutcome:
    return AttemptOutcome(True, result=result)


def fail(message: str = "failed", exit_code: int = 1, kind: str = "exit") -> AttemptOutcome:
    return AttemptOutcome(False, error={"kind": kind, "message": message, "exit_code": exit_code})


class ScriptedAttempt:
    def __init__(self, outcome: Union[AttemptOutcome, None], pid: int) -> None:
        self.pid = self.pgid = pid
        self.proc_start = "0"
        self._outcome = outcome
        self._cancelled = threading.Event()
        self._reason = ("interrupted", "stopped: the executor shut down while it ran")

    def wait(self) -> AttemptOutcome:
        if self._outcome is not None:
            return self._outcome
        self._cancelled.wait()
        kind, message = self._reason
        return AttemptOutcome(False, error={"kind": kind, "message": message, "exit_code": None})

    def cancel(self, kind: str = "interrupted", message: str = "stopped: the executor shut down while it ran") -> None:
        self._reason = (kind, message)
        self._cancelled.set()


class ScriptedRunner:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.started: list[AttemptSpec] = []
        self._pids = itertools.count(100_000)
        self._guard = threading.Lock()

    def start(self, spec: AttemptSpec) -> ScriptedAttempt:
        with self._guard:
            self.started.append(spec)
            pid = next(self._pids)
        return ScriptedAttempt(self.script(spec), pid)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return 0  # scripted attempts leave no processes behind
