"""Retry arithmetic for activities (pure): may a step try again, and after how long."""

from __future__ import annotations

from localflow.ir import Retry


def delay_ms(policy: Retry, failed_attempts: int) -> int:
    """Backoff before the next attempt after ``failed_attempts`` counted failures (>= 1).

    ``initial * backoff ** (failed_attempts - 1)``, capped by ``max_interval_ms``.
    No jitter: one machine has no thundering herd to spread, and a fixed delay
    keeps histories easy to read.
    """
    raw = policy.initial_ms * (policy.backoff ** max(failed_attempts - 1, 0))
    if policy.max_interval_ms is not None:
        raw = min(raw, policy.max_interval_ms)
    return int(min(raw, 10 * 365 * 24 * 3600 * 1000))


def may_retry(policy: Retry, failed_attempts: int) -> bool:
    return failed_attempts < policy.max_attempts
