"""The executor's runner on one machine: `run` steps as subprocesses, `call` steps on the worker pool."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from localflow.runner.subprocess_runner import AttemptSpec, Running, SubprocessRunner, kill_orphaned_attempt
from localflow.runner.workers import WorkerPool


class LocalRunner:
    def __init__(self, home: Union[str, Path], workers: int = 0) -> None:
        self.processes = SubprocessRunner()
        self.pool = WorkerPool(home, workers)

    def start(self, spec: AttemptSpec) -> Running:
        return self.pool.start(spec) if spec.call is not None else self.processes.start(spec)

    def kill_orphans(self, tag: str, pid: Union[int, None], proc_start: Union[str, None]) -> int:
        return kill_orphaned_attempt(tag, pid, proc_start)

    def warm(self) -> None:
        """Start the pool's workers now (the supervisor does, so the first call waits for nothing)."""
        self.pool.warm()

    def close(self) -> None:
        self.pool.close()
