"""A worker process: runs the Python functions of `call` steps, one call at a time.

Started by the local pool (localflow/runner/workers.py) as
``python -m localflow.worker FD FLOWS_DIR LIFELINE``: FD is its end of a socket pair,
LIFELINE the read end of a pipe whose write end only the starting process holds, and
FLOWS_DIR goes first on ``sys.path``, so ``call payments.charge(...)`` imports
``flows/payments.py``. It speaks the worker protocol (docs/design.md): each message
is a 4-byte big-endian length and a JSON object.

- in: ``{"op": "call", "target": "module:function", "kwargs": {...}, "env": {"LF_...": ...}}``
  with two file descriptors attached (SCM_RIGHTS): the attempt's stdout and stderr logs.
  For the call, fd 1 and 2 are those logs (so ``print`` and tracebacks land in them) and
  ``os.environ`` holds ``env`` (``localflow.activity.info()`` reads it).
- out: ``{"op": "result", "ok": true, "value": ...}`` or
  ``{"op": "result", "ok": false, "error": {"kind", "type", "message"}}``.
- out, during a call, any number of times before its result:
  ``{"op": "heartbeat", "details": ...}`` (``localflow.activity.heartbeat()``: alive, and the
  call's progress details, ``null`` for none; see docs/activities-heartbeats.md).

A call is stopped by killing the worker (its whole session); the pool starts another.
The worker dies with the process that started it: when that process ends (however it
ends), the lifeline pipe reads end-of-file and the worker kills its own process group,
so a crashed supervisor leaves no worker (nor anything a call spawned) running a call
nobody will record. (Not PR_SET_PDEATHSIG: that follows the *thread* that started the
worker, and pool threads come and go.)
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import traceback
from typing import Any

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_RESULT_BYTES = 1024 * 1024


def send(sock: socket.socket, message: dict, fds: tuple = ()) -> None:
    data = json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")
    packet = struct.pack(">I", len(data)) + data
    if fds:
        socket.send_fds(sock, [packet[:4]], list(fds))
        sock.sendall(packet[4:])
    else:
        sock.sendall(packet)


def receive(sock: socket.socket) -> tuple[Any, list]:
    """One message and the descriptors that came with it; (None, []) at end of file."""
    head, fds, _, _ = socket.recv_fds(sock, 4, 4)
    if not head:
        return None, fds
    while len(head) < 4:
        more = sock.recv(4 - len(head))
        if not more:
            return None, fds
        head += more
    (size,) = struct.unpack(">I", head)
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message of {size} bytes")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body.decode("utf-8")), fds


def _die_with_parent(lifeline: int) -> None:
    """A thread that waits for the starting process to go, then ends this worker's whole group."""

    def watch() -> None:
        while True:
            try:
                if not os.read(lifeline, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        try:
            os.killpg(0, signal.SIGKILL)
        finally:
            os._exit(1)

    import threading

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def run_call(message: dict) -> dict:
    """Import and call the target with its keyword arguments; the result message."""
    module_name, _, function_name = str(message.get("target", "")).partition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except Exception as exc:  # noqa: BLE001 (any import-time error is the flow author's to see)
        traceback.print_exc()
        return _failure("spawn", exc, f"could not import {module_name}.{function_name}: {type(exc).__name__}: {exc}")
    if not callable(function):
        return {"op": "result", "ok": False, "error": {
            "kind": "spawn", "type": "TypeError", "message": f"{module_name}.{function_name} is not a function"}}
    try:
        value = function(**message.get("kwargs", {}))
    except BaseException as exc:  # noqa: BLE001 (SystemExit and KeyboardInterrupt are the call's failure too)
        traceback.print_exc()
        return _failure("exception", exc, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return _result(value)


def _failure(kind: str, exc: BaseException, message: str) -> dict:
    return {"op": "result", "ok": False, "error": {"kind": kind, "type": type(exc).__name__, "message": message}}


def _result(value: Any) -> dict:
    from localflow.core.jsonvalue import check_value
    from localflow.errors import InvalidValue

    try:
        check_value(value, "the return value")
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (InvalidValue, TypeError, ValueError, RecursionError) as exc:
        message = str(exc) if isinstance(exc, InvalidValue) else \
            f"the return value cannot be stored as JSON ({type(exc).__name__}: {exc})"
        return {"op": "result", "ok": False, "error": {"kind": "output", "type": None, "message": message}}
    if size > MAX_RESULT_BYTES:
        return {"op": "result", "ok": False, "error": {
            "kind": "output", "type": None,
            "message": f"the return value is {size} bytes as JSON, over the {MAX_RESULT_BYTES}-byte result limit"}}
    return {"op": "result", "ok": True, "value": value}


class _Channel:
    """The socket back to the pool, shared by the reply and the heartbeats of the call running now."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.active = False  # a call is running: its heartbeats go out (a stray thread's, later, do not)

    def heartbeat(self, details: Any) -> bool:
        with self.lock:
            if not self.active:
                return False
            try:
                send(self.sock, {"op": "heartbeat", "details": details})
            except (OSError, TypeError, ValueError):
                return False
            return True

    def reply(self, message: dict) -> None:
        with self.lock:
            self.active = False
            send(self.sock, message)


def serve(sock: socket.socket) -> None:
    from localflow import activity

    saved = os.dup(1), os.dup(2)
    base_env = {k: v for k, v in os.environ.items() if k not in ("LF_HEARTBEAT_FD", "LF_HEARTBEAT_DETAILS")}
    channel = _Channel(sock)
    activity._worker_heartbeat = channel.heartbeat  # how heartbeat() reaches the pool from a call
    while True:
        message, fds = receive(sock)
        if message is None:
            return
        if message.get("op") != "call" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            send(sock, {"op": "result", "ok": False,
                        "error": {"kind": "spawn", "type": None, "message": "the worker got a malformed request"}})
            continue
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update({str(k): str(v) for k, v in (message.get("env") or {}).items()})
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        channel.active = True
        try:
            reply = run_call(message)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        try:
            channel.reply(reply)
        except (TypeError, ValueError):  # cannot happen after _result's check; never hang the caller
            channel.reply({"op": "result", "ok": False,
                           "error": {"kind": "output", "type": None, "message": "the result could not be sent"}})


def _killed_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG (Linux): the kernel kills this worker when the thread that started it ends,
    even while a call holds the GIL (the lifeline thread could not run then). The pool starts every
    worker from one thread that lives as long as the pool, so that is when its process ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def main(argv: list[str]) -> int:
    fd, flows_dir, lifeline = int(argv[1]), argv[2], int(argv[3])
    if len(argv) > 4:
        _killed_with_parent(int(argv[4]))
    _die_with_parent(lifeline)
    sys.path.insert(0, flows_dir)
    sock = socket.socket(fileno=fd)
    try:
        serve(sock)
    except (ConnectionError, OSError):
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
