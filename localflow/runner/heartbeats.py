"""Heartbeats from an attempt: liveness, and progress details (docs/activities-heartbeats.md).

A ``run`` step's process gets the write end of a pipe as the descriptor named in
``LF_HEARTBEAT_FD``; each line it writes there is one heartbeat: an empty line (or
``null``) says "alive", any other line is a JSON value, the attempt's progress
details. ``HeartbeatPipe`` is the runner's read end: it is pumped by the attempt's
wait loop (no thread of its own), keeps the time of the last heartbeat for the
``heartbeat`` timeout, and hands each valid details value to a callback. A ``call``
step's heartbeats come over the worker's socket instead (runner/workers.py), checked
the same way (``check_details``).

A bad line (not JSON, a value JSON cannot store, over ``MAX_DETAILS_BYTES``) still
counts as a sign of life, but its details are ignored, with a note in the attempt's
``.err`` log (the first ``MAX_NOTES`` of them).
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, Callable, Union

from localflow.core.jsonvalue import check_value, parse_json
from localflow.errors import InvalidValue

FD_VAR = "LF_HEARTBEAT_FD"
DETAILS_VAR = "LF_HEARTBEAT_DETAILS"
MAX_DETAILS_BYTES = 32 * 1024  # one heartbeat's details as JSON (they travel in an environment variable)
MAX_NOTES = 10
_READ_BYTES = 64 * 1024
_MAX_READ_PER_PUMP = 1024 * 1024


def check_details(details: Any) -> Any:
    """``details`` if it can be recorded as heartbeat details, else InvalidValue saying why."""
    check_value(details, "the heartbeat details")
    try:
        size = len(json.dumps(details, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(f"the heartbeat details cannot be stored as JSON ({exc})") from None
    if size > MAX_DETAILS_BYTES:
        raise InvalidValue(f"the heartbeat details are {size} bytes as JSON, over the {MAX_DETAILS_BYTES}-byte limit")
    return details


def details_env(details: Any) -> dict:
    """The environment that hands an attempt the step's last recorded details (none: nothing)."""
    return {} if details is None else {DETAILS_VAR: json.dumps(details, ensure_ascii=False, allow_nan=False)}


def interval_text(ms: int) -> str:
    return f"{ms / 1000:g}s"


class HeartbeatPipe:
    """The read end of an attempt's heartbeat pipe (``write_fd`` goes to the process)."""

    def __init__(self, on_details: Union[Callable[[Any], None], None], note: Callable[[str], None]) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.on_details = on_details
        self.note = note
        self.last = time.monotonic()
        self.eof = False
        self._buffer = bytearray()
        self._overlong = False
        self._notes = 0

    def started(self) -> None:
        """The process has its copy of the write end: close ours (so its exit reads end-of-file)."""
        self.last = time.monotonic()
        self.close_write()

    def close_write(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for heartbeats (or end-of-file) and take what came."""
        if self.eof:
            time.sleep(max(0.0, timeout))
            return
        try:
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, timeout))
        except InterruptedError:
            return
        if ready:
            self._read()

    def drain(self) -> None:
        """Take whatever is already in the pipe, without waiting."""
        if not self.eof:
            self._read()

    def close(self) -> None:
        self.close_write()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        self.eof = True

    def _read(self) -> None:
        taken = 0
        while taken < _MAX_READ_PER_PUMP:
            try:
                chunk = os.read(self.read_fd, _READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                if self._buffer:  # a last line without its newline
                    self._line(bytes(self._buffer))
                    self._buffer.clear()
                return
            taken += len(chunk)
            self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                break
            if self._overlong:
                self._overlong = False
                self.last = time.monotonic()
            else:
                self._buffer += chunk[start:newline]
                self._line(bytes(self._buffer))
            self._buffer.clear()
            start = newline + 1
        rest = chunk[start:]
        if self._overlong:
            return
        self._buffer += rest
        if len(self._buffer) > MAX_DETAILS_BYTES + 2:
            self._buffer.clear()
            self._overlong = True
            self._ignored(f"a line over the {MAX_DETAILS_BYTES}-byte limit")

    def _line(self, raw: bytes) -> None:
        self.last = time.monotonic()
        text = raw.strip()
        if not text:
            return
        if len(text) > MAX_DETAILS_BYTES:
            self._ignored(f"a line over the {MAX_DETAILS_BYTES}-byte limit")
            return
        try:
            details = check_details(parse_json(text, "the heartbeat line"))
        except InvalidValue as exc:
            self._ignored(str(exc))
            return
        if details is not None and self.on_details is not None:
            try:
                self.on_details(details)
            except Exception:  # noqa: BLE001 (recording is best effort; the attempt goes on)
                pass

    def _ignored(self, why: str) -> None:
        self._notes += 1
        if self._notes > MAX_NOTES:
            return
        more = " (further bad heartbeats are not noted)" if self._notes == MAX_NOTES else ""
        try:
            self.note(f"localflow: heartbeat details ignored: {why}{more}\n")
        except OSError:
            pass
