"""One event record <-> one history line, with a checksum.

A line is the record as compact JSON with ``seq``, ``ts`` and ``type`` first and
``crc`` last. ``crc`` is the crc32 (8 hex digits) of the record's canonical JSON
(sorted keys, compact separators, no ``crc`` field), so a reader detects any
changed byte. This module is pure: bytes in, records out.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from localflow.core.jsonvalue import MAX_EVENT_BYTES
from localflow.errors import InvalidValue, PayloadTooLarge

MAX_LINE_BYTES = MAX_EVENT_BYTES
_LEADING = ("seq", "ts", "type")


class LineError(ValueError):
    """A line that does not decode; the reason is the message."""


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "crc"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def checksum(record: dict[str, Any]) -> str:
    return f"{zlib.crc32(canonical(record)) & 0xFFFFFFFF:08x}"


def encode(record: dict[str, Any]) -> bytes:
    """The line (newline included) for a record that has seq, ts and type."""
    ordered = {k: record[k] for k in _LEADING if k in record}
    ordered.update((k, v) for k, v in record.items() if k not in _LEADING and k != "crc")
    try:
        ordered["crc"] = checksum(ordered)
        line = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN / Infinity have no JSON form
        raise InvalidValue(f"event {record.get('type')} cannot be stored as JSON: {exc}") from None
    data = line.encode("utf-8") + b"\n"
    if len(data) > MAX_LINE_BYTES:
        raise PayloadTooLarge(f"event {record.get('type')}", len(data), MAX_LINE_BYTES)
    return data


def decode(line: bytes) -> dict[str, Any]:
    """The record a line holds (without its newline); LineError if it is damaged."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LineError(f"not a JSON line ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise LineError("line is not a JSON object")
    crc = record.get("crc")
    if not isinstance(crc, str):
        raise LineError("line has no crc")
    try:
        actual = checksum(record)
    except (ValueError, RecursionError) as exc:  # NaN, Infinity, 1e400: never written by LocalFlow
        raise LineError(f"line holds a value JSON cannot store ({exc.__class__.__name__})") from None
    if actual != crc:
        raise LineError(f"checksum mismatch (line says {crc}, content gives {actual})")
    if not isinstance(record.get("seq"), int) or not isinstance(record.get("type"), str):
        raise LineError("line has no integer seq or no type")
    del record["crc"]
    return record
