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
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Info:
    workflow_id: str
    step: str
    attempt: int
    idempotency_key: str


class NotInAnActivity(RuntimeError):
    """``info()`` was called outside a LocalFlow step."""


def info() -> Info:
    """The attempt this code runs for; NotInAnActivity outside a LocalFlow step."""
    try:
        return Info(workflow_id=os.environ["LF_WORKFLOW_ID"], step=os.environ["LF_STEP"],
                    attempt=int(os.environ["LF_ATTEMPT"]), idempotency_key=os.environ["LF_IDEMPOTENCY_KEY"])
    except (KeyError, ValueError):
        raise NotInAnActivity("localflow.activity.info() is only available inside a step's attempt") from None
