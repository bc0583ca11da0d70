"""What a step's own code can ask about the attempt it runs in: ``localflow.activity.info()``.

Works the same in a Python function run by a ``call`` step (the worker sets these for
each call) and in a program run by a ``run`` step (they are in its environment):

    from localflow import activity

    def charge(order_id, amount):
        me = activity.info()
        return payments.charge(order_id, amount, idempotency_key=me.idempotency_key)

``idempotency_key`` is the same for every attempt of a step of a workflow
(``<workflow id>:<step>``): pass it to the service you call, so a retried attempt
after a crash is recognised rather than charged twice.

``heartbeat(details=None)`` reports that the attempt is alive and, with ``details`` (a
JSON value), how far it got; the step's next attempt finds the last recorded details in
``info().heartbeat_details`` and can resume from there (docs/activities-heartbeats.md).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Info:
    workflow_id: str
    step: str
    attempt: int
    idempotency_key: str
    heartbeat_details: Any = None  # the last heartbeat details an earlier attempt of the step recorded


class NotInAnActivity(RuntimeError):
    """``info()`` was called outside a LocalFlow step."""


def info() -> Info:
    """The attempt this code runs for; NotInAnActivity outside a LocalFlow step."""
    try:
        return Info(workflow_id=os.environ["LF_WORKFLOW_ID"], step=os.environ["LF_STEP"],
                    attempt=int(os.environ["LF_ATTEMPT"]), idempotency_key=os.environ["LF_IDEMPOTENCY_KEY"],
                    heartbeat_details=_handed_details())
    except (KeyError, ValueError):
        raise NotInAnActivity("localflow.activity.info() is only available inside a step's attempt") from None


def _handed_details() -> Any:
    text = os.environ.get("LF_HEARTBEAT_DETAILS")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# Set by the worker process (localflow/worker.py) while it serves calls: sends a heartbeat to the pool.
_worker_heartbeat: Union[Callable[[Any], bool], None] = None
_fd_lock = threading.Lock()


def heartbeat(details: Any = None) -> bool:
    """Tell LocalFlow this attempt is alive and, with ``details`` (a JSON value), how far it got.

    Each call resets the step's ``heartbeat`` timeout. Details are recorded in the history at
    most every few seconds (the last ones also when the attempt ends) and handed to the step's
    next attempt (``info().heartbeat_details``). Cheap enough to call in a tight loop: nothing is
    written to disk per call. Details that are not storable JSON, or over 32 KiB as JSON, are
    ignored with a note on stderr (the heartbeat still counts as a sign of life); returns False
    then, or when the heartbeat could not be delivered, and never raises for it.

    Works in a ``call`` step (over the worker's socket) and in a program run by a ``run`` step
    (a line to the descriptor in ``LF_HEARTBEAT_FD``). NotInAnActivity outside a step.
    """
    from localflow.errors import InvalidValue
    from localflow.runner.heartbeats import FD_VAR, check_details

    sender = _worker_heartbeat
    fd_text = os.environ.get(FD_VAR)
    if sender is None and not fd_text:
        raise NotInAnActivity("localflow.activity.heartbeat() is only available inside a step's attempt")
    ok = True
    if details is not None:
        try:
            check_details(details)
        except InvalidValue as exc:
            print(f"localflow: heartbeat details ignored: {exc}", file=sys.stderr, flush=True)
            details, ok = None, False
    if sender is not None:
        return sender(details) and ok
    line = b"\n" if details is None else json.dumps(details, ensure_ascii=False, allow_nan=False).encode() + b"\n"
    try:
        with _fd_lock:
            os.write(int(fd_text), line)
    except (OSError, ValueError):
        return False
    return ok
