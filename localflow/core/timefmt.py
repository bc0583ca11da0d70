"""Timestamps as they appear in histories: ISO-8601 UTC with milliseconds.

Pure conversions between epoch milliseconds and ``2026-11-25T19:20:48.123Z``;
this module never reads a clock.
"""

from __future__ import annotations

from datetime import datetime, timezone


def to_iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def from_iso(text: str) -> int:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1000))


def format_duration(ms: int | float | None) -> str:
    """Human duration: 850ms, 2.5s, 3m04s, 1h02m, 720h00m.

    Frozen: this text is part of recorded decisions (a timeout's message), so changing it would
    make older histories fail replay. For display only, ``format_span`` also writes days.
    """
    if ms is None:
        return "-"
    ms = int(ms)
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_span(ms: int | float | None) -> str:
    """For display only: like ``format_duration``, with days from 48 hours on (30d00h)."""
    if ms is not None and ms >= 48 * 3_600_000:
        days, hours = divmod(int(ms) // 3_600_000, 24)
        return f"{days}d{hours:02d}h"
    return format_duration(ms)
