"""`lf logs ID [STEP] [--attempt N] [--follow] [--stdout|--stderr]`: what attempts wrote.

An attempt's stdout and stderr are files next to the history
(``var/workflows/<id>/logs/<step>.<attempt>.out|err``, Paths.attempt_log), read here
without following any symlink (store/safe.py: a symlink is refused, exit 3). The bytes
are written out as they are: it is the activity's own output.

- Without STEP: the latest attempt of every step (undo steps included), in the order
  the steps were first scheduled; with STEP: its latest attempt, or ``--attempt N``.
- Each stream shown gets a ``==> STEP attempt N: stdout (STATUS) <==`` header, as
  ``tail`` does; a stream with nothing in it is left out (a line says when an
  attempt wrote nothing at all). With STEP and ``--stdout`` or ``--stderr`` (one
  attempt, one stream) there is no header: the bytes only, for pipes.
- ``--follow`` prints what is there, then what the latest attempts (a retry, a step
  that starts later) go on writing, a header whenever the source changes, until the
  workflow has ended and every attempt's output is read.

Errors: an unknown workflow exits 5; an unknown step or attempt, or ``--attempt``
without STEP, exits 2 (usage).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Union

from localflow.cli.common import engine_for, resolve
from localflow.core.state import StepState, WorkflowState
from localflow.core.timefmt import format_duration
from localflow.engine import Engine
from localflow.errors import InputError
from localflow.store import safe

_POLL_S = 0.2
_STREAMS = {"out": "stdout", "err": "stderr"}


def cmd_logs(args: argparse.Namespace) -> int:
    engine = engine_for(args)
    workflow_id = resolve(engine, args.id)
    state = engine.state_of(workflow_id)  # WorkflowNotFound: exit 1
    if args.attempt is not None and not args.step:
        raise InputError("--attempt needs a STEP: lf logs ID STEP --attempt N")
    streams = [args.stream] if args.stream else ["out", "err"]
    chosen = _select(state, args.step, args.attempt)
    raw = bool(args.step) and args.stream is not None
    out = _Output(engine, workflow_id, raw)
    for step, number in chosen:
        out.show(state, step, number, streams)
    if not args.follow:
        return 0
    while True:
        ended = state.terminal or state.divergence is not None
        for step, number in _select(state, args.step, args.attempt):
            out.show(state, step, number, streams, following=True)
        if ended:
            return 0
        time.sleep(_POLL_S)
        state = engine.state_of(workflow_id)


def _steps(state: WorkflowState) -> list[StepState]:
    return [s for s in state.steps.values() if s.attempts]


def _select(state: WorkflowState, step: Union[str, None], attempt: Union[int, None]) -> list[tuple[str, int]]:
    """(step, attempt number) pairs to show, in order."""
    if step is None:
        return [(s.step, s.last.number) for s in _steps(state)]
    found = state.steps.get(step)
    if found is None or not found.attempts:
        known = ", ".join(s.step for s in _steps(state)) or "none has run yet"
        what = "is not a step that runs a command or a call" if found is not None else "has no step"
        raise InputError(f"{state.workflow_id} {what} '{step}' with attempts (steps with output: {known})")
    if attempt is None:
        return [(step, found.last.number)]
    numbers = [a.number for a in found.attempts]
    if attempt not in numbers:
        raise InputError(f"step '{step}' of {state.workflow_id} has no attempt {attempt} "
                         f"(attempts: {', '.join(map(str, numbers))})")
    return [(step, attempt)]


class _Output:
    """Writes log bytes to stdout, with tail-style headers, remembering how far each file was read."""

    def __init__(self, engine: Engine, workflow_id: str, raw: bool) -> None:
        self.engine, self.workflow_id, self.raw = engine, workflow_id, raw
        self.offsets: dict[tuple[str, int, str], int] = {}
        self.source: Union[tuple, None] = None  # what the last bytes written came from
        self.at_line_start = True
        self.stdout = sys.stdout.buffer

    def show(self, state: WorkflowState, step: str, number: int, streams: list[str], following: bool = False) -> None:
        wrote = False
        for stream in streams:
            key = (step, number, stream)
            data = self._read(step, number, stream, self.offsets.get(key, 0))
            if not data:
                continue
            self.offsets[key] = self.offsets.get(key, 0) + len(data)
            if not self.raw and self.source != key:
                self._text(f"==> {step} attempt {number}: {_STREAMS[stream]} ({_status(state, step, number)}) <==\n")
            self.source = key
            self._bytes(data)
            wrote = True
        seen = (step, number, "seen")
        if not wrote and not following and not self.raw and seen not in self.offsets:
            self._text(f"==> {step} attempt {number} ({_status(state, step, number)}): no output <==\n")
            self.source = None
        self.offsets.setdefault(seen, 0)

    def _read(self, step: str, number: int, stream: str, offset: int) -> bytes:
        paths = self.engine.paths
        try:
            return safe.read_bytes(paths.var_dir, paths.attempt_log(self.workflow_id, step, number, stream), offset)
        except FileNotFoundError:
            return b""  # not started (yet), or it never ran a process

    def _text(self, line: str) -> None:
        if not self.at_line_start:
            self.stdout.write(b"\n")
        self.stdout.write(line.encode("utf-8", "replace"))
        self.at_line_start = True
        self.stdout.flush()

    def _bytes(self, data: bytes) -> None:
        self.stdout.write(data)
        self.at_line_start = data.endswith(b"\n")
        self.stdout.flush()


def _status(state: WorkflowState, step: str, number: int) -> str:
    found = state.steps.get(step)
    attempt = next((a for a in found.attempts if a.number == number), None) if found else None
    if attempt is None:
        return "unknown"
    if attempt.outcome is None:
        return "running" if attempt.started_at is not None else "scheduled"
    took = attempt.duration_ms
    text = attempt.outcome + (f" in {format_duration(took)}" if took is not None else "")
    if attempt.outcome == "failed":
        text += f": {(attempt.error or {}).get('kind')}"
    return text
