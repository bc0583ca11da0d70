"""Retry arithmetic for activities (pure): may a step try again, and after how long.

- ``delay_ms``: the wait before the next attempt, ``initial * backoff ** (n - 1)`` after
  ``n`` counted failures, capped at ``max_interval_ms``, then shortened by the policy's
  *jitter*: a fraction from 0 up to ``jitter`` of it, taken from a hash of the workflow id,
  the step and the attempt (``jitter_fraction``). Never a random number: deciding again,
  on any machine and any Python, gives the same wait, so replay can check it, while two
  workflows retrying the same step at the same moment still spread apart.
- ``may_retry``: whether the retry budget (``max_attempts``, every attempt counted)
  allows another attempt.
- ``non_retryable``: whether an attempt's error is final whatever the budget
  (``no retry on exit 2, 3`` / ``no retry on error "CardDeclined"``).
"""

from __future__ import annotations

from typing import Any, Union

from localflow.ir import Retry

_MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000
_MASK = 0xFFFFFFFFFFFFFFFF


def delay_ms(policy: Retry, failed_attempts: int, seed: str = "") -> int:
    """Backoff before the next attempt after ``failed_attempts`` counted failures (>= 1).

    ``initial * backoff ** (failed_attempts - 1)``, capped by ``max_interval_ms``; with a
    jitter the result is then multiplied by ``1 - jitter * jitter_fraction(seed)``, so it
    never exceeds the un-jittered wait (nor ``max``). ``seed`` names the retry
    (``retry_seed``); without a jitter it is not used.
    """
    # (the power is capped before it is taken: 2.0 ** 1100 would overflow a float)
    exponent = min(max(failed_attempts - 1, 0), 2000)
    try:
        raw = policy.initial_ms * (policy.backoff ** exponent)
    except OverflowError:
        raw = float(_MAX_DELAY_MS)
    if policy.max_interval_ms is not None:
        raw = min(raw, policy.max_interval_ms)
    delay = int(min(raw, _MAX_DELAY_MS))
    if policy.jitter:
        delay -= int(delay * policy.jitter * jitter_fraction(seed))
    return delay


def retry_seed(workflow_id: str, step: str, attempt: int) -> str:
    """What a retry's jitter is derived from: the workflow, the step key, the attempt it waits for."""
    return f"{workflow_id}\x00{step}\x00{attempt}"


def jitter_fraction(seed: str) -> float:
    """A number in [0, 1) that depends on ``seed`` alone: FNV-1a (as ``decide.hash_text``),
    then SplitMix64's finaliser so that seeds differing in one character spread over the range."""
    value = 0xCBF29CE484222325
    for byte in seed.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    value ^= value >> 31
    return (value >> 11) / float(1 << 53)


def may_retry(policy: Retry, failed_attempts: int) -> bool:
    return failed_attempts < policy.max_attempts


def non_retryable(policy: Retry, error: Union[dict, Any]) -> Union[str, None]:
    """Why ``error`` may not be retried under ``policy`` (``exit code 2``, ``error type "T"``), else None."""
    error = error if isinstance(error, dict) else {}
    code = error.get("exit_code")
    if policy.no_retry_exit and error.get("kind") == "exit" and code in policy.no_retry_exit:
        return f"exit code {code}"
    kind = error.get("type")
    if policy.no_retry_errors and isinstance(kind, str) and kind in policy.no_retry_errors:
        return f'error type "{kind}"'
    return None
